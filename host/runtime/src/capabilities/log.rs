//! `m365sync:engine/log`: the component's log lines and progress, handed to an event sink
//! the embedder chooses (the CLI draws progress bars; the service logs).

use m365sync_wit::Level;
use m365sync_wit::types::DataSet;

/// Where a run's log lines and progress go. Implementations must be cheap: they are
/// called from inside the run.
pub trait EventSink: Send + Sync {
    fn log(&self, tenant: &str, level: Level, message: &str);
    fn progress(&self, tenant: &str, phase: DataSet, done: u64, total: Option<u64>);
}

/// Sends log lines to `tracing` and drops progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl EventSink for TracingSink {
    fn log(&self, tenant: &str, level: Level, message: &str) {
        match level {
            Level::Trace => tracing::trace!(tenant, "{message}"),
            Level::Debug => tracing::debug!(tenant, "{message}"),
            Level::Info => tracing::info!(tenant, "{message}"),
            Level::Warn => tracing::warn!(tenant, "{message}"),
            Level::Error => tracing::error!(tenant, "{message}"),
        }
    }

    fn progress(&self, tenant: &str, phase: DataSet, done: u64, total: Option<u64>) {
        tracing::debug!(tenant, ?phase, done, ?total, "progress");
    }
}
