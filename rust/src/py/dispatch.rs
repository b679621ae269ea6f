//! The dispatcher: one thread per node that runs the mailbox callbacks.
//!
//! Started on first need. The network thread only tells it "this mailbox has messages"; the
//! dispatcher takes the GIL once per batch, decodes and calls the callbacks in arrival order.
//! (Asyncio receivers are woken through their mailbox's wake descriptor, see
//! `PyMailbox::wake_fd`.)

use super::decode::Strings;
use super::mailbox::decode_message;
use crate::node::lock;
use crate::node::process::{AfterWrite, Spinner};
use crate::node::wake::WakeFd;
use crate::node::Process;
use pyo3::prelude::*;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages a dispatcher hands to one callback per GIL hold.
const DISPATCH_BATCH: usize = 256;
/// How long the dispatcher looks for its next job before it sleeps (see `Spinner`).
const DISPATCH_SPIN: Duration = Duration::from_micros(50);

/// The Python-side state of a mailbox: its callback, which the dispatcher runs, or the wake
/// descriptor its asyncio receivers watch.
pub(super) struct Served {
    pub(super) process: Arc<Process>,
    pub(super) callback: Mutex<Option<Py<PyAny>>>,
    /// For asyncio: the network thread makes this readable when messages arrive, and the
    /// event loop, watching it with `add_reader`, wakes without any other thread.
    pub(super) wake_fd: Mutex<Option<WakeFd>>,
    /// How its messages' text is decoded, and its `str`s sent: the node's `strings=`.
    pub(super) strings: Strings,
}

enum Job {
    Serve(Arc<Served>),
    Stop,
}

/// One thread per node that runs the callbacks of callback mailboxes.
#[derive(Default)]
pub(super) struct Dispatcher {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Dispatcher {
    fn sender(&self) -> mpsc::Sender<Job> {
        let mut jobs = lock(&self.jobs);
        if let Some(tx) = jobs.as_ref() {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let again = tx.clone();
        std::thread::Builder::new()
            .name("erlnode-dispatch".into())
            .spawn(move || dispatch_loop(rx, again))
            .expect("spawning the dispatcher thread");
        *jobs = Some(tx.clone());
        tx
    }

    pub(super) fn stop(&self) {
        if let Some(tx) = lock(&self.jobs).take() {
            let _ = tx.send(Job::Stop);
        }
    }

    /// Makes the process tell the dispatcher when messages arrive.
    pub(super) fn watch(&self, served: &Arc<Served>) {
        // The hook owns the mailbox state: a callback mailbox works while the program keeps
        // no reference to it, until it is closed (closing drops the hook).
        let tx = Mutex::new(self.sender());
        let served_by_hook = served.clone();
        served.process.set_wake(Some(Arc::new(move || {
            let _ = lock(&tx).send(Job::Serve(served_by_hook.clone()));
        })));
    }
}

fn dispatch_loop(jobs: mpsc::Receiver<Job>, again: mpsc::Sender<Job>) {
    // Attached once for the thread's life, detached while waiting: re-attaching per job would
    // make and destroy a Python thread state each time, a large part of a callback's latency.
    // Only this thread receives; the Mutex makes the receiver Sync for detach.
    let jobs = Mutex::new(jobs);
    // A callback's round trip has a hop more than a receive's (the hook, this channel).
    let spinner = Spinner::new(DISPATCH_SPIN);
    // The mailbox served last: while spinning, the dispatcher reads the socket its messages
    // come from (see `Process::spin_for_message`). Weak, so as not to keep a closed mailbox.
    let last_served: Mutex<std::sync::Weak<Process>> = Mutex::new(std::sync::Weak::new());
    let next_job = || {
        let jobs = lock(&jobs);
        let source = || lock(&last_served).upgrade().and_then(|p| p.source());
        match spinner.spin_feeding(AfterWrite::Spin, source, || jobs.try_recv().ok()) {
            Some(job) => Ok(job),
            None => jobs.recv(),
        }
    };
    Python::attach(|py| {
        while let Ok(Job::Serve(served)) = py.detach(next_job) {
            let callback = lock(&served.callback).as_ref().map(|c| c.clone_ref(py));
            let Some(callback) = callback else { continue };
            let mut batch = Vec::with_capacity(DISPATCH_BATCH);
            served.process.drain(DISPATCH_BATCH, &mut batch);
            *lock(&last_served) = Arc::downgrade(&served.process);
            for message in batch {
                let result = decode_message(py, &message, served.strings)
                    .and_then(|m| callback.call1(py, (m,)));
                if let Err(e) = result {
                    report_callback_error(py, e);
                }
            }
            if served.process.pending() > 0 {
                // More arrived: go round again after the others, so one busy mailbox cannot
                // starve the rest.
                let _ = again.send(Job::Serve(served.clone()));
            }
        }
    });
}

fn report_callback_error(py: Python<'_>, e: PyErr) {
    let logged = py.import("logging").and_then(|logging| {
        let logger = logging.call_method1("getLogger", ("erlnode",))?;
        logger.call_method1(
            "error",
            ("mailbox callback raised %r", e.value(py).clone().unbind()),
        )
    });
    if logged.is_err() {
        e.print(py);
    }
}
