//! Test helpers for the node's own tests: nodes of this process on loopback, and a throwaway
//! certificate authority for the TLS tests.

use super::transport::tls::{Tls, TlsRole};
use super::{Node, NodeConfig, Transport};
use crate::test_support::{free_port, random_name};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Nodes of this process on loopback, sharing a private EPMD (the first one started serves
/// it): each call of [`Nodes::start`] adds one, made from the default configuration changed by
/// `adjust`.
pub struct Nodes {
    epmd_port: u16,
    cookie: String,
}

impl Nodes {
    pub fn new() -> Nodes {
        Nodes {
            epmd_port: free_port(),
            cookie: random_name("cookie"),
        }
    }

    pub fn start(&self, alive: &str, adjust: impl FnOnce(&mut NodeConfig)) -> Node {
        let mut config = NodeConfig {
            name: Some(random_name(&format!("{alive}_"))),
            cookie: Some(self.cookie.clone()),
            listen: "127.0.0.1:0".parse().expect("an address"),
            epmd_port: Some(self.epmd_port),
            ..NodeConfig::default()
        };
        adjust(&mut config);
        Node::start(config).expect("the node starts")
    }
}

/// Two plain TCP nodes sharing a private EPMD.
pub fn node_pair() -> (Node, Node) {
    let nodes = Nodes::new();
    (nodes.start("a", |_| {}), nodes.start("b", |_| {}))
}

/// A certificate authority whose files live in a directory of their own, removed on drop.
pub struct TestCa {
    dir: PathBuf,
    key: KeyPair,
    cert: rcgen::Certificate,
    pub cafile: PathBuf,
}

/// What a leaf certificate should say.
#[derive(Default)]
pub struct Leaf<'a> {
    /// The host names (and IP literals) it is valid for.
    pub hosts: &'a [&'a str],
    /// Already expired.
    pub expired: bool,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = std::env::temp_dir().join(random_name("erlnode-tls-"));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // A name of its own: two test CAs must not look like one.
        let name = random_name("test-ca-");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        let cafile = dir.join("ca.pem");
        std::fs::write(&cafile, cert.pem()).expect("ca.pem written");
        TestCa {
            dir,
            key,
            cert,
            cafile,
        }
    }

    /// A leaf for both roles (serverAuth and clientAuth, `CA:FALSE`), valid for this host
    /// (short name, `localhost`, 127.0.0.1) unless `leaf.hosts` says otherwise; returns its
    /// certificate and key files.
    pub fn leaf(&self, file: &str, leaf: Leaf<'_>) -> (PathBuf, PathBuf) {
        let own = [
            crate::node::names::short_hostname(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        let hosts: Vec<String> = match leaf.hosts {
            [] => own.to_vec(),
            hosts => hosts.iter().map(|h| h.to_string()).collect(),
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.subject_alt_names = hosts
            .iter()
            .map(|h| match h.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(h.clone().try_into().expect("a DNS name")),
            })
            .collect();
        params.distinguished_name.push(DnType::CommonName, "node");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if leaf.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a leaf certificate");
        let certfile = self.dir.join(format!("{file}.pem"));
        let keyfile = self.dir.join(format!("{file}.key"));
        std::fs::write(&certfile, cert.pem()).expect("leaf written");
        std::fs::write(&keyfile, key.serialize_pem()).expect("key written");
        (certfile, keyfile)
    }

    /// Mutual TLS with a leaf of this CA, as both roles.
    pub fn role(&self, file: &str, leaf: Leaf<'_>) -> TlsRole {
        let (certfile, keyfile) = self.leaf(file, leaf);
        TlsRole::new(certfile, keyfile, &self.cafile)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The TLS transport of `role` in both roles.
pub fn tls(role: &TlsRole) -> Transport {
    tls_with(role, role)
}

pub fn tls_with(server: &TlsRole, client: &TlsRole) -> Transport {
    Transport::Tls(Arc::new(Tls::new(server, client).expect("a TLS set-up")))
}
