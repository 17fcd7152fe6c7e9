//! When a back end commits the batches it holds open: the deferral policy every back end
//! shares. The engine saves its progress only in checkpoints, so a batch without any may
//! wait in the open transaction and be committed with the next batch that has some (or the
//! run's report), bounded by [`MAX_DEFERRED_CHANGES`]. One commit per delta round instead of
//! one per page.

use m365sync_wit::types::Batch;

/// At most this many changes wait in an open transaction (a bound on its growth).
pub const MAX_DEFERRED_CHANGES: usize = 50_000;

/// The changes a back end holds in its open transaction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    changes: usize,
}

impl Deferred {
    /// Count `batch`, applied in the open transaction, and say whether to commit now: it
    /// carries checkpoints or the run's report, or too many changes wait.
    pub fn commit_after(&mut self, batch: &Batch) -> bool {
        self.changes += batch.changes.len();
        let due = !batch.checkpoints.is_empty()
            || batch.run.is_some()
            || self.changes >= MAX_DEFERRED_CHANGES;
        if due {
            self.changes = 0;
        }
        due
    }

    /// The open transaction ended (committed or rolled back).
    pub fn reset(&mut self) {
        self.changes = 0;
    }
}
