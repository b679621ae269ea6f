//! TLS distribution between nodes of this process: messages over mutual TLS, and every refusal
//! clear, on time, and harmless to the other connections. (The tests against real OTP nodes
//! over TLS are Python's, in tests/.)

use super::tls::{Tls, TlsRole, TlsVersion};
use super::Transport;
use crate::etf::{term_body, Atom, Term};
use crate::node::peers::DialError;
use crate::node::testing::{tls, tls_with, Leaf, Nodes, TestCa};
use crate::node::{lock, Dest, Node, NodeConfig, Peer};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `from` dials `to` (EPMD, transport, handshake): why it failed, if it did.
fn dial(from: &Node, to: &Node) -> Result<(), String> {
    let (inner, peer) = (from.inner().clone(), to.name());
    match from
        .runtime()
        .block_on(async move { inner.dial(&peer).await })
    {
        Ok(()) => Ok(()),
        Err(DialError::Failed(why)) => Err(why),
        Err(DialError::LostRace) => Err("lost a connection race".to_string()),
    }
}

fn short_handshake(config: &mut NodeConfig) {
    config.handshake_timeout = Duration::from_secs(1);
}

#[test]
fn two_nodes_exchange_messages_over_mutual_tls() {
    let ca = TestCa::new();
    let role = ca.role("node", Leaf::default());
    let nodes = Nodes::new();
    let a = nodes.start("a", |c| c.transport = tls(&role));
    let b = nodes.start("b", |c| c.transport = tls(&role));
    assert!(a.ping(b.name().as_str(), Duration::from_secs(5)).unwrap());
    let conn = match lock(&a.inner().table).peers.get(&b.name()) {
        Some(Peer::Up(conn)) => conn.clone(),
        _ => panic!("a has a connection to b"),
    };
    assert!(
        !conn.has_raw_socket(),
        "TLS is read through rustls, not the raw socket"
    );
    drop(conn);

    let inbox_a = a.spawn_process(Some("inbox")).unwrap();
    let inbox_b = b.spawn_process(Some("inbox")).unwrap();
    let big = Term::Binary(Bytes::from(
        (0..1_000_000u32)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    ));
    let deadline = || Some(Instant::now() + Duration::from_secs(10));
    for n in 0..1000 {
        let to = Dest::Remote(Atom::new("inbox"), b.name());
        a.send(&inbox_a.pid, &to, term_body(&Term::Int(n)).into())
            .unwrap();
    }
    a.send(
        &inbox_a.pid,
        &Dest::Pid(inbox_b.pid.clone()),
        term_body(&big).into(),
    )
    .unwrap();
    for n in 0..1000 {
        let got = inbox_b.wait(deadline()).expect("a message over TLS");
        assert_eq!(got.to_term().unwrap(), Term::Int(n));
    }
    let got = inbox_b.wait(deadline()).expect("the large message");
    assert_eq!(got.to_term().unwrap(), big);
    b.send(
        &inbox_b.pid,
        &Dest::Pid(inbox_a.pid.clone()),
        term_body(&Term::atom("back")).into(),
    )
    .unwrap();
    let got = inbox_a.wait(deadline()).expect("a reply over TLS");
    assert_eq!(got.to_term().unwrap(), Term::atom("back"));
    a.close();
    b.close();
}

#[test]
fn tls_1_2_alone_and_tls_1_3_alone_meet_a_node_that_offers_both() {
    let ca = TestCa::new();
    let both = ca.role("both", Leaf::default());
    let nodes = Nodes::new();
    let server = nodes.start("both", |c| c.transport = tls(&both));
    for version in [TlsVersion::Tls12, TlsVersion::Tls13] {
        let one = TlsRole {
            versions: vec![version],
            ..both.clone()
        };
        let client = nodes.start("one", |c| c.transport = tls(&one));
        assert_eq!(dial(&client, &server), Ok(()), "{version:?}");
        client.close();
    }
    let only_12 = TlsRole {
        versions: vec![TlsVersion::Tls12],
        ..both.clone()
    };
    let only_13 = TlsRole {
        versions: vec![TlsVersion::Tls13],
        ..both.clone()
    };
    let old = nodes.start("old", |c| c.transport = tls(&only_12));
    let new = nodes.start("new", |c| c.transport = tls(&only_13));
    let why = dial(&new, &old).expect_err("no common version");
    assert!(why.contains("TLS handshake with"), "{why}");
    server.close();
    old.close();
    new.close();
}

