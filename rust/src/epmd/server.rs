//! An embedded EPMD, so a cluster of Python nodes needs no Erlang install, and `erl` nodes
//! started later (with `-start_epmd false` or finding the port taken) register with it.
//!
//! It speaks the same protocol as OTP's `epmd`: ALIVE2 (the registration lives as long as
//! that connection), PORT_PLEASE2, NAMES and DUMP. KILL_REQ is refused with `NO` and STOP_REQ
//! is ignored, as `epmd` does without `-relaxed_command_check`: no client can take the server
//! or another node's name away. Malformed or oversized requests are logged and that
//! connection is closed.
//!
//! # Lifetime
//!
//! The node that started the server holds the [`EmbeddedEpmd`] handle. While the handle is
//! held, the server serves whatever happens. When the node shuts down it calls
//! [`EmbeddedEpmd::release`] (dropping the handle does the same): from then on the server
//! keeps serving **only as long as some registration remains**, so `erl` nodes registered with
//! it are not stranded while this process lives, and it stops listening (freeing the port)
//! as soon as the last registration goes away. A server released with no registrations stops
//! at once. The server lives on the Tokio runtime it was started on; if the whole process
//! exits, it goes with it (like any EPMD dying, the `erl` nodes then lose their registration).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::proto::{Alive2Resp, NamesResp, NodeInfo, Port2Resp, Request};

/// Longest request body accepted; a real one is a name plus a small extra field.
const MAX_REQUEST: usize = 4096;
/// A client must send its request within this time after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (registrations included); beyond that new ones are dropped.
const MAX_CONNECTIONS: usize = 1024;

/// A running embedded EPMD. See the module documentation for its lifetime rule.
#[derive(Debug)]
pub struct EmbeddedEpmd {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Set once the server should stop listening; never reset.
    stop: watch::Sender<bool>,
    port: u16,
}

#[derive(Debug, Default)]
struct State {
    nodes: HashMap<String, Registered>,
    /// The last creation handed to each name, so a re-registration always gets another one.
    last_creation: HashMap<String, u32>,
    released: bool,
    next_id: u64,
}

#[derive(Debug)]
struct Registered {
    info: NodeInfo,
    /// Tells this registration from a later one under the same name.
    id: u64,
}

impl EmbeddedEpmd {
    /// Starts listening on `addr` and serving on spawned Tokio tasks. Fails with
    /// `AddrInUse` when something (such as another EPMD) already listens there.
    pub async fn bind(addr: SocketAddr) -> io::Result<EmbeddedEpmd> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, _) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stop,
            port: local_addr.port(),
        });
        tokio::spawn(accept_loop(listener, shared.clone(), stopped_tx));
        log::info!("embedded EPMD listening on {local_addr}");
        Ok(EmbeddedEpmd {
            local_addr,
            shared,
            stopped,
        })
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The owner no longer needs the server: it serves on while registrations remain and
    /// stops listening once there are none. Idempotent.
    pub fn release(&self) {
        let mut state = self.shared.lock();
        state.released = true;
        self.shared.stop_if_done(&state);
    }

    /// The names registered right now, with their ports, sorted by name.
    pub fn registered_names(&self) -> Vec<(String, u16)> {
        self.shared.names()
    }

    /// False once the server has stopped listening.
    pub fn is_serving(&self) -> bool {
        !*self.stopped.borrow()
    }

    /// Resolves once the server has stopped listening (the port is free again).
    pub async fn wait_stopped(&self) {
        let mut stopped = self.stopped.clone();
        // An error means the accept loop is gone, which also means it stopped.
        let _ = stopped.wait_for(|s| *s).await;
    }
}

