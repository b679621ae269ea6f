//! Both handshake directions and frame parsing against a real `erl` (OTP 25+), through the
//! crate's public API.
//!
//! Each test starts its own embedded EPMD on a free port and its own `erl` node with a random
//! name and cookie (stopped on drop), pointed at that EPMD with `ERL_EPMD_PORT`, so nothing
//! depends on a system `epmd` being up (a clean CI machine has none).
//!
//! A cargo integration test (not a unit test in `dist`) because it needs EPMD too, and `dist`
//! does not depend on `epmd`.

#[allow(dead_code)] // Not every helper is used here.
#[path = "../src/test_support.rs"]
mod test_support;

use bytes::Bytes;
use erlnode::dist::framing::TICK;
use erlnode::dist::handshake::{self, Arbiter, HandshakeConfig, PeerState};
use erlnode::dist::packet::{Receiver, Sender};
use erlnode::dist::{flags, Control, ProcRef};
use erlnode::epmd::client::{self as epmd_client, Registration};
use erlnode::epmd::server::EmbeddedEpmd;
use erlnode::etf::decode::decode_term;
use erlnode::etf::reader::Reader;
use erlnode::etf::{term_body, Atom, Pid, Reference, Term};
use erlnode::node::names::short_hostname;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::{random_name, spawn_or_skip};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether `erl` can run here; without it the test is skipped, except under CI (the rule of
/// [`spawn_or_skip`]).
fn have_erl() -> bool {
    spawn_or_skip(Command::new("erl").args(["-noshell", "-eval", "halt()."])).is_some()
}

/// An `erl` node that is killed when dropped.
struct Erl {
    child: Child,
}

impl Erl {
    /// Without `sname`, `eval` must start distribution itself. The node registers with the
    /// EPMD at `epmd` and never starts one of its own.
    fn start(epmd: SocketAddr, sname: Option<&str>, cookie: &str, eval: Option<&str>) -> Erl {
        let mut cmd = Command::new("erl");
        cmd.env("ERL_EPMD_PORT", epmd.port().to_string());
        cmd.args(["-start_epmd", "false"]);
        if let Some(sname) = sname {
            cmd.args(["-sname", sname]);
        }
        cmd.args(["-setcookie", cookie, "-noshell"]);
        if let Some(code) = eval {
            cmd.args(["-eval", code]);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start erl");
        Erl { child }
    }

    /// Waits for the node to exit and returns what it printed.
    fn wait_output(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                let mut out = String::new();
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                return out;
            }
            assert!(Instant::now() < deadline, "erl did not finish in time");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Erl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An EPMD of the test's own on a free loopback port.
async fn own_epmd() -> EmbeddedEpmd {
    EmbeddedEpmd::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind an embedded EPMD")
}

/// The distribution port of `alive`, once it is registered.
async fn wait_for_port(epmd: SocketAddr, alive: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(info)) = epmd_client::port_please(epmd, alive).await {
            return info.port;
        }
        assert!(Instant::now() < deadline, "erl never registered with epmd");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers as a hidden node; the registration lasts as long as the returned value.
async fn register(epmd: SocketAddr, alive: &str, port: u16) -> (Registration, u32) {
    let registration = epmd_client::register(epmd, alive, port, true)
        .await
        .expect("epmd refused the registration");
    let creation = registration.creation;
    (registration, creation)
}

async fn read_frame(s: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    Bytes::from(body)
}

fn decode_payload(body: &Bytes, atoms: &[Atom]) -> Term {
    let mut r = Reader::new(body);
    let term = decode_term(&mut r, atoms).unwrap();
    assert_eq!(r.remaining(), 0);
    term
}

struct Nobody;

impl Arbiter for Nobody {
    fn incoming(&self, _peer_name: &str) -> PeerState {
        PeerState::None
    }
}

/// We dial erl, then call `net_kernel` with `is_auth` and expect `{Ref, yes}`.
#[tokio::test]
async fn initiate_to_erl_and_call_net_kernel() {
    if !have_erl() {
        return;
    }
    let host = short_hostname();
    let suffix = random_name("");
    let alive = format!("dist_peer_{suffix}");
    let cookie = format!("cookie_{}", random_name(""));
    // An echo process, to bounce a large message back (fragments in both directions).
    // Registered before distribution starts, so it exists once erl is reachable.
    let echo = format!(
        "register(echo, spawn(fun Loop() -> receive {{P, M}} -> P ! M, Loop() end end)), \
         {{ok, _}} = net_kernel:start(['{alive}', shortnames])."
    );
    let epmd = own_epmd().await;
    let _erl = Erl::start(epmd.local_addr(), None, &cookie, Some(&echo));
    let peer = format!("{alive}@{host}");
    let port = wait_for_port(epmd.local_addr(), &alive).await;

    let our_node = format!("rust_{suffix}@{host}");
    let creation = 0x5eed_0001;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let cfg = HandshakeConfig::new(&our_node, creation, &cookie);
    let conn = handshake::initiate(&mut stream, &cfg, &peer).await.unwrap();
    assert_eq!(conn.peer_name, peer);
    assert_ne!(conn.peer_creation, 0);
    assert_eq!(conn.flags, flags::DEFAULT, "OTP 25 supports all we offer");

    let me = Pid {
        node: Atom::new(&our_node),
        id: 1,
        serial: 0,
        creation,
    };
    let tag = Reference {
        node: Atom::new(&our_node),
        creation,
        ids: vec![11, 22, 33],
    };
    let request = Term::tuple(vec![
        Term::atom("$gen_call"),
        Term::tuple(vec![Term::Pid(me.clone()), Term::Reference(tag.clone())]),
        Term::tuple(vec![Term::atom("is_auth"), Term::atom(&our_node)]),
    ]);
    let mut sender = Sender::new(conn.flags);
    let mut out = Vec::new();
    sender
        .encode(
            &Control::RegSend {
                from: me.clone(),
                to_name: Atom::new("net_kernel"),
            },
            Some(&term_body(&request)),
            &mut out,
        )
        .unwrap();
    for frame in &out {
        stream.write_all(frame).await.unwrap();
    }

    let mut receiver = Receiver::new();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let frame = read_frame(&mut stream).await;
            if frame.is_empty() {
                stream.write_all(&TICK).await.unwrap();
                continue;
            }
            let Some(incoming) = receiver.receive(frame).unwrap() else {
                continue;
            };
            match incoming.control {
                Control::Send { to } | Control::SendSender { to, .. } if to == me => {
                    let p = incoming.payload.unwrap();
                    // Sent once the connection was up: OTP uses its atom cache.
                    assert!(!p.atoms.is_empty(), "expected atom cache references");
                    return decode_payload(&p.body, &p.atoms);
                }
                other => eprintln!("ignoring {other:?}"),
            }
        }
    })
    .await
    .expect("no reply from net_kernel");
    assert_eq!(
        reply,
        Term::tuple(vec![Term::Reference(tag), Term::atom("yes")])
    );

    // 200 kB through the echo process: our fragments out, OTP's fragments back.
    let big = Term::Binary(Bytes::from(
        (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    ));
    let mut out = Vec::new();
    sender
        .encode(
            &Control::RegSend {
                from: me.clone(),
                to_name: Atom::new("echo"),
            },
            Some(&term_body(&Term::tuple(vec![
                Term::Pid(me.clone()),
                big.clone(),
            ]))),
            &mut out,
        )
        .unwrap();
    assert!(out.len() > 1, "our message went out in fragments");
    for frame in &out {
        stream.write_all(frame).await.unwrap();
    }
    let (echoed, pieces) = tokio::time::timeout(Duration::from_secs(10), async {
        let mut pieces = 0;
        loop {
            let frame = read_frame(&mut stream).await;
            if frame.is_empty() {
                stream.write_all(&TICK).await.unwrap();
                continue;
            }
            pieces += 1;
            let Some(incoming) = receiver.receive(frame).unwrap() else {
                continue;
            };
            if let Control::Send { to } | Control::SendSender { to, .. } = &incoming.control {
                if *to == me {
                    let p = incoming.payload.unwrap();
                    return (decode_payload(&p.body, &p.atoms), pieces);
                }
            }
        }
    })
    .await
    .expect("no echo");
    assert_eq!(echoed, big);
    assert!(pieces > 1, "OTP fragmented its 200 kB reply");

    // A second connection asking erl to name us (NAME_ME).
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut cfg = HandshakeConfig::new(&host, 0, &cookie);
    cfg.name_me = true;
    let conn = handshake::initiate(&mut stream, &cfg, &peer).await.unwrap();
    let (name, creation) = conn.our_name.expect("erl assigned a name");
    assert!(name.ends_with(&format!("@{host}")), "{name}");
    assert_ne!(creation, 0);

    // And a wrong cookie is reported as such.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let cfg = HandshakeConfig::new(&format!("rust2_{suffix}@{host}"), 7, "wrong");
    let e = handshake::initiate(&mut stream, &cfg, &peer)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cookie mismatch with node"), "{e}");
}

/// erl pings us: we accept, answer the `is_auth` call, and erl prints `pong`.
#[tokio::test]
async fn accept_ping_from_erl() {
    if !have_erl() {
        return;
    }
    let host = short_hostname();
    let suffix = random_name("");
    let our_alive = format!("rust_acc_{suffix}");
    let our_node = format!("{our_alive}@{host}");
    let cookie = format!("cookie_{}", random_name(""));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let epmd = own_epmd().await;
    let (_registration, creation) = register(epmd.local_addr(), &our_alive, port).await;

    let eval = format!("R = net_adm:ping('{our_node}'), io:format(\"result:~p~n\", [R]), halt().");
    let mut erl = Erl::start(
        epmd.local_addr(),
        Some(&format!("dist_pinger_{suffix}")),
        &cookie,
        Some(&eval),
    );

    let served = tokio::time::timeout(Duration::from_secs(20), async {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let cfg = HandshakeConfig::new(&our_node, creation, &cookie);
        let conn = handshake::accept(&mut stream, &cfg, &Nobody).await.unwrap();
        assert!(conn.peer_name.starts_with("dist_pinger_"));
        let mut receiver = Receiver::new();
        let mut sender = Sender::new(conn.flags);
        let mut seen = Vec::new();
        loop {
            let frame = read_frame(&mut stream).await;
            if frame.is_empty() {
                stream.write_all(&TICK).await.unwrap();
                continue;
            }
            let Some(incoming) = receiver.receive(frame).unwrap() else {
                continue;
            };
            match &incoming.control {
                Control::RegSend { from, to_name } if to_name.as_str() == "net_kernel" => {
                    let p = incoming.payload.as_ref().unwrap();
                    let call = decode_payload(&p.body, &p.atoms);
                    let items = call.as_tuple().expect("a $gen_call tuple");
                    assert_eq!(items[0], Term::atom("$gen_call"));
                    let from_tag = items[1].as_tuple().unwrap();
                    assert_eq!(items[2].as_tuple().unwrap()[0], Term::atom("is_auth"));
                    let reply = Term::tuple(vec![from_tag[1].clone(), Term::atom("yes")]);
                    let me = Pid {
                        node: Atom::new(&our_node),
                        id: 1,
                        serial: 0,
                        creation,
                    };
                    let mut out = Vec::new();
                    sender
                        .encode(
                            &Control::SendSender {
                                from: me,
                                to: from.clone(),
                            },
                            Some(&term_body(&reply)),
                            &mut out,
                        )
                        .unwrap();
                    for frame in &out {
                        stream.write_all(frame).await.unwrap();
                    }
                    seen.push(incoming.control.clone());
                }
                Control::DemonitorP(_) => {
                    // OTP drops its monitor once the call returns: the ping is done.
                    seen.push(incoming.control.clone());
                    return seen;
                }
                other => seen.push(other.clone()),
            }
        }
    })
    .await
    .expect("erl did not complete the ping");

    assert!(
        served
            .iter()
            .any(|c| matches!(c, Control::MonitorP(m) if matches!(&m.target, ProcRef::Name(n) if n.as_str() == "net_kernel"))),
        "expected a MONITOR_P on net_kernel first: {served:?}"
    );
    let out = erl.wait_output(Duration::from_secs(10));
    assert!(out.contains("result:pong"), "erl printed {out:?}");
}
