//! The connection's read side against real sockets, and connections over transports other
//! than TCP.

use super::input::ReadState;
use super::socket;
use super::*;
use crate::dist::flags;
use crate::dist::framing::{MAX_FRAME, TICK};
use crate::dist::packet::Sender;
use crate::etf::{Pid, Term};
use crate::node::testing::node_pair;
use std::io::Write;

fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let writer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (reader, _) = listener.accept().unwrap();
    (writer, reader)
}

#[test]
fn reads_that_keep_the_last_byte_see_every_byte_once() {
    let (mut writer, reader) = tcp_pair();
    let mut state = ReadState::new(socket::peek_from_last_end(&reader), MAX_FRAME, None);
    // Older kernels read plainly, which must see every byte once too.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut version = release.split(['.', '-']).map(|part| part.parse::<u32>());
    if let (Some(Ok(major)), Some(Ok(minor))) = (version.next(), version.next()) {
        if (major, minor) >= (6, 9) {
            assert!(state.can_keep, "Linux {release} has SO_PEEK_OFF for TCP");
        }
    }
    state.frames.buffer().reserve(64 * 1024);
    let mut sent = Vec::new();
    // Reads that keep and reads that do not, in turn, some of them of less than what
    // waits, one of them after the writer sent a single byte.
    let plan: [(usize, usize, bool); 7] = [
        (1000, 4096, true),
        (3000, 1000, true),
        (0, 4096, true),
        (1, 4096, true),
        (500, 4096, false),
        (2000, 4096, true),
        (700, 100, false),
    ];
    for (round, (write, max, keep_last)) in plan.into_iter().enumerate() {
        let chunk: Vec<u8> = (0..write).map(|i| (i * 7 + round) as u8).collect();
        writer.write_all(&chunk).unwrap();
        sent.extend_from_slice(&chunk);
        std::thread::sleep(Duration::from_millis(20));
        let before = state.frames.buffered();
        let got = match state.read(&reader, max, keep_last) {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => panic!("round {round}: {e}"),
        };
        assert!(got <= max && before + got == state.frames.buffered());
        // A read that took all there was leaves exactly one byte in the socket.
        if state.can_keep && keep_last && got > 0 && got < max {
            assert_eq!(
                (state.kept, socket::unread(&reader)),
                (1, 1),
                "round {round}"
            );
        }
    }
    while state.read(&reader, 4096, false).is_ok_and(|got| got > 0) {}
    assert_eq!(&state.frames.buffer()[..], &sent[..]);
    assert_eq!((state.kept, socket::unread(&reader)), (0, 0));

    // The kept byte taken out alone.
    writer.write_all(b"xyz").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(state.read(&reader, 4096, true).unwrap(), 3);
    assert_eq!(socket::unread(&reader), usize::from(state.can_keep));
    state.take_kept(&reader).unwrap();
    assert_eq!((state.kept, socket::unread(&reader)), (0, 0));
    assert!(state.frames.buffer().ends_with(b"xyz"));
}

#[test]
fn frames_are_cut_whole_across_reads_and_ticks_are_skipped() {
    let to = Pid {
        node: Atom::new("py@host"),
        id: 7,
        serial: 0,
        creation: 1,
    };
    let send = Control::Send { to: to.clone() };
    let mut body = Vec::new();
    crate::etf::encode_term_body(&Term::atom("hello"), &mut body);
    let mut sender = Sender::new(flags::DIST_HDR_ATOM_CACHE);
    let mut frames = vec![Bytes::from_static(&TICK)];
    for _ in 0..3 {
        sender.encode(&send, Some(&body), &mut frames).unwrap();
        frames.push(Bytes::from_static(&TICK));
    }
    let stream: Vec<u8> = frames.concat();
    // Fed in pieces of every size, as reads may cut the stream anywhere.
    for piece in 1..stream.len() {
        let mut state = ReadState::new(false, MAX_FRAME, None);
        let mut got = Vec::new();
        for chunk in stream.chunks(piece) {
            state.frames.buffer().extend_from_slice(chunk);
            state.cut_frames(|incoming| got.push(incoming)).unwrap();
        }
        assert_eq!(got.len(), 3, "pieces of {piece} bytes");
        for incoming in &got {
            assert_eq!(incoming.control, send);
        }
        assert_eq!(state.frames.buffered(), 0);
    }
}

#[test]
fn an_oversized_frame_ends_the_connection() {
    let mut state = ReadState::new(false, MAX_FRAME, None);
    state
        .frames
        .buffer()
        .extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
    let error = state
        .cut_frames(|_| panic!("nothing to dispatch"))
        .unwrap_err();
    assert!(error.contains("over the limit"), "{error}");
    let mut state = ReadState::new(false, MAX_FRAME, None);
    state
        .frames
        .buffer()
        .extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
    let error = state
        .cut_frames(|_| panic!("nothing to dispatch"))
        .unwrap_err();
    assert!(error.starts_with("bad frame"), "{error}");
}

fn body(term: &Term) -> Bytes {
    Bytes::from(crate::etf::term_body(term))
}

