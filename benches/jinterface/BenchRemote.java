// The Jinterface remote of the benchmark workloads (benches/WORKLOADS.md): a peer measured
// in the same run and the same table as Erlang and erlnode.
//
// Written the way a Jinterface user would: one OtpNode, one mailbox registered as `bench`, and
// a loop of mbox.receive(), one message at a time. Started by benches/run.py as
//   java -cp OtpErlang.jar:<build dir> BenchRemote <name@host> <cookie>
// with ERL_EPMD_PORT in the environment (Jinterface's OtpEpmd reads it, so the node registers
// with the run's private EPMD). It prints `READY <node>` when `bench` is registered and serves
// until it is killed.
//
//   {seq, I, Bin}      counted, no reply
//   {stop, From}       From ! {done, Count}, count reset to 0
//   {ping, From, I}    From ! {pong, I}
//   {source, From, N}  From ! {seq, I, <<0:512>>} for I = 1..N, then From ! {source_done, N}

import com.ericsson.otp.erlang.OtpErlangAtom;
import com.ericsson.otp.erlang.OtpErlangBinary;
import com.ericsson.otp.erlang.OtpErlangLong;
import com.ericsson.otp.erlang.OtpErlangObject;
import com.ericsson.otp.erlang.OtpErlangPid;
import com.ericsson.otp.erlang.OtpErlangTuple;
import com.ericsson.otp.erlang.OtpMbox;
import com.ericsson.otp.erlang.OtpNode;

public final class BenchRemote {
    private static final OtpErlangAtom SEQ = new OtpErlangAtom("seq");
    private static final OtpErlangAtom DONE = new OtpErlangAtom("done");
    private static final OtpErlangAtom PONG = new OtpErlangAtom("pong");
    private static final OtpErlangAtom SOURCE_DONE = new OtpErlangAtom("source_done");
    // <<0:512>>: one binary for every message, like the literal of the Erlang remote.
    private static final OtpErlangBinary ZEROS = new OtpErlangBinary(new byte[64]);

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: BenchRemote <name@host> <cookie>");
            System.exit(2);
        }
        try {
            serve(args[0], args[1]);
        } catch (Throwable e) {
            // The node's own threads would keep the JVM alive: exit, so the failure is seen.
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void serve(String name, String cookie) throws Exception {
        OtpNode node = new OtpNode(name, cookie);
        OtpMbox mbox = node.createMbox("bench");
        if (mbox == null) {
            throw new IllegalStateException("the name `bench` is taken");
        }
        System.out.println("READY " + node.node());
        System.out.flush();

        long count = 0;
        while (true) {
            OtpErlangTuple msg = (OtpErlangTuple) mbox.receive();
            String tag = ((OtpErlangAtom) msg.elementAt(0)).atomValue();
            switch (tag) {
                case "seq":
                    count++;
                    break;
                case "stop":
                    mbox.send(pid(msg, 1), tuple(DONE, new OtpErlangLong(count)));
                    count = 0;
                    break;
                case "ping":
                    mbox.send(pid(msg, 1), tuple(PONG, msg.elementAt(2)));
                    break;
                case "source":
                    OtpErlangPid from = pid(msg, 1);
                    OtpErlangObject n = msg.elementAt(2);
                    long total = ((OtpErlangLong) n).longValue();
                    for (long i = 1; i <= total; i++) {
                        mbox.send(from, tuple(SEQ, new OtpErlangLong(i), ZEROS));
                    }
                    mbox.send(from, tuple(SOURCE_DONE, n));
                    break;
                default:
                    // Not part of the protocol: a bug in the driver, so fail loudly.
                    throw new IllegalArgumentException("unexpected message " + msg);
            }
        }
    }

    private static OtpErlangPid pid(OtpErlangTuple msg, int index) {
        return (OtpErlangPid) msg.elementAt(index);
    }

    private static OtpErlangTuple tuple(OtpErlangObject... elements) {
        return new OtpErlangTuple(elements);
    }
}
