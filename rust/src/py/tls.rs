//! `erlnode.TLSConfig`: the TLS distribution settings a node is started with.

use crate::node::transport::optfile;
use crate::node::transport::tls::{Tls, TlsRole, TlsVersion};
use crate::node::Transport;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::path::PathBuf;
use std::sync::Arc;

/// TLS distribution (`-proto_dist inet_tls`) for a node: `Node(..., tls=TLSConfig(...))`.
///
/// `TLSConfig(certfile, keyfile, cafile)` uses one certificate for both roles and mutual TLS:
/// a dialing node checks the peer's certificate against `cafile` and the host part of its
/// node name; an accepting node requires a client certificate from the same CA. With
/// `verify=False` neither role checks certificates (for experiments only). `server_name`
/// replaces the host name checked (and sent as SNI) when dialing. `versions` limits the TLS
/// versions offered (`"tlsv1.2"`, `"tlsv1.3"`); by default both, so that an OTP node, which
/// offers TLS 1.2 only unless told otherwise, gets 1.2.
///
/// Example::
///
///     tls = erlnode.TLSConfig("node.pem", "node.key", "ca.pem")
///     node = erlnode.Node("py", tls=tls)
///
/// The files are read (and checked) here: a missing file or a key that does not fit its
/// certificate is a `ValueError` now, not a failed connection later.
#[pyclass(name = "TLSConfig", module = "erlnode._erlnode", frozen)]
pub struct PyTlsConfig {
    server: TlsRole,
    client: TlsRole,
    /// The optfile it was read from, if any (for `repr`).
    optfile: Option<PathBuf>,
    tls: Arc<Tls>,
}

impl PyTlsConfig {
    fn build(server: TlsRole, client: TlsRole, optfile: Option<PathBuf>) -> PyResult<Self> {
        let tls = Tls::new(&server, &client).map_err(|e| PyValueError::new_err(e.0))?;
        Ok(PyTlsConfig {
            server,
            client,
            optfile,
            tls: Arc::new(tls),
        })
    }

    /// The transport a node started with these settings uses.
    pub(super) fn transport(&self) -> Transport {
        Transport::Tls(self.tls.clone())
    }
}

fn version(name: &str) -> PyResult<TlsVersion> {
    match name.to_ascii_lowercase().as_str() {
        "tlsv1.2" | "1.2" => Ok(TlsVersion::Tls12),
        "tlsv1.3" | "1.3" => Ok(TlsVersion::Tls13),
        _ => Err(PyValueError::new_err(format!(
            "unsupported TLS version {name:?} (use \"tlsv1.2\" or \"tlsv1.3\")"
        ))),
    }
}

fn version_name(version: &TlsVersion) -> &'static str {
    match version {
        TlsVersion::Tls12 => "tlsv1.2",
        TlsVersion::Tls13 => "tlsv1.3",
    }
}

#[pymethods]
impl PyTlsConfig {
    #[new]
    #[pyo3(signature = (certfile, keyfile, cafile, *, verify=true, server_name=None, versions=None))]
    fn new(
        certfile: PathBuf,
        keyfile: PathBuf,
        cafile: Option<PathBuf>,
        verify: bool,
        server_name: Option<String>,
        versions: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let versions = versions
            .unwrap_or_default()
            .iter()
            .map(|v| version(v))
            .collect::<PyResult<Vec<_>>>()?;
        let role = TlsRole {
            certfile,
            keyfile,
            cafile,
            verify,
            fail_if_no_peer_cert: true,
            server_name,
            versions,
        };
        Self::build(role.clone(), role, None)
    }

    /// The settings of an `-ssl_dist_optfile` (`[{server, Opts}, {client, Opts}]`, Erlang
    /// term syntax), the file the cluster's Erlang nodes use. Reads `certfile`, `keyfile`,
    /// `cacertfile`, `verify`, `fail_if_no_peer_cert`, `versions` and
    /// `server_name_indication`; any other option is a `ValueError` naming it.
    ///
    /// Example::
    ///
    ///     tls = erlnode.TLSConfig.from_optfile("/etc/myapp/dist.conf")
    #[classmethod]
    fn from_optfile(_cls: &Bound<'_, PyType>, path: PathBuf) -> PyResult<Self> {
        let (server, client) = optfile::read(&path).map_err(|e| PyValueError::new_err(e.0))?;
        Self::build(server, client, Some(path))
    }

    /// The certificate file (the dialing role's; an optfile may give the roles different
    /// ones).
    ///
    /// Example::
    ///
    ///     erlnode.TLSConfig("node.pem", "node.key", "ca.pem").certfile   # PosixPath('node.pem')
    #[getter]
    fn certfile(&self) -> PathBuf {
        self.client.certfile.clone()
    }

    /// The private key's file.
    ///
    /// Example::
    ///
    ///     erlnode.TLSConfig("node.pem", "node.key", "ca.pem").keyfile    # PosixPath('node.key')
    #[getter]
    fn keyfile(&self) -> PathBuf {
        self.client.keyfile.clone()
    }

    /// The CA certificates peers are checked against (None: no checks).
    ///
    /// Example::
    ///
    ///     erlnode.TLSConfig("node.pem", "node.key", "ca.pem").cafile     # PosixPath('ca.pem')
    #[getter]
    fn cafile(&self) -> Option<PathBuf> {
        self.client.cafile.clone()
    }

    /// Whether peers' certificates are checked (by both roles).
    ///
    /// Example::
    ///
    ///     tls = erlnode.TLSConfig("node.pem", "node.key", None, verify=False)
    ///     tls.verify                          # False: for experiments only
    #[getter]
    fn verify(&self) -> bool {
        self.client.verify && self.server.verify
    }

    /// The host name checked (and sent as SNI) when dialing, instead of the peer's host.
    ///
    /// Example::
    ///
    ///     # every node's certificate names cluster.internal, whatever host it runs on
    ///     tls = erlnode.TLSConfig(
    ///         "node.pem", "node.key", "ca.pem", server_name="cluster.internal"
    ///     )
    ///     tls.server_name                     # 'cluster.internal'
    #[getter]
    fn server_name(&self) -> Option<String> {
        self.client.server_name.clone()
    }

    /// The TLS versions offered; empty: TLS 1.3 and 1.2.
    ///
    /// Example::
    ///
    ///     tls = erlnode.TLSConfig("node.pem", "node.key", "ca.pem", versions=["tlsv1.3"])
    ///     tls.versions                        # ['tlsv1.3']
    #[getter]
    fn versions(&self) -> Vec<&'static str> {
        self.client.versions.iter().map(version_name).collect()
    }

    fn __repr__(&self) -> String {
        match &self.optfile {
            Some(path) => format!("TLSConfig.from_optfile({:?})", path.display().to_string()),
            None => {
                let path = |p: &PathBuf| format!("{:?}", p.display().to_string());
                format!(
                    "TLSConfig({}, {}, {}, verify={})",
                    path(&self.client.certfile),
                    path(&self.client.keyfile),
                    self.client.cafile.as_ref().map_or("None".to_string(), path),
                    if self.verify() { "True" } else { "False" },
                )
            }
        }
    }
}
