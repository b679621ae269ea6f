//! Tests of the embedded EPMD: bad requests, old clients, its lifetime rule, and real `erl`
//! nodes registering with it and finding each other.

use super::*;
use crate::epmd::client::{self, names, port_please, register, TIMEOUT};
use crate::epmd::proto::{NODE_TYPE_NORMAL, PORT2_RESP};
use crate::test_support::{eventually, random_name, spawn_or_skip};
use std::net::Ipv4Addr;
use std::process::Command;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Sends raw bytes and half-closes, returns everything the server sends before closing.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut answer))
        .await
        .expect("the server must close the connection")
        .unwrap_or_default();
    answer
}

#[tokio::test]
async fn bad_requests_close_the_connection_and_harm_nothing() {
    let server = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    let addr = server.local_addr();
    let name = random_name("py");
    let _reg = register(addr, &name, 5000, true).await.unwrap();

    assert_eq!(raw(addr, &[0, 0]).await, b"");
    assert_eq!(raw(addr, &[0xff, 0xff, 1, 2, 3]).await, b"");
    assert_eq!(raw(addr, &[0, 1, 42]).await, b"");
    assert_eq!(raw(addr, &[0, 3, 120, 0, 1]).await, b"");
    // Announces more than it sends, then hangs up.
    assert_eq!(raw(addr, &[0, 9, 122]).await, b"");

    // KILL is refused as epmd does with live nodes; STOP is ignored.
    assert_eq!(raw(addr, &[0, 1, 107]).await, b"NO");
    let mut stop = vec![0, (name.len() + 1) as u8, 115];
    stop.extend_from_slice(name.as_bytes());
    assert_eq!(raw(addr, &stop).await, b"");

    assert!(server.is_serving());
    assert_eq!(server.registered_names(), vec![(name.clone(), 5000)]);
    let dump = raw(addr, &[0, 1, 100]).await;
    assert_eq!(&dump[..4], &(addr.port() as u32).to_be_bytes());
    let text = String::from_utf8(dump[4..].to_vec()).unwrap();
    assert_eq!(text, format!("active name     <{name}> at port 5000\n"));

    // NAMES carries the server's own port first.
    let listing = raw(addr, &[0, 1, 110]).await;
    assert_eq!(&listing[..4], &(addr.port() as u32).to_be_bytes());
    // PORT_PLEASE2 for an unknown name: two bytes, as epmd answers.
    assert_eq!(raw(addr, &[0, 2, 122, b'q']).await, [PORT2_RESP, 1]);
}

#[tokio::test]
async fn old_clients_get_the_legacy_answer() {
    let server = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    let mut info = NodeInfo::new(&random_name("old"), 7, false);
    info.highest_version = 5;
    let frame = Request::Alive2(info).encode().unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut answer = [0u8; 4];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[..2], [121, 0]);
    assert_eq!(server.registered_names().len(), 1);
}

#[tokio::test]
async fn bind_fails_when_the_port_is_taken() {
    let first = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    let err = EmbeddedEpmd::bind(first.local_addr()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn released_server_lives_while_registrations_remain() {
    // Released with nothing registered: stops at once and frees the port.
    let idle = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    let idle_addr = idle.local_addr();
    idle.release();
    tokio::time::timeout(TIMEOUT, idle.wait_stopped())
        .await
        .unwrap();
    assert!(!idle.is_serving());
    assert!(names(idle_addr).await.unwrap_err().is_connection_refused());

    // Dropping the handle is a release too.
    let server = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    let addr = server.local_addr();
    let a = register(addr, &random_name("a"), 1, true).await.unwrap();
    let b = register(addr, &random_name("b"), 2, true).await.unwrap();
    let watcher = server.stopped.clone();
    drop(server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!*watcher.borrow());
    assert_eq!(names(addr).await.unwrap().len(), 2);

    // Registrations may still come and go while others remain.
    drop(a);
    let c = register(addr, &random_name("c"), 3, true).await.unwrap();
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(names(addr).await.unwrap().len(), 1);

    drop(c);
    let mut watcher = watcher;
    tokio::time::timeout(TIMEOUT, watcher.wait_for(|s| *s))
        .await
        .expect("the last unregistration must stop a released server")
        .unwrap();
    assert!(names(addr).await.unwrap_err().is_connection_refused());
}

#[test]
fn creations_are_non_zero_and_change() {
    for previous in [None, Some(0), Some(1), Some(u32::MAX)] {
        let creation = new_creation(previous);
        assert_ne!(creation, 0);
        assert_ne!(Some(creation), previous);
    }
}

/// The real thing: `erl` registers with the embedded server, another `erl` finds it through
/// the server, the registration outlives the owner's release, and the server stops when
/// `erl` goes away.
#[tokio::test]
async fn real_erl_nodes_use_the_embedded_epmd() {
    let server = EmbeddedEpmd::bind(loopback(0)).await.unwrap();
    let addr = server.local_addr();
    let epmd_port = addr.port().to_string();
    let name = random_name("erl");
    let cookie = random_name("cookie");
    let erl = |args: &[&str]| {
        let mut command = Command::new("erl");
        command
            .env("ERL_EPMD_PORT", &epmd_port)
            .args(["-setcookie", &cookie, "-noshell", "-start_epmd", "false"])
            .args(args);
        command
    };
    let Some(node) = spawn_or_skip(&mut erl(&["-sname", &name])) else {
        return;
    };

    let seen = eventually(Duration::from_secs(30), || async {
        let listed = names(addr).await.ok()?;
        listed.into_iter().find(|(n, _)| *n == name)
    })
    .await;
    let (_, port) = seen.expect("erl did not register with the embedded EPMD");
    let info = port_please(addr, &name)
        .await
        .unwrap()
        .expect("erl is registered");
    assert_eq!(info.port, port);
    assert_ne!(port, 0);
    assert_eq!(info.node_type, NODE_TYPE_NORMAL);
    assert!(info.highest_version >= 6, "{info:?}");
    assert!(server.registered_names().contains(&(name.clone(), port)));

    // A second node resolves the first through our PORT2 answer and connects to it.
    let ping = format!(
        "[_, Host] = string:split(atom_to_list(node()), \"@\"), \
         Peer = list_to_atom(\"{name}@\" ++ Host), \
         halt(case net_adm:ping(Peer) of pong -> 0; pang -> 3 end)."
    );
    let pinger = random_name("ping");
    let mut ping_command = erl(&["-sname", &pinger, "-eval", &ping]);
    let status = tokio::task::spawn_blocking(move || ping_command.status())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "net_adm:ping through the embedded EPMD: {status}"
    );

    // Released while erl is registered: still serving.
    server.release();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_serving());
    let info = client::port_please(addr, &name).await.unwrap();
    assert_eq!(info.map(|i| i.port), Some(port));

    // erl goes away: its registration ends and the released server stops listening.
    node.stop();
    tokio::time::timeout(Duration::from_secs(10), server.wait_stopped())
        .await
        .expect("the server must stop once erl is gone");
    assert!(names(addr).await.unwrap_err().is_connection_refused());
}
