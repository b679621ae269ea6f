//! Where the core's log lines go: standard error, filtered by `ERLNODE_LOG`.
//!
//! The network threads log, and they must never wait for the GIL, so the lines do not go
//! through Python's `logging` (yet): they are written to standard error directly.
//! `ERLNODE_LOG` is one of `off`, `error`, `warn` (the default), `info`, `debug`, `trace`.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("erlnode {}: {}\n", record.level(), record.args());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger once (a host program that installed its own keeps it).
pub fn install() {
    let level = match std::env::var("ERLNODE_LOG")
        .as_deref()
        .map(str::to_ascii_lowercase)
    {
        Ok(ref l) if l == "off" => LevelFilter::Off,
        Ok(ref l) if l == "error" => LevelFilter::Error,
        Ok(ref l) if l == "info" => LevelFilter::Info,
        Ok(ref l) if l == "debug" => LevelFilter::Debug,
        Ok(ref l) if l == "trace" => LevelFilter::Trace,
        _ => LevelFilter::Warn,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
