//! The core's log records, on their way to Python's `logging`.
//!
//! The network threads log, and they must never wait for the GIL: a record is formatted and
//! pushed onto a bounded lock-free queue, nothing more. A Python thread (`erlnode._logging`,
//! started with the first node) takes records off it, with the GIL released while it waits,
//! and hands them to the loggers `erlnode.connection`, `erlnode.handshake`, `erlnode.epmd`
//! and `erlnode.node`, with the peer's node name as the record's `peer` attribute. That thread
//! spends at most a twentieth of its time on them, so that a flood of records does not take
//! the GIL from the program. When the queue is full, records are dropped (before they are
//! formatted) and counted; the Python side reports the count.
//!
//! The level filter here is a pre-filter, so that records nobody wants are not even
//! formatted: `ERLNODE_LOG` (`off`, `error`, `warn`, `info`, `debug`, `trace`) when set,
//! else what the Python side sets from the `erlnode` logger's effective level.

use crossbeam_queue::ArrayQueue;
use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Records waiting for the Python side: enough for a burst, bounded for a flood.
const QUEUE: usize = 10_000;

/// One record: Python's level number, the logger's name, the text, the peer if any.
type Entry = (u8, &'static str, String, Option<String>);

struct Records {
    queue: ArrayQueue<Entry>,
    dropped: AtomicU64,
    /// Set by the drain (holding `sleep`) while it waits for records: a pusher then rings
    /// `wake`. Whether the queue was empty before a push says nothing reliable: the drain
    /// may empty it between the look and the push, and then sleep through the record.
    waiting: AtomicBool,
    wake: Condvar,
    sleep: Mutex<()>,
}

fn records() -> &'static Records {
    static RECORDS: OnceLock<Records> = OnceLock::new();
    RECORDS.get_or_init(|| Records {
        queue: ArrayQueue::new(QUEUE),
        dropped: AtomicU64::new(0),
        waiting: AtomicBool::new(false),
        wake: Condvar::new(),
        sleep: Mutex::new(()),
    })
}

/// Python's level number for a record's level (`trace` below `DEBUG`).
fn python_level(level: Level) -> u8 {
    match level {
        Level::Error => 40,
        Level::Warn => 30,
        Level::Info => 20,
        Level::Debug => 10,
        Level::Trace => 5,
    }
}

/// The `logging` logger a record goes to, by what it is about.
fn logger_name(target: &str) -> &'static str {
    match target {
        "connection" => "erlnode.connection",
        "handshake" => "erlnode.handshake",
        t if t.contains("epmd") || t.contains("registration") => "erlnode.epmd",
        t if t.contains("handshake") || t.contains("transport") => "erlnode.handshake",
        t if t.contains("connection") || t.contains("peers") => "erlnode.connection",
        _ => "erlnode.node",
    }
}

struct QueueLogger;

impl Log for QueueLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let records = records();
        if records.queue.is_full() {
            // Under a flood: not worth formatting a record the push would drop anyway.
            records.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let peer = record
            .key_values()
            .get(log::kv::Key::from("peer"))
            .map(|value| value.to_string());
        let entry = (
            python_level(record.level()),
            logger_name(record.target()),
            record.args().to_string(),
            peer,
        );
        if records.queue.push(entry).is_err() {
            records.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Push, then look at `waiting`; the drain sets `waiting`, then looks at the queue.
        // With a full fence on both sides at least one of the two sees the other's write:
        // the drain finds the record, or this thread finds the drain waiting.
        fence(Ordering::SeqCst);
        if records.waiting.load(Ordering::SeqCst) {
            let _sleep = records.sleep.lock();
            records.wake.notify_one();
        }
    }

    fn flush(&self) {}
}

static LOGGER: QueueLogger = QueueLogger;

/// The pre-filter `ERLNODE_LOG` asks for, if it is set.
fn level_from_env() -> Option<LevelFilter> {
    let value = std::env::var("ERLNODE_LOG").ok()?.to_ascii_lowercase();
    Some(match value.as_str() {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => LevelFilter::Warn,
    })
}

/// Installs the logger once (a host program that installed its own keeps it).
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level_from_env().unwrap_or(LevelFilter::Warn));
    }
}

/// The records that arrived, waiting up to `timeout` seconds for the first (with the GIL
/// released): a list of `(levelno, logger name, message, peer or None)`.
#[pyfunction]
fn take_log_records(py: Python<'_>, timeout: f64) -> Vec<Entry> {
    wait_log_records(py, timeout);
    let records = records();
    py.detach(|| std::iter::from_fn(|| records.queue.pop()).collect())
}

/// Waits up to `timeout` seconds (with the GIL released) until records are queued; takes
/// none, so that whoever takes them can do so under a lock of its own.
#[pyfunction]
fn wait_log_records(py: Python<'_>, timeout: f64) {
    let records = records();
    let wait = Duration::from_secs_f64(timeout.clamp(0.0, 60.0));
    py.detach(|| {
        if records.queue.is_empty() {
            let sleep = records.sleep.lock().unwrap_or_else(|e| e.into_inner());
            records.waiting.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let (_sleep, _) = records
                .wake
                .wait_timeout_while(sleep, wait, |_| records.queue.is_empty())
                .unwrap_or_else(|e| e.into_inner());
            records.waiting.store(false, Ordering::SeqCst);
        }
    })
}

/// How many records were dropped because the queue was full (since the process started).
#[pyfunction]
fn log_records_dropped() -> u64 {
    records().dropped.load(Ordering::Relaxed)
}

/// Sets the pre-filter from a Python level number (the `erlnode` logger's effective level),
/// unless `ERLNODE_LOG` is set; returns whether it applied.
#[pyfunction]
fn set_log_level(levelno: i64) -> bool {
    if level_from_env().is_some() {
        return false;
    }
    log::set_max_level(match levelno {
        i64::MIN..=5 => LevelFilter::Trace,
        6..=10 => LevelFilter::Debug,
        11..=20 => LevelFilter::Info,
        21..=30 => LevelFilter::Warn,
        31..=40 => LevelFilter::Error,
        _ => LevelFilter::Off,
    });
    true
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    install();
    m.add_function(wrap_pyfunction!(take_log_records, m)?)?;
    m.add_function(wrap_pyfunction!(wait_log_records, m)?)?;
    m.add_function(wrap_pyfunction!(log_records_dropped, m)?)?;
    m.add_function(wrap_pyfunction!(set_log_level, m)?)?;
    Ok(())
}
