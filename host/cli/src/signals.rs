//! SIGINT and SIGTERM during `m365sync sync`: the first cancels the runs (they stop at their
//! next batch boundary, within the token's grace period, and are logged as interrupted),
//! and the process then exits 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process
//! killed by the signal. A second signal exits at once with the same code: what the runs
//! committed stands (batches land with their checkpoints), and the lock they leave behind
//! is taken over by the next run, since its holder no longer lives.

use std::sync::{Arc, OnceLock};

use m365sync_runtime::CancelToken;

/// A signal that stops a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// The signals watched for one command, and the first one received.
pub struct Signals {
    first: Arc<OnceLock<Signal>>,
    task: tokio::task::JoinHandle<()>,
}

impl Signals {
    /// Watch SIGINT and SIGTERM, cancelling `cancel` on the first.
    pub fn watch(cancel: CancelToken) -> std::io::Result<Signals> {
        let first = Arc::new(OnceLock::new());
        let mut streams = Streams::new()?;
        let received = first.clone();
        let task = tokio::spawn(async move {
            while let Some(signal) = streams.next().await {
                on_signal(signal, &received, &cancel);
            }
        });
        Ok(Signals { first, task })
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<Signal> {
        self.first.get().copied()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn on_signal(signal: Signal, first: &OnceLock<Signal>, cancel: &CancelToken) {
    if let Some(earlier) = first.get() {
        eprintln!(
            "m365sync: {} again: stopping at once (batches committed so far stand)",
            signal.name()
        );
        std::process::exit(i32::from(earlier.exit_code()));
    }
    let _ = first.set(signal);
    cancel.cancel(format!("interrupted by {}", signal.name()));
    eprintln!(
        "m365sync: {} received: stopping at the next batch boundary (within {} s); send it again to stop at once",
        signal.name(),
        cancel.grace().as_secs()
    );
}

/// The process's signal streams (tokio installs the handlers when they are created).
#[cfg(unix)]
struct Streams {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Streams {
    fn new() -> std::io::Result<Streams> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Streams {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            got = self.interrupt.recv() => got.map(|()| Signal::Interrupt),
            got = self.terminate.recv() => got.map(|()| Signal::Terminate),
        }
    }
}

/// Elsewhere only Ctrl-C is watched.
#[cfg(not(unix))]
struct Streams;

#[cfg(not(unix))]
impl Streams {
    fn new() -> std::io::Result<Streams> {
        Ok(Streams)
    }

    async fn next(&mut self) -> Option<Signal> {
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| Signal::Interrupt)
    }
}
