//! Tests of the handshake: every message round trip and malformed form, and both directions
//! over in-memory streams (cookies, simultaneous connect, NAME_ME, legacy peers, timeouts).

use super::messages::read_message;
use super::*;
use crate::dist::flags;
use std::time::Duration;
use tokio::io::{duplex, AsyncWriteExt, DuplexStream};

struct Fixed(PeerState);

impl Arbiter for Fixed {
    fn incoming(&self, _peer_name: &str) -> PeerState {
        self.0
    }
}

fn cfg(name: &str, cookie: &str) -> HandshakeConfig {
    let mut c = HandshakeConfig::new(name, 0x1234, cookie);
    c.timeout = Duration::from_secs(2);
    c
}

async fn run(
    a: &HandshakeConfig,
    b: &HandshakeConfig,
    dialed: &str,
    state: PeerState,
) -> (
    Result<Connected, HandshakeError>,
    Result<Connected, HandshakeError>,
) {
    let (mut sa, mut sb) = duplex(4096);
    let arbiter = Fixed(state);
    let acceptor = async {
        let r = accept(&mut sb, b, &arbiter).await;
        drop(sb); // closing is how a refusing side ends the handshake
        r
    };
    let initiator = async {
        let r = initiate(&mut sa, a, dialed).await;
        drop(sa);
        r
    };
    tokio::join!(initiator, acceptor)
}

#[test]
fn digest_matches_otp() {
    assert_eq!(
        digest("x", 3192159469),
        [194, 192, 115, 214, 187, 58, 0, 203, 205, 51, 19, 211, 100, 111, 206, 236]
    );
}

#[test]
fn messages_round_trip() {
    let name = SendName {
        flags: flags::DEFAULT,
        creation: 9,
        name: "a@h".into(),
        legacy: false,
    };
    assert_eq!(SendName::decode(&name.encode()).unwrap(), name);
    let legacy = SendName {
        flags: 0x1234_5678,
        creation: 0,
        name: "old@h".into(),
        legacy: true,
    };
    assert_eq!(SendName::decode(&legacy.encode()).unwrap(), legacy);
    for s in [
        Status::Ok,
        Status::OkSimultaneous,
        Status::Nok,
        Status::NotAllowed,
        Status::Alive,
        Status::True,
        Status::False,
        Status::Named {
            name: "X@h".into(),
            creation: 77,
        },
    ] {
        assert_eq!(Status::decode(&s.encode()).unwrap(), s);
    }
    let ch = Challenge {
        flags: 5,
        challenge: 6,
        creation: 7,
        name: "b@h".into(),
    };
    assert_eq!(Challenge::decode(&ch.encode()).unwrap(), ch);
    let c = Complement {
        flags_high: 4,
        creation: 8,
    };
    assert_eq!(Complement::decode(&c.encode()).unwrap(), c);
    let r = ChallengeReply {
        challenge: 1,
        digest: [3; 16],
    };
    assert_eq!(ChallengeReply::decode(&r.encode()).unwrap(), r);
    let a = ChallengeAck { digest: [9; 16] };
    assert_eq!(ChallengeAck::decode(&a.encode()).unwrap(), a);
    // Reserved trailing bytes after the name are ignored.
    let mut extended = ch.encode();
    extended.extend_from_slice(b"future");
    assert_eq!(Challenge::decode(&extended).unwrap(), ch);
}

#[test]
fn malformed_messages_are_errors() {
    let name = SendName {
        flags: 1,
        creation: 2,
        name: "a@h".into(),
        legacy: false,
    }
    .encode();
    for cut in 0..name.len() {
        assert!(SendName::decode(&name[..cut]).is_err(), "cut at {cut}");
    }
    assert!(Status::decode(b"sweird").is_err());
    assert!(Status::decode(b"xok").is_err());
    assert!(ChallengeAck::decode(&[b'a'; 18]).is_err()); // trailing byte
    assert!(ChallengeReply::decode(b"r\0\0").is_err());
    assert!(Challenge::decode(&[b'N', 0, 0]).is_err());
    let bad_utf8 = [b'n', 0, 5, 0, 0, 0, 0, 0xff];
    assert!(SendName::decode(&bad_utf8).is_err());
}

#[tokio::test]
async fn oversized_and_empty_frames_are_refused() {
    let c = cfg("b@h", "c");
    let arbiter = Fixed(PeerState::None);
    for prefix in [LengthPrefix::U16, LengthPrefix::U32] {
        let mut c = c.clone();
        c.length_prefix = prefix;
        let (mut a, mut b) = duplex(64);
        let header: Vec<u8> = match prefix {
            LengthPrefix::U16 => vec![0, 0],
            LengthPrefix::U32 => vec![0, 2, 0, 0],
        };
        a.write_all(&header).await.unwrap();
        let e = accept(&mut b, &c, &arbiter).await.unwrap_err();
        assert!(matches!(e, HandshakeError::Malformed(_)), "{e}");
    }
}

