//! The native pieces of the command line (`python -m erlnode`, python/erlnode/_cli.py) that
//! need no node: EPMD's list of names (`erlnode names`) and an EPMD in the foreground
//! (`erlnode epmd`). Both run on the shared Tokio runtime with the GIL released.

use super::node::to_duration;
use crate::epmd::{self, EmbeddedEpmd};
use crate::node::runtime;
use pyo3::exceptions::{PyConnectionError, PyOSError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use std::net::{IpAddr, SocketAddr};

fn runtime_error(e: std::io::Error) -> PyErr {
    PyOSError::new_err(format!("cannot start the network runtime: {e}"))
}

/// `epmd_names(host, port, timeout) -> [(name, port), ...]`: the names registered with the
/// EPMD on `host:port` (what `net_adm:names(Host)` and `epmd -names` list), sorted by name.
///
/// Raises `ConnectionError` when no EPMD answers there (or it answers nonsense), `OSError`
/// when `host` does not resolve, and `TimeoutError` after `timeout` seconds.
#[pyfunction]
pub fn epmd_names(
    py: Python<'_>,
    host: &str,
    port: u16,
    timeout: f64,
) -> PyResult<Vec<(String, u16)>> {
    let timeout = to_duration(timeout)?;
    let rt = runtime::handle().map_err(runtime_error)?;
    let host = host.to_owned();
    let result = py.detach(|| {
        rt.block_on(async {
            tokio::time::timeout(timeout, names_at(&host, port))
                .await
                .unwrap_or_else(|_| {
                    Err(PyTimeoutError::new_err(format!(
                        "the EPMD on {host}:{port} did not answer within {timeout:?}"
                    )))
                })
        })
    });
    let mut names = result?;
    names.sort();
    Ok(names)
}

/// Tries every address `host` resolves to, IPv4 first (EPMD and `net_adm:names` use IPv4
/// unless told otherwise), until one answers.
async fn names_at(host: &str, port: u16) -> PyResult<Vec<(String, u16)>> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| PyOSError::new_err(format!("cannot resolve host {host:?}: {e}")))?
        .collect();
    addrs.sort_by_key(SocketAddr::is_ipv6);
    let mut last = None;
    for addr in addrs {
        match epmd::names(addr).await {
            Ok(names) => return Ok(names),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => PyConnectionError::new_err(e.to_string()),
        None => PyOSError::new_err(format!("host {host:?} has no address")),
    })
}

/// An EPMD served by this process: what `erlnode epmd` runs in the foreground. It serves
/// until the object is dropped; after that, as every embedded EPMD, only while nodes remain
/// registered with it (see `epmd::server`).
#[pyclass(name = "EmbeddedEpmd", module = "erlnode._erlnode", frozen)]
pub struct PyEmbeddedEpmd {
    server: EmbeddedEpmd,
}

#[pymethods]
impl PyEmbeddedEpmd {
    /// Starts listening on `address:port` (`"0.0.0.0"`: every IPv4 interface, as `epmd`).
    /// Raises `OSError` when the port is taken (another EPMD runs) or cannot be bound.
    #[new]
    fn new(py: Python<'_>, address: &str, port: u16) -> PyResult<Self> {
        let ip: IpAddr = address
            .parse()
            .map_err(|_| PyValueError::new_err(format!("{address:?} is not an IP address")))?;
        let addr = SocketAddr::new(ip, port);
        let rt = runtime::handle().map_err(runtime_error)?;
        let server = py
            .detach(|| rt.block_on(EmbeddedEpmd::bind(addr)))
            .map_err(|e| PyOSError::new_err(format!("cannot start an EPMD on {addr}: {e}")))?;
        Ok(PyEmbeddedEpmd { server })
    }

    /// The `ip:port` it listens on (the port chosen when 0 was asked for).
    #[getter]
    fn address(&self) -> String {
        self.server.local_addr().to_string()
    }

    /// The names registered right now, with their distribution ports, sorted by name.
    fn names(&self) -> Vec<(String, u16)> {
        self.server.registered_names()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(epmd_names, m)?)?;
    m.add_class::<PyEmbeddedEpmd>()?;
    Ok(())
}
