//! Progress on the terminal: a spinner per run that counts records as the engine reports
//! them, and the engine's warnings and errors as log lines. Hidden when stderr is not a
//! terminal (indicatif's default), so scripts and CI see clean output.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use m365sync::report::data_set_name;
use m365sync::runtime::bindings::log::Level;
use m365sync::runtime::bindings::types::DataSet;
use m365sync::{EventSink, TracingSink};

/// An event sink that draws a spinner and forwards log lines to `tracing`.
pub struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalProgress {
    pub fn new() -> Self {
        TerminalProgress {
            bar: Mutex::new(None),
        }
    }

    /// Remove the spinner before printing results.
    pub fn finish(&self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl EventSink for TerminalProgress {
    fn log(&self, tenant: &str, level: Level, message: &str) {
        TracingSink.log(tenant, level, message);
    }

    fn progress(&self, tenant: &str, phase: DataSet, done: u64, total: Option<u64>) {
        let Ok(mut bar) = self.bar.lock() else { return };
        let bar = bar.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
        bar.set_message(format!("{tenant}: {} {done}{of}", data_set_name(phase)));
    }
}
