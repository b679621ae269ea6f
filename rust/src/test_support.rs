//! Helpers shared by the tests: random names, free ports, child processes that are always
//! killed (by pid) when the test ends, even on failure, and the rule for a missing program.
//!
//! The unit tests use it as `crate::test_support`; the integration tests under `rust/tests/`
//! include this same file with `#[path]`, so it must not name `crate::` items.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A name no other test (or earlier run) uses.
pub fn random_name(prefix: &str) -> String {
    let n = getrandom::u64().expect("OS randomness");
    format!("{prefix}{n:016x}")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// A child process killed and reaped when dropped.
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Kills the process now (the same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` with null stdio, or returns `None` (with a note) when its program is not
/// installed. Under CI a missing program fails the test instead.
pub fn spawn_or_skip(command: &mut Command) -> Option<ChildGuard> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match command.spawn() {
        Ok(child) => Some(ChildGuard(child)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!(
                "note: {:?} not installed, skipping this test",
                command.get_program()
            );
            None
        }
        Err(e) => panic!("cannot start {:?}: {e}", command.get_program()),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
