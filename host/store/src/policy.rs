//! When a back end commits the batches it holds open: the deferral policy every back end
//! shares. The engine saves its progress only in checkpoints, so a batch without any may
//! wait in the open transaction and be committed with the next batch that has some (or the
//! run's report): one commit per delta round instead of one per page. Bounded by
//! [`MAX_DEFERRED_CHANGES`] (the transaction's growth) and [`MAX_DEFERRAL`] (how long it
//! stays open: on SQLite an open write transaction holds up every other writer of the file,
//! `m365sync serve`'s queue and lease writes among them).

use std::time::{Duration, Instant};

use m365sync_wit::types::Batch;

/// At most this many changes wait in an open transaction (a bound on its growth).
pub const MAX_DEFERRED_CHANGES: usize = 50_000;

/// A transaction open longer than this is committed with its next batch.
pub const MAX_DEFERRAL: Duration = Duration::from_secs(2);

/// The changes a back end holds in its open transaction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    changes: usize,
    /// When the open transaction's first batch was applied.
    since: Option<Instant>,
}

impl Deferred {
    /// Count `batch`, applied in the open transaction, and say whether to commit now: it
    /// carries checkpoints or the run's report, or too many changes wait, or they have
    /// waited too long.
    pub fn commit_after(&mut self, batch: &Batch) -> bool {
        self.commit_after_at(batch, Instant::now())
    }

    fn commit_after_at(&mut self, batch: &Batch, now: Instant) -> bool {
        self.changes += batch.changes.len();
        let since = *self.since.get_or_insert(now);
        let due = !batch.checkpoints.is_empty()
            || batch.run.is_some()
            || self.changes >= MAX_DEFERRED_CHANGES
            || now.saturating_duration_since(since) >= MAX_DEFERRAL;
        if due {
            self.reset();
        }
        due
    }

    /// The open transaction ended (committed or rolled back).
    pub fn reset(&mut self) {
        self.changes = 0;
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use m365sync_wit::types::{Change, Checkpoint};

    use super::*;

    fn batch(changes: usize, checkpoint: bool) -> Batch {
        Batch {
            changes: (0..changes)
                .map(|i| Change::DeletePerson(format!("p{i}")))
                .collect(),
            checkpoints: if checkpoint {
                vec![Checkpoint {
                    key: "k".into(),
                    value: Some("v".into()),
                }]
            } else {
                vec![]
            },
            run: None,
        }
    }

    #[test]
    fn batches_wait_for_a_checkpoint_a_size_or_a_time() {
        let start = Instant::now();
        let mut deferred = Deferred::default();
        assert!(!deferred.commit_after_at(&batch(10, false), start));
        assert!(deferred.commit_after_at(&batch(1, true), start));
        // Too many changes.
        assert!(!deferred.commit_after_at(&batch(MAX_DEFERRED_CHANGES - 1, false), start));
        assert!(deferred.commit_after_at(&batch(1, false), start));
        // Open too long: the batch after the bound commits.
        assert!(!deferred.commit_after_at(&batch(1, false), start));
        let later = start + MAX_DEFERRAL / 2;
        assert!(!deferred.commit_after_at(&batch(1, false), later));
        assert!(deferred.commit_after_at(&batch(1, false), start + MAX_DEFERRAL));
        // The clock starts again with the next transaction.
        assert!(!deferred.commit_after_at(&batch(1, false), start + MAX_DEFERRAL * 2));
    }
}