#[test]
fn a_lease_whose_holder_stopped_reading_is_taken_back() {
    use crate::node::Dest;
    let (a, b) = node_pair();
    let stream = a.spawn_process(Some("stream")).unwrap();
    let other = a.spawn_process(Some("other")).unwrap();
    let sender = b.spawn_process(None).unwrap();
    let to = |name: &str| Dest::Remote(Atom::new(name), a.name());
    let deadline = || Some(Instant::now() + Duration::from_secs(5));
    b.send(&sender.pid, &to("stream"), body(&Term::Int(1)))
        .unwrap();
    assert!(stream.wait(deadline()).is_ok());
    // The receiver of `stream` holds the socket and then reads no more: a small message
    // for another mailbox stays below the low-water mark, so only the reader task taking
    // the lease back brings it in.
    let source = stream.source().expect("stream knows its connection");
    source.hold();
    let sent = Instant::now();
    b.send(&sender.pid, &to("other"), body(&Term::atom("small")))
        .unwrap();
    let got = other.wait(deadline()).expect("the message arrives");
    assert_eq!(got.to_term().unwrap(), Term::atom("small"));
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    // Held again and given back: whatever waits is read at once.
    source.hold();
    b.send(&sender.pid, &to("other"), body(&Term::Int(2)))
        .unwrap();
    std::thread::sleep(Duration::from_micros(300));
    source.release();
    let got = other.wait(deadline()).expect("the message arrives");
    assert_eq!(got.to_term().unwrap(), Term::Int(2));
    a.close();
    b.close();
}