#[tokio::test]
async fn connects_both_ways() {
    let a = cfg("a@h", "secret");
    let b = cfg("b@h", "secret");
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.peer_name, "b@h");
    assert_eq!(rb.peer_name, "a@h");
    assert_eq!(ra.peer_creation, 0x1234);
    assert_eq!(ra.flags, flags::DEFAULT);
    assert_eq!(rb.flags, flags::DEFAULT);
    assert_eq!(ra.our_name, None);
}

#[tokio::test]
async fn four_byte_framing() {
    let mut a = cfg("a@h", "secret");
    let mut b = cfg("b@h", "secret");
    a.length_prefix = LengthPrefix::U32;
    b.length_prefix = LengthPrefix::U32;
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    assert!(ra.is_ok() && rb.is_ok());
}

#[tokio::test]
async fn effective_flags_are_the_intersection() {
    let mut a = cfg("a@h", "k");
    a.flags = flags::REQUIRED | flags::PUBLISHED | flags::SPAWN;
    let mut b = cfg("b@h", "k");
    b.flags = flags::REQUIRED | flags::SPAWN | flags::ALIAS;
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    assert_eq!(ra.unwrap().flags, flags::REQUIRED | flags::SPAWN);
    assert_eq!(rb.unwrap().flags, flags::REQUIRED | flags::SPAWN);
}

#[tokio::test]
async fn wrong_cookie_fails_on_both_sides() {
    let a = cfg("a@h", "one");
    let b = cfg("b@h", "two");
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    let (ea, eb) = (ra.unwrap_err(), rb.unwrap_err());
    assert!(
        ea.to_string().contains("cookie mismatch with node b@h"),
        "{ea}"
    );
    assert!(
        eb.to_string().contains("cookie mismatch with node a@h"),
        "{eb}"
    );
}

#[tokio::test]
async fn simultaneous_connect_greater_name_wins() {
    // The acceptor "b" has its own attempt pending; "a" < "b", so b's attempt wins.
    let a = cfg("a@h", "k");
    let b = cfg("b@h", "k");
    let (ra, rb) = run(&a, &b, "b@h", PeerState::Pending).await;
    assert!(matches!(ra, Err(HandshakeError::LostRace { ref node }) if node == "b@h"));
    assert!(matches!(rb, Err(HandshakeError::LostRace { ref node }) if node == "a@h"));
    // Acceptor "a" with a pending attempt to "b": the incoming one wins.
    let (rb, ra) = run(&b, &a, "a@h", PeerState::Pending).await;
    assert!(rb.is_ok() && ra.is_ok());
    assert!(incoming_wins("a@h", "b@h"));
    assert!(!incoming_wins("b@h", "a@h"));
    assert!(incoming_wins("z@h", "é@h")); // UTF-8 byte order = code point order
}

#[tokio::test]
async fn alive_and_refused() {
    let a = cfg("a@h", "k");
    let b = cfg("b@h", "k");
    let (ra, rb) = run(&a, &b, "b@h", PeerState::Connected).await;
    assert!(ra.is_ok() && rb.is_ok(), "initiator answers true to alive");
    let (ra, rb) = run(&a, &b, "b@h", PeerState::Refused).await;
    let ea = ra.unwrap_err();
    assert!(ea.to_string().contains("not_allowed"), "{ea}");
    assert!(matches!(rb, Err(HandshakeError::Refused { .. })));
}

#[tokio::test]
async fn acceptor_handles_alive_false() {
    let b = cfg("b@h", "k");
    let (mut sa, mut sb) = duplex(4096);
    let arbiter = Fixed(PeerState::Connected);
    let peer = async {
        let hello = SendName {
            flags: flags::DEFAULT,
            creation: 1,
            name: "a@h".into(),
            legacy: false,
        };
        sa.write_all(&frame(&hello.encode(), LengthPrefix::U16))
            .await
            .unwrap();
        let status = read_message(&mut sa, LengthPrefix::U16).await.unwrap();
        assert_eq!(Status::decode(&status).unwrap(), Status::Alive);
        sa.write_all(&frame(&Status::False.encode(), LengthPrefix::U16))
            .await
            .unwrap();
    };
    let (_, rb) = tokio::join!(peer, accept(&mut sb, &b, &arbiter));
    assert!(matches!(rb, Err(HandshakeError::Refused { .. })));
}

