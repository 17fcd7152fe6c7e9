//! Progress on the terminal: a spinner per running tenant that counts records as the
//! engine reports them, and the engine's warnings and errors as log lines. Hidden when
//! stderr is not a terminal (indicatif's default), so scripts and CI see clean output.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use m365sync_runtime::{EventSink, TracingSink};
use m365sync_wit::Level;
use m365sync_wit::names::WitName;
use m365sync_wit::types::DataSet;

/// An event sink that draws one spinner per tenant and forwards log lines to `tracing`.
pub struct TerminalProgress {
    bars: MultiProgress,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl TerminalProgress {
    pub fn new() -> Self {
        TerminalProgress {
            bars: MultiProgress::new(),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Remove a tenant's spinner (before printing its results).
    pub fn finish(&self, tenant: &str) {
        if let Ok(mut running) = self.running.lock()
            && let Some(bar) = running.remove(tenant)
        {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }

    /// Print a line above the spinners (they would otherwise draw over it).
    pub fn println(&self, text: &str) {
        if self.bars.is_hidden() {
            out!("{text}");
        } else {
            let _ = self.bars.println(text.trim_end_matches('\n'));
        }
    }
}

impl EventSink for TerminalProgress {
    fn log(&self, tenant: &str, level: Level, message: &str) {
        TracingSink.log(tenant, level, message);
    }

    fn progress(&self, tenant: &str, phase: DataSet, done: u64, total: Option<u64>) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        let bar = running.entry(tenant.to_string()).or_insert_with(|| {
            let bar = self.bars.add(ProgressBar::new_spinner());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
        bar.set_message(format!("{tenant}: {} {done}{of}", phase.name()));
    }
}
