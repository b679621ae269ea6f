//! The node's access rules: the allow list, and the cookie kept out of what can be printed.

use super::config::allows;
use super::testing::Nodes;
use super::NodeConfig;
use std::time::Duration;

#[test]
fn allow_list_entries_mean_what_net_kernel_allow_means() {
    let list = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
    assert!(allows(&[], "anyone@anywhere"));
    let allowed = list(&["a@h1", "h2", "b@"]);
    assert!(allows(&allowed, "a@h1"));
    assert!(!allows(&allowed, "a@h3"), "a full name names one node");
    assert!(allows(&allowed, "x@h2"), "a host lets in every node on it");
    assert!(
        allows(&allowed, "b@h9"),
        "`name@` lets in that name on any host"
    );
    assert!(!allows(&allowed, "c@h1"));
    assert!(!allows(&allowed, "h2@elsewhere"));
}

#[test]
fn a_node_not_on_the_allow_list_is_refused_with_not_allowed() {
    let nodes = Nodes::new();
    let server = nodes.start("server", |c| {
        c.allowed_nodes = vec!["nobody@nowhere".into()]
    });
    let stranger = nodes.start("stranger", |_| {});
    assert!(!stranger
        .ping(server.name().as_str(), Duration::from_secs(3))
        .unwrap());
    let (inner, peer) = (stranger.inner().clone(), server.name());
    let refusal = stranger
        .runtime()
        .block_on(async move { inner.dial(&peer).await });
    assert!(
        matches!(&refusal, Err(super::peers::DialError::Failed(why)) if why.contains("not_allowed")),
        "{refusal:?}"
    );
    // allow/1 adds (the stranger's host), and then it may connect.
    let host = super::names::split(stranger.name().as_str()).1.to_string();
    server.allow(std::slice::from_ref(&host));
    assert_eq!(server.allowed(), vec!["nobody@nowhere".to_string(), host]);
    assert!(stranger
        .ping(server.name().as_str(), Duration::from_secs(3))
        .unwrap());
    server.close();
    stranger.close();
}

#[test]
fn the_cookie_never_shows_in_debug_output() {
    let config = NodeConfig {
        cookie: Some("SECRETCOOKIE".into()),
        ..NodeConfig::default()
    };
    assert!(!format!("{config:?}").contains("SECRETCOOKIE"));
    let handshake = crate::dist::handshake::HandshakeConfig::new("a@h", 1, "SECRETCOOKIE");
    assert!(!format!("{handshake:?}").contains("SECRETCOOKIE"));
}