impl Drop for EmbeddedEpmd {
    fn drop(&mut self) {
        self.release();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; should one ever, the map is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stop_if_done(&self, state: &State) {
        if state.released && state.nodes.is_empty() {
            self.stop.send_replace(true);
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn names(&self) -> Vec<(String, u16)> {
        let state = self.lock();
        let mut names: Vec<_> = state
            .nodes
            .iter()
            .map(|(name, reg)| (name.clone(), reg.info.port))
            .collect();
        names.sort();
        names
    }

    /// Records the node unless its name is taken; returns (registration id, creation).
    fn register(&self, info: NodeInfo) -> Option<(u64, u32)> {
        let mut state = self.lock();
        if state.nodes.contains_key(&info.name) {
            return None;
        }
        let creation = new_creation(state.last_creation.get(&info.name).copied());
        state.last_creation.insert(info.name.clone(), creation);
        state.next_id += 1;
        let id = state.next_id;
        state
            .nodes
            .insert(info.name.clone(), Registered { info, id });
        Some((id, creation))
    }

    fn unregister(&self, name: &str, id: u64) {
        let mut state = self.lock();
        if state.nodes.get(name).is_some_and(|reg| reg.id == id) {
            state.nodes.remove(name);
            log::debug!("embedded EPMD: '{name}' unregistered");
        }
        self.stop_if_done(&state);
    }

    fn lookup(&self, name: &str) -> Option<NodeInfo> {
        self.lock().nodes.get(name).map(|reg| reg.info.clone())
    }
}

/// Removes a registration when its connection task ends, however it ends.
struct RegistrationGuard {
    shared: Arc<Shared>,
    name: String,
    id: u64,
}

impl Drop for RegistrationGuard {
    fn drop(&mut self) {
        self.shared.unregister(&self.name, self.id);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stopped: watch::Sender<bool>) {
    let mut stop = shared.stop.subscribe();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            // The `Ref` the wait yields is not `Send`; drop it inside the branch's future.
            _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            serve_connection(stream, peer, shared).await;
                            drop(permit);
                        });
                    }
                    Err(_) => log::warn!("embedded EPMD: too many connections, dropping {peer}"),
                },
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    log::warn!("embedded EPMD: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    log::info!("embedded EPMD on port {} stopped", shared.port);
    stopped.send_replace(true);
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(e)) => {
            log::warn!("embedded EPMD: bad request from {peer}: {e}");
            return;
        }
        Err(_) => {
            log::debug!("embedded EPMD: {peer} sent no request in time");
            return;
        }
    };
    let reply = match request {
        Request::Alive2(info) => return serve_alive(stream, peer, info, shared).await,
        Request::PortPlease2 { name } => match shared.lookup(&name) {
            Some(info) => Port2Resp::Found(info).encode(),
            None => Port2Resp::NotFound(1).encode(),
        },
        Request::Names => Ok(names_reply(&shared)),
        Request::Dump => Ok(dump_reply(&shared)),
        Request::Kill => {
            log::warn!("embedded EPMD: refused KILL_REQ from {peer}");
            Ok(b"NO".to_vec())
        }
        Request::Stop { name } => {
            log::warn!("embedded EPMD: ignored STOP_REQ for '{name}' from {peer}");
            return;
        }
    };
    match reply {
        Ok(bytes) => {
            if let Err(e) = stream.write_all(&bytes).await {
                log::debug!("embedded EPMD: could not answer {peer}: {e}");
            }
        }
        // Only reachable with a registered record too big to encode, which decode prevents.
        Err(e) => log::warn!("embedded EPMD: cannot encode answer for {peer}: {e}"),
    }
}

async fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let len = stream.read_u16().await? as usize;
    if len == 0 || len > MAX_REQUEST {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("request length {len} out of range 1..={MAX_REQUEST}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Request::decode(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Registers the node for as long as this connection stays open.
async fn serve_alive(mut stream: TcpStream, peer: SocketAddr, info: NodeInfo, shared: Arc<Shared>) {
    // A server on its way down takes no new registrations; the client sees the connection
    // close and can look for (or start) another EPMD.
    if shared.stopping() {
        return;
    }
    // Clients that speak version 6 expect the 32-bit creation answer, older ones the legacy one.
    let extended = info.highest_version >= 6;
    let name = info.name.clone();
    let port = info.port;
    let Some((id, creation)) = shared.register(info) else {
        log::info!("embedded EPMD: '{name}' from {peer} refused, name already registered");
        let refusal = Alive2Resp {
            result: 1,
            creation: 0,
            extended,
        };
        let _ = stream.write_all(&refusal.encode()).await;
        return;
    };
    let _guard = RegistrationGuard {
        shared,
        name: name.clone(),
        id,
    };
    log::debug!("embedded EPMD: '{name}' registered at port {port} from {peer}");
    let answer = Alive2Resp {
        result: 0,
        creation,
        extended,
    };
    if stream.write_all(&answer.encode()).await.is_err() {
        return;
    }
    // The node sends nothing more; the registration ends when the connection does.
    let mut scratch = [0u8; 64];
    while let Ok(n) = stream.read(&mut scratch).await {
        if n == 0 {
            break;
        }
    }
}

fn names_reply(shared: &Shared) -> Vec<u8> {
    NamesResp {
        epmd_port: shared.port as u32,
        names: shared.names(),
    }
    .encode()
}

/// Same layout as `epmd -d`'s answer; only meant for humans.
fn dump_reply(shared: &Shared) -> Vec<u8> {
    let mut out = (shared.port as u32).to_be_bytes().to_vec();
    for (name, port) in shared.names() {
        out.extend_from_slice(format!("active name     <{name}> at port {port}\n").as_bytes());
    }
    out
}

/// A random non-zero creation, never equal to `previous`.
fn new_creation(previous: Option<u32>) -> u32 {
    let candidate = getrandom::u32().unwrap_or_else(|_| {
        // No OS randomness available: the clock still differs between registrations.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(1)
    });
    if candidate == 0 || Some(candidate) == previous {
        previous.unwrap_or(0).wrapping_add(1).max(1)
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests;
