//! Tests of the EPMD client against the embedded EPMD, a real `epmd`, none at all, and fake
//! ones that answer garbage or nothing.

use super::*;
use crate::epmd::proto::{NODE_TYPE_HIDDEN, NODE_TYPE_NORMAL};
use crate::epmd::server::EmbeddedEpmd;
use crate::test_support::{eventually, free_port, random_name, spawn_or_skip};
use std::net::Ipv4Addr;
use std::process::Command;
use tokio::net::TcpListener;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

async fn is_registered(epmd: SocketAddr, name: &str) -> bool {
    let listed = names(epmd).await.unwrap();
    listed.iter().any(|(n, _)| n == name)
}

/// The checks every EPMD must pass, real or embedded.
async fn exercise(epmd: SocketAddr) {
    let name = random_name("py");
    let other = random_name("other");

    let reg = register(epmd, &name, 4711, true).await.unwrap();
    assert_ne!(reg.creation, 0);
    assert_eq!(
        (reg.alive(), reg.port(), reg.epmd()),
        (name.as_str(), 4711, epmd)
    );

    let info = port_please(epmd, &name).await.unwrap().expect("registered");
    assert_eq!(info, NodeInfo::new(&name, 4711, true));
    assert_eq!(info.node_type, NODE_TYPE_HIDDEN);
    assert_eq!(port_please(epmd, &other).await.unwrap(), None);

    let visible = register(epmd, &other, 4712, false).await.unwrap();
    let info = port_please(epmd, &other).await.unwrap().unwrap();
    assert_eq!((info.port, info.node_type), (4712, NODE_TYPE_NORMAL));

    let listed = names(epmd).await.unwrap();
    assert!(listed.contains(&(name.clone(), 4711)), "{listed:?}");
    assert!(listed.contains(&(other.clone(), 4712)), "{listed:?}");

    let err = register(epmd, &name, 4713, true).await.unwrap_err();
    assert!(matches!(&err, EpmdError::NameTaken { name: n, .. } if *n == name));
    assert!(err
        .to_string()
        .contains(&format!("name '{name}' is already registered")));
    // The refused attempt left the first registration alone.
    assert_eq!(port_please(epmd, &name).await.unwrap().unwrap().port, 4711);

    let first_creation = reg.creation;
    drop(reg);
    let gone = eventually(TIMEOUT, || async {
        (!is_registered(epmd, &name).await).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "dropping the registration must unregister '{name}'"
    );
    assert_eq!(port_please(epmd, &name).await.unwrap(), None);
    assert!(is_registered(epmd, &other).await);

    let again = register(epmd, &name, 4714, true).await.unwrap();
    assert_ne!(again.creation, 0);
    assert_ne!(again.creation, first_creation);
    assert_eq!(port_please(epmd, &name).await.unwrap().unwrap().port, 4714);
    drop(visible);
}

#[tokio::test]
async fn client_against_embedded_epmd() {
    let server = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    exercise(server.local_addr()).await;
}

#[tokio::test]
async fn client_against_real_epmd() {
    let port = free_port();
    let Some(epmd_process) = spawn_or_skip(Command::new("epmd").args(["-port", &port.to_string()]))
    else {
        return;
    };
    let epmd = loopback(port);
    let up = eventually(TIMEOUT, || async { names(epmd).await.ok() }).await;
    assert!(up.is_some(), "epmd on port {port} did not come up");

    exercise(epmd).await;

    // When the EPMD goes away, a registration learns about it.
    let mut reg = register(epmd, &random_name("py"), 1234, true)
        .await
        .unwrap();
    epmd_process.stop();
    tokio::time::timeout(TIMEOUT, reg.closed())
        .await
        .expect("closed() must resolve once epmd is gone");
    let err = names(epmd).await.unwrap_err();
    assert!(err.is_connection_refused(), "{err}");
}

#[tokio::test]
async fn no_epmd_is_a_clear_error() {
    let epmd = loopback(free_port());
    let err = register(epmd, "py", 1, true).await.unwrap_err();
    assert!(err.is_connection_refused(), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("no EPMD at {epmd}")),
        "{err}"
    );
    assert!(port_please(epmd, "py")
        .await
        .unwrap_err()
        .is_connection_refused());
    assert!(names(epmd).await.unwrap_err().is_connection_refused());
}

#[tokio::test]
async fn unusable_names_are_refused_before_connecting() {
    let epmd = loopback(free_port());
    for name in ["", "a@b", &"x".repeat(256)] {
        let err = register(epmd, name, 1, true).await.unwrap_err();
        assert!(
            matches!(err, EpmdError::InvalidName { .. }),
            "{name}: {err}"
        );
    }
}

/// A fake EPMD that answers every connection with `answer`, then closes.
async fn fake_epmd(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind(loopback(0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 64];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer).await;
        }
    });
    addr
}

#[tokio::test]
async fn malformed_answers_are_protocol_errors() {
    let epmd = fake_epmd(b"garbage").await;
    for err in [
        register(epmd, "py", 1, true).await.unwrap_err(),
        port_please(epmd, "py").await.unwrap_err(),
        names(epmd).await.unwrap_err(),
    ] {
        assert!(matches!(err, EpmdError::Protocol { .. }), "{err:?}");
    }
    // An answer cut short by the close.
    let epmd = fake_epmd(&[118, 0, 1]).await;
    let err = register(epmd, "py", 1, true).await.unwrap_err();
    assert!(matches!(err, EpmdError::Io { .. }), "{err:?}");
}

#[tokio::test]
async fn legacy_alive2_resp_and_closed() {
    // An old EPMD: 16-bit creation; it closes the registration right after answering.
    let epmd = fake_epmd(&[121, 0, 0, 3]).await;
    let mut reg = register(epmd, "py", 1, true).await.unwrap();
    assert_eq!(reg.creation, 3);
    tokio::time::timeout(TIMEOUT, reg.closed())
        .await
        .expect("closed() must resolve when EPMD closes the connection");
}

#[tokio::test]
async fn silent_epmd_times_out() {
    let listener = TcpListener::bind(loopback(0)).await.unwrap();
    let epmd = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let err = port_please(epmd, "py").await.unwrap_err();
    assert!(matches!(err, EpmdError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    holder.abort();
}

#[test]
fn epmd_port_parsing() {
    // The environment itself is left alone: other tests in the process may read it.
    assert_eq!(port_from_env(Some("14369")), 14369);
    assert_eq!(port_from_env(Some(" 14369\n")), 14369);
    assert_eq!(port_from_env(Some("not a port")), DEFAULT_EPMD_PORT);
    assert_eq!(port_from_env(Some("70000")), DEFAULT_EPMD_PORT);
    assert_eq!(port_from_env(None), DEFAULT_EPMD_PORT);
}