/// The transport seam: two nodes joined by an in-memory pipe, with no socket under it, run a
/// real handshake and pass messages both ways (small ones in order, and one large enough to
/// go in fragments), read and written by the path every non-TCP transport takes; a
/// disconnect on one side is seen on the other.
#[test]
fn two_nodes_talk_over_a_pipe_that_is_not_tcp() {
    use crate::node::Dest;
    let (a, b) = piped_pair(16 * 1024);
    let deadline = || Some(Instant::now() + Duration::from_secs(5));
    let connected = |node: &crate::node::Node, peer: &Atom| {
        let until = Instant::now() + Duration::from_secs(5);
        while !node.connected_nodes().contains(peer) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        node.connected_nodes().contains(peer)
    };
    assert!(connected(&a, &b.name()) && connected(&b, &a.name()));
    // No raw socket: every byte goes through the stream.
    let conn = match lock(&a.inner().table).peers.get(&b.name()) {
        Some(crate::node::Peer::Up(conn)) => conn.clone(),
        _ => panic!("a has a connection to b"),
    };
    assert!(!conn.has_raw_socket());
    drop(conn);

    let inbox_a = a.spawn_process(Some("inbox")).unwrap();
    let inbox_b = b.spawn_process(Some("inbox")).unwrap();
    let big = Term::Binary(Bytes::from(
        (0..300_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    ));
    for n in 0..100 {
        b.send(
            &inbox_b.pid,
            &Dest::Remote(Atom::new("inbox"), a.name()),
            body(&Term::Int(n)),
        )
        .unwrap();
    }
    b.send(&inbox_b.pid, &Dest::Pid(inbox_a.pid.clone()), body(&big))
        .unwrap();
    for n in 0..100 {
        let got = inbox_a.wait(deadline()).expect("a message from b");
        assert_eq!(got.to_term().unwrap(), Term::Int(n));
    }
    let got = inbox_a.wait(deadline()).expect("the large message from b");
    assert_eq!(got.to_term().unwrap(), big);
    a.send(
        &inbox_a.pid,
        &Dest::Pid(inbox_b.pid.clone()),
        body(&Term::atom("back")),
    )
    .unwrap();
    let got = inbox_b.wait(deadline()).expect("a reply from a");
    assert_eq!(got.to_term().unwrap(), Term::atom("back"));

    assert!(a.disconnect(b.name().as_str()));
    let until = Instant::now() + Duration::from_secs(5);
    while b.connected_nodes().contains(&a.name()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !b.connected_nodes().contains(&a.name()),
        "b sees the pipe close"
    );
    a.close();
    b.close();
}

/// `Node::stats` counts what each connection carried, on both sides, and its mailboxes.
#[test]
fn stats_count_the_messages_and_bytes_of_each_connection() {
    use crate::node::Dest;
    let (a, b) = node_pair();
    let inbox = a.spawn_process(Some("inbox")).unwrap();
    let sender = b.spawn_process(None).unwrap();
    assert_eq!(a.stats().mailboxes, 1);
    assert!(a.stats().connections.is_empty());
    let deadline = || Some(Instant::now() + Duration::from_secs(5));
    let payload = body(&Term::Binary(Bytes::from(vec![7u8; 1000])));
    for _ in 0..10 {
        b.send(
            &sender.pid,
            &Dest::Remote(Atom::new("inbox"), a.name()),
            payload.clone(),
        )
        .unwrap();
    }
    for _ in 0..10 {
        inbox.wait(deadline()).expect("a message from b");
    }
    // The reader counts a read once it has dispatched its messages: a moment after the
    // mailbox has them.
    let until = Instant::now() + Duration::from_secs(5);
    let settled = |stats: &crate::node::NodeStats| {
        stats
            .connections
            .first()
            .is_some_and(|c| c.messages_in == 10)
    };
    while !settled(&a.stats()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (sent, received) = (b.stats(), a.stats());
    assert_eq!(sent.mailboxes, 1);
    let [out] = &sent.connections[..] else {
        panic!("b has one connection: {sent:?}")
    };
    let [inn] = &received.connections[..] else {
        panic!("a has one connection: {received:?}")
    };
    assert_eq!((&out.peer, &inn.peer), (&a.name(), &b.name()));
    assert_eq!(out.messages_out, 10);
    assert_eq!(inn.messages_in, 10);
    // Each message carries its 1000-byte binary, and nothing is written twice.
    assert!(out.bytes_out >= 10_000 && out.bytes_out < 12_000, "{out:?}");
    assert!(
        inn.bytes_in >= 10_000 && inn.bytes_in <= out.bytes_out,
        "{inn:?}"
    );
    assert_eq!(out.send_queue, 0);
    assert!(inn.last_in < Duration::from_secs(2) && out.last_out < Duration::from_secs(2));
    let age = std::time::SystemTime::now()
        .duration_since(inn.up_since)
        .unwrap();
    assert!(age < Duration::from_secs(30), "{age:?}");
    a.close();
    b.close();
}

/// Connects `a` to `b` over an in-memory pipe of `capacity` bytes (no socket: every byte goes
/// through the writer task, and the pipe holds back what `b` has not read).
fn piped_pair(capacity: usize) -> (crate::node::Node, crate::node::Node) {
    use crate::node::Stream;
    let (a, b) = node_pair();
    let (a_end, b_end) = tokio::io::duplex(capacity);
    let (a_inner, b_inner, b_name) = (a.inner().clone(), b.inner().clone(), b.name());
    a.runtime().spawn(async move {
        b_inner
            .accept(
                crate::node::transport::Accepted {
                    stream: Stream::other(b_end),
                    certificate: None,
                },
                "an in-memory pipe",
            )
            .await
    });
    let dialed = a
        .runtime()
        .block_on(async move { a_inner.initiate(Stream::other(a_end), &b_name).await });
    assert!(dialed.is_ok(), "the handshake over the pipe completes");
    (a, b)
}

/// `close` returns only once everything a send accepted is written: a program may exit right
/// after it (the runtime's threads die with the process). Before, it returned at once and a
/// Python program that exited after `node.close()` lost what still waited in the outbox.
#[test]
fn close_returns_once_everything_sent_is_written() {
    use crate::node::Dest;
    const MESSAGES: usize = 2000;
    const PIPE: usize = 64 * 1024;
    let (a, b) = piped_pair(PIPE);
    let inbox = b.spawn_process(Some("inbox")).unwrap();
    let sender = a.spawn_process(None).unwrap();
    let kilobyte = body(&Term::Binary(Bytes::from(vec![7u8; 1000])));
    for _ in 0..MESSAGES {
        a.send(
            &sender.pid,
            &Dest::Remote(Atom::new("inbox"), b.name()),
            kilobyte.clone(),
        )
        .unwrap();
    }
    // 2 MB sent, and the pipe holds 64 KiB: when `close` returns, b has read all the rest.
    a.close();
    let in_the_pipe_at_most = PIPE / 1000 + 1;
    let delivered = inbox.pending();
    assert!(
        delivered + in_the_pipe_at_most >= MESSAGES,
        "only {delivered} of {MESSAGES} messages were through when close returned"
    );
    let until = Instant::now() + Duration::from_secs(10);
    while inbox.pending() < MESSAGES && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(inbox.pending(), MESSAGES);
    b.close();
}

/// A peer that takes nothing does not hold `close` for ever: the wait ends once nothing was
/// written for the given time, and the writer still finishes if the peer reads later.
#[test]
fn waiting_for_the_writer_gives_up_on_a_peer_that_takes_nothing() {
    use tokio::io::AsyncReadExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ours, mut theirs) = tokio::io::duplex(16 * 1024);
    let out = Arc::new(Output::new(None, Instant::now()));
    rt.spawn(output::write_loop(
        ours,
        out.clone(),
        Duration::from_secs(60),
    ));
    let frames: Vec<Bytes> = (0..64).map(|_| Bytes::from(vec![1u8; 16 * 1024])).collect();
    assert!(out.push(frames, 64));
    out.close();
    let started = Instant::now();
    assert!(!out.wait_finished(Duration::from_millis(300)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The peer reads after all: everything comes, then the end of the stream.
    let reader = rt.spawn(async move {
        let mut all = Vec::new();
        theirs.read_to_end(&mut all).await.map(|_| all.len())
    });
    assert!(out.wait_finished(Duration::from_secs(10)));
    assert_eq!(rt.block_on(reader).unwrap().unwrap(), 64 * 16 * 1024);
}