/// Each refusal: `ping` gives false, the dial's error (which the log line carries) says why,
/// well within the handshake timeout, and the refusing node keeps serving others.
#[test]
fn refusals_say_why_and_never_hang() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let good = ca.role("good", Leaf::default());
    let nodes = Nodes::new();
    let server = nodes.start("server", |c| c.transport = tls(&good));
    let cases: [(&str, TlsRole, &str); 3] = [
        (
            "a certificate from another CA",
            TlsRole {
                cafile: Some(other_ca.cafile.clone()),
                ..other_ca.role("stranger", Leaf::default())
            },
            "unknown CA",
        ),
        (
            "a certificate for another host",
            ca.role(
                "elsewhere",
                Leaf {
                    hosts: &["elsewhere.example"],
                    ..Leaf::default()
                },
            ),
            "does not name the peer's host",
        ),
        (
            "an expired certificate",
            ca.role(
                "expired",
                Leaf {
                    expired: true,
                    ..Leaf::default()
                },
            ),
            "expired",
        ),
    ];
    for (case, role, reason) in cases {
        // The refused node dials the good one: the good one's client side... and the good one
        // dials the refused one: its own checks refuse the certificate it is shown.
        let refused = nodes.start("refused", |c| {
            c.transport = tls(&role);
            short_handshake(c);
        });
        let started = Instant::now();
        let why = dial(&server, &refused).expect_err(case);
        assert!(why.contains(reason), "{case}: {why}");
        assert!(
            why.starts_with(&format!("TLS handshake with {} failed", refused.name())),
            "{case}: {why}"
        );
        assert!(!refused
            .ping(server.name().as_str(), Duration::from_secs(3))
            .unwrap());
        assert!(started.elapsed() < Duration::from_secs(5), "{case}");
        refused.close();
    }
    // The server still lets a good node in.
    let friend = nodes.start("friend", |c| c.transport = tls(&good));
    assert_eq!(dial(&friend, &server), Ok(()));
    friend.close();
    server.close();
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new();
    let good = ca.role("good", Leaf::default());
    let nodes = Nodes::new();
    let server = nodes.start("server", |c| c.transport = tls(&good));
    let port = server.port();
    let cafile = ca.cafile.clone();
    let outcome = server.runtime().block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(&cafile).unwrap();
        for cert in rustls_pemfile_certs(&pem) {
            roots.add(cert).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let attempt = async {
            let mut tls = connector.connect(name, tcp).await?;
            // TLS 1.3 refuses after the client's half of the handshake: on the first read.
            tls.write_all(&[0, 1, b'x']).await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map(|_| ())
        };
        tokio::time::timeout(Duration::from_secs(5), attempt).await
    });
    match outcome {
        Ok(Err(_)) => {}
        Ok(Ok(())) => panic!("a client without a certificate got data"),
        Err(_) => panic!("the refusal hung"),
    }
    let friend = nodes.start("friend", |c| c.transport = tls(&good));
    assert_eq!(dial(&friend, &server), Ok(()));
    friend.close();
    server.close();
}

/// The certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("certificates")
}

#[test]
fn plain_and_tls_nodes_refuse_each_other_on_time() {
    let ca = TestCa::new();
    let role = ca.role("node", Leaf::default());
    let nodes = Nodes::new();
    let plain = nodes.start("plain", short_handshake);
    let secure = nodes.start("secure", |c| {
        c.transport = tls(&role);
        short_handshake(c);
    });
    for (from, to) in [(&plain, &secure), (&secure, &plain)] {
        let started = Instant::now();
        assert!(dial(from, to).is_err(), "{} -> {}", from.name(), to.name());
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }
    let why = dial(&secure, &plain).unwrap_err();
    assert!(why.contains("plain TCP node"), "{why}");
    plain.close();
    secure.close();
}

#[test]
fn a_silent_client_does_not_hold_up_other_connections() {
    let ca = TestCa::new();
    let role = ca.role("node", Leaf::default());
    let nodes = Nodes::new();
    let server = nodes.start("server", |c| {
        c.transport = tls(&role);
        c.handshake_timeout = Duration::from_secs(5);
    });
    let silent: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap())
        .collect();
    let friend = nodes.start("friend", |c| c.transport = tls(&role));
    let started = Instant::now();
    assert_eq!(dial(&friend, &server), Ok(()));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
    friend.close();
    server.close();
}

#[test]
fn bad_files_are_clear_errors() {
    let ca = TestCa::new();
    let good = ca.role("good", Leaf::default());
    let missing = TlsRole {
        certfile: "/nonexistent/node.pem".into(),
        ..good.clone()
    };
    let error = Tls::new(&missing, &good).unwrap_err().to_string();
    assert!(error.contains("/nonexistent/node.pem"), "{error}");
    let no_ca = TlsRole {
        cafile: None,
        ..good.clone()
    };
    let error = Tls::new(&good, &no_ca).unwrap_err().to_string();
    assert!(error.contains("CA file"), "{error}");
    let key_as_cert = TlsRole {
        certfile: good.keyfile.clone(),
        ..good.clone()
    };
    assert!(Tls::new(&key_as_cert, &good).is_err());
    // A TLS transport never offers a raw socket to the handshake: 4-byte prefixes.
    assert_eq!(
        tls_with(&good, &good).length_prefix(),
        crate::dist::handshake::LengthPrefix::U32
    );
    assert_eq!(
        Transport::Tcp.length_prefix(),
        crate::dist::handshake::LengthPrefix::U16
    );
}