#[tokio::test]
async fn name_me_assigns_a_name() {
    let mut a = cfg("somehost", "k");
    a.name_me = true;
    a.flags |= flags::PUBLISHED;
    let mut b = cfg("b@h", "k");
    b.flags |= flags::PUBLISHED;
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let (name, creation) = ra.our_name.clone().unwrap();
    let (alive, host) = name.split_once('@').unwrap();
    assert_eq!(alive.len(), 12);
    assert!(alive
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    assert_eq!(host, "somehost");
    assert_ne!(creation, 0);
    assert_eq!(rb.peer_name, name);
    assert_eq!(rb.peer_creation, creation);
    // Dynamically named nodes are hidden.
    assert_eq!(ra.flags & flags::PUBLISHED, 0);
    assert_eq!(rb.flags & flags::PUBLISHED, 0);
    assert_eq!(ra.flags & flags::NAME_ME, 0);
}

#[tokio::test]
async fn missing_flags_are_refused_with_not_allowed() {
    let mut a = cfg("a@h", "k");
    a.flags = flags::MANDATORY_25; // lacks UNLINK_ID and V4_NC
    let b = cfg("b@h", "k");
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    let ea = ra.unwrap_err();
    assert!(ea.to_string().contains("not_allowed"), "{ea}");
    match rb.unwrap_err() {
        HandshakeError::MissingFlags { missing, .. } => {
            assert_eq!(missing, vec!["UNLINK_ID", "V4_NC"])
        }
        e => panic!("unexpected {e}"),
    }
    // The digest bit stands for the 25 set.
    a.flags = flags::MANDATORY_25_DIGEST | flags::MANDATORY_26;
    let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
    assert!(ra.is_ok() && rb.is_ok());
    // The initiator checks the acceptor too.
    let a = cfg("a@h", "k");
    let mut b = cfg("b@h", "k");
    b.flags = flags::REQUIRED & !flags::MAP_TAG;
    let (ra, _) = run(&a, &b, "b@h", PeerState::None).await;
    assert!(
        matches!(ra, Err(HandshakeError::MissingFlags { ref missing, .. }) if missing == &vec!["MAP_TAG"])
    );
}

#[tokio::test]
async fn wrong_peer_name_is_refused() {
    let a = cfg("a@h", "k");
    let b = cfg("b@h", "k");
    let (ra, _) = run(&a, &b, "c@h", PeerState::None).await;
    let e = ra.unwrap_err();
    assert!(matches!(e, HandshakeError::WrongPeer { .. }), "{e}");
    assert_eq!(e.to_string(), "dialed node c@h but the peer is b@h");
}

#[tokio::test]
async fn bad_incoming_names_are_refused() {
    let b = cfg("b@h", "k");
    for name in ["nohost", "@h", "a@"] {
        let (mut sa, mut sb) = duplex(4096);
        let hello = SendName {
            flags: flags::DEFAULT,
            creation: 1,
            name: name.into(),
            legacy: false,
        };
        sa.write_all(&frame(&hello.encode(), LengthPrefix::U16))
            .await
            .unwrap();
        let r = accept(&mut sb, &b, &Fixed(PeerState::None)).await;
        assert!(matches!(r, Err(HandshakeError::Malformed(_))), "{name}");
    }
}

#[tokio::test]
async fn timeout_per_step() {
    let mut a = cfg("a@h", "k");
    a.timeout = Duration::from_millis(50);
    let (mut sa, _sb) = duplex(4096);
    let e = initiate(&mut sa, &a, "b@h").await.unwrap_err();
    assert!(
        matches!(
            e,
            HandshakeError::Timeout {
                step: "recv_status"
            }
        ),
        "{e}"
    );
}

/// An OTP 23/24-style initiator: legacy `n`, then a complement after the challenge.
#[tokio::test]
async fn acceptor_takes_legacy_name_and_complement() {
    let b = cfg("b@h", "k");
    let (mut sa, mut sb): (DuplexStream, DuplexStream) = duplex(4096);
    let peer = async {
        let p = LengthPrefix::U16;
        let hello = SendName {
            flags: flags::DEFAULT,
            creation: 0,
            name: "old@h".into(),
            legacy: true,
        };
        sa.write_all(&frame(&hello.encode(), p)).await.unwrap();
        let status = read_message(&mut sa, p).await.unwrap();
        assert_eq!(Status::decode(&status).unwrap(), Status::Ok);
        let ch = Challenge::decode(&read_message(&mut sa, p).await.unwrap()).unwrap();
        let comp = Complement {
            flags_high: (flags::DEFAULT >> 32) as u32,
            creation: 4242,
        };
        sa.write_all(&frame(&comp.encode(), p)).await.unwrap();
        let reply = ChallengeReply {
            challenge: 99,
            digest: digest("k", ch.challenge),
        };
        sa.write_all(&frame(&reply.encode(), p)).await.unwrap();
        let ack = ChallengeAck::decode(&read_message(&mut sa, p).await.unwrap()).unwrap();
        assert_eq!(ack.digest, digest("k", 99));
    };
    let (_, rb) = tokio::join!(peer, accept(&mut sb, &b, &Fixed(PeerState::None)));
    let rb = rb.unwrap();
    assert_eq!(rb.peer_name, "old@h");
    assert_eq!(rb.peer_creation, 4242);
    assert_eq!(rb.peer_flags, flags::DEFAULT);
}
