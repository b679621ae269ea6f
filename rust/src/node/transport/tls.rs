//! TLS distribution, as OTP's `inet_tls_dist`: TLS starts on the raw TCP connection before
//! anything else, and the distribution handshake and every frame then run inside it.
//! <https://www.erlang.org/doc/apps/ssl/ssl_distribution.html>
//!
//! rustls with one crypto provider (ring). Verification is OTP 26's default and stricter: a
//! dialing node checks the server's chain against the CA and the host part of the peer's
//! node name; an accepting node requires and verifies a client certificate (mutual TLS).

use super::{Accepted, Stream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// One role's options, as a section (`server` or `client`) of an `-ssl_dist_optfile` holds
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRole {
    /// This node's certificate chain (PEM, leaf first).
    pub certfile: PathBuf,
    /// Its private key (PEM).
    pub keyfile: PathBuf,
    /// The CA certificates peers are checked against (PEM); needed when `verify` is set.
    pub cafile: Option<PathBuf>,
    /// Check the peer's certificate (OTP's `verify_peer`).
    pub verify: bool,
    /// Server role with `verify`: refuse a client that sends no certificate (OTP's
    /// `fail_if_no_peer_cert`).
    pub fail_if_no_peer_cert: bool,
    /// Client role: the name to send as SNI and to check the server's certificate against,
    /// instead of the host part of the peer's node name.
    pub server_name: Option<String>,
    /// The versions offered; empty means TLS 1.3 and 1.2 (OTP nodes offer 1.2 alone unless
    /// their options say otherwise, and then 1.2 is what they get).
    pub versions: Vec<TlsVersion>,
}

impl TlsRole {
    /// Mutual TLS with one certificate, key and CA, as most clusters use for both roles.
    pub fn new(
        certfile: impl Into<PathBuf>,
        keyfile: impl Into<PathBuf>,
        cafile: impl Into<PathBuf>,
    ) -> TlsRole {
        TlsRole {
            certfile: certfile.into(),
            keyfile: keyfile.into(),
            cafile: Some(cafile.into()),
            verify: true,
            fail_if_no_peer_cert: true,
            server_name: None,
            versions: Vec::new(),
        }
    }

    fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        match self.versions.as_slice() {
            [] => vec![&rustls::version::TLS13, &rustls::version::TLS12],
            versions => versions.iter().map(|v| v.rustls()).collect(),
        }
    }
}

/// Why a TLS set-up cannot be built: a file, a key, or an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The node's TLS set-up: what it uses to dial and to accept.
pub struct Tls {
    client: TlsConnector,
    server: TlsAcceptor,
    server_name: Option<String>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs: only what is not secret.
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificates and keys of both roles and builds their rustls set-ups.
    pub fn new(server: &TlsRole, client: &TlsRole) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(Tls {
            client: TlsConnector::from(Arc::new(client_config(client, &provider)?)),
            server: TlsAcceptor::from(Arc::new(server_config(server, &provider)?)),
            server_name: client.server_name.clone(),
        })
    }

    /// The client side of the TLS handshake with the node on `host` (the host part of its
    /// node name, which its certificate must name).
    pub(super) async fn connect(&self, tcp: TcpStream, host: &str) -> io::Result<Stream> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a host name a certificate can name"),
            )
        })?;
        Ok(Stream::other(self.client.connect(name, tcp).await?))
    }

    /// The server side of the TLS handshake with a node that dialed us, and the certificate
    /// it showed, if any.
    pub(super) async fn accept(&self, tcp: TcpStream) -> io::Result<Accepted> {
        let stream = self.server.accept(tcp).await?;
        let certificate = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.clone().into_owned());
        Ok(Accepted {
            stream: Stream::other(stream),
            certificate,
        })
    }
}

fn client_config(role: &TlsRole, provider: &Arc<CryptoProvider>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&role.versions())
        .map_err(|e| TlsError(format!("TLS client versions: {e}")))?;
    let builder = if role.verify {
        builder.with_root_certificates(roots(role, "client")?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(
                provider.signature_verification_algorithms,
            )))
    };
    builder
        .with_client_auth_cert(certificates(&role.certfile)?, private_key(&role.keyfile)?)
        .map_err(|e| TlsError(format!("TLS client certificate and key: {e}")))
}

fn server_config(role: &TlsRole, provider: &Arc<CryptoProvider>) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&role.versions())
        .map_err(|e| TlsError(format!("TLS server versions: {e}")))?;
    let builder = if role.verify {
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(role, "server")?),
            provider.clone(),
        );
        let verifier = match role.fail_if_no_peer_cert {
            true => verifier,
            false => verifier.allow_unauthenticated(),
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsError(format!("TLS client verification: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(certificates(&role.certfile)?, private_key(&role.keyfile)?)
        .map_err(|e| TlsError(format!("TLS server certificate and key: {e}")))
}

fn roots(role: &TlsRole, which: &str) -> Result<RootCertStore, TlsError> {
    let Some(cafile) = &role.cafile else {
        return Err(TlsError(format!(
            "TLS {which}: verifying peers needs a CA file (cacertfile)"
        )));
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(cafile)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("CA file {}: {e}", cafile.display())))?;
    }
    Ok(roots)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |e: rustls::pki_types::pem::Error| {
        TlsError(format!(
            "cannot read certificates from {}: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(TlsError(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        TlsError(format!(
            "cannot read a private key from {}: {e}",
            path.display()
        ))
    })
}

/// Whether `certificate` names `host` (a DNS name or an IP address), as a server certificate
/// must name the host a client dials.
pub fn certificate_names(certificate: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    webpki::EndEntityCert::try_from(certificate)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// What went wrong in a TLS handshake, in words a user can act on.
pub fn describe(error: &io::Error) -> String {
    use rustls::Error as E;
    if error.kind() == io::ErrorKind::TimedOut {
        return "timed out (is the peer a plain TCP node?)".to_string();
    }
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<E>()) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                "the peer closed the connection (a plain TCP node, or one that refuses us)"
                    .to_string()
            }
            _ => error.to_string(),
        };
    };
    match tls {
        E::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "certificate signed by unknown CA".to_string(),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate does not name the peer's host".to_string()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".to_string()
            }
            other => format!("bad certificate: {other:?}"),
        },
        E::NoCertificatesPresented => "the client sent no certificate".to_string(),
        E::AlertReceived(alert) => format!("the peer refused the handshake (alert: {alert:?})"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the peer does not speak TLS (a plain TCP node?)".to_string()
        }
        other => other.to_string(),
    }
}

/// The client verifier of `verify: false`: any server certificate is accepted, but the
/// handshake's signatures are still checked (against the certificate the server sent).
#[derive(Debug)]
struct AnyServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
