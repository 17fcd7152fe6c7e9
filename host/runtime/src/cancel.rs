//! Stopping a run from outside: a [`CancelToken`] the embedder cancels (the CLI on SIGINT or
//! SIGTERM; the library installs no signal handler). A cancelled run stops at its next batch
//! boundary: the storage capability answers the next `commit` with
//! `storage-error.cancelled` without applying the batch, and the engine returns
//! `sync-error.cancelled` with the report of what it did. A run that reaches no batch
//! boundary within the token's grace period is stopped anyway (the epoch deadline traps
//! running guest code; a call waiting in the host is dropped).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a cancelled run may take to reach a batch boundary before it is stopped: long
/// enough for a page in flight to arrive and be committed, short enough that an operator
/// stopping a service (systemd waits 90 s before SIGKILL) sees it end.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(10);

/// A cancellation shared by the embedder and the runs it started; cheap to clone.
#[derive(Clone, Debug)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    grace: Duration,
    /// Set (after `state`) on cancellation: the storage capability asks on every batch,
    /// and an atomic load is all that costs until the token is cancelled.
    cancelled: AtomicBool,
    state: Mutex<Option<Cancelled>>,
    notify: Notify,
}

#[derive(Debug, Clone)]
struct Cancelled {
    reason: String,
    at: Instant,
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    /// A token with the default grace period ([`DEFAULT_CANCEL_GRACE`]).
    pub fn new() -> CancelToken {
        CancelToken::with_grace(DEFAULT_CANCEL_GRACE)
    }

    /// A token whose cancelled runs get `grace` to reach a batch boundary.
    pub fn with_grace(grace: Duration) -> CancelToken {
        CancelToken {
            inner: Arc::new(Inner {
                grace,
                cancelled: AtomicBool::new(false),
                state: Mutex::new(None),
                notify: Notify::new(),
            }),
        }
    }

    /// Cancel the runs using this token; `reason` ("interrupted by SIGTERM") is the
    /// storage error's message. Only the first call counts.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(Cancelled {
                reason: reason.into(),
                at: Instant::now(),
            });
            self.inner.cancelled.store(true, Ordering::Release);
            self.inner.notify.notify_waiters();
        }
    }

    /// Why the token was cancelled, once it was.
    pub fn reason(&self) -> Option<String> {
        self.state().map(|c| c.reason)
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// True once the grace period after the cancellation is over: the run is stopped
    /// wherever it is.
    pub fn grace_expired(&self) -> bool {
        self.state()
            .is_some_and(|c| c.at.elapsed() >= self.inner.grace)
    }

    /// Resolves when the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the grace period after the cancellation is over.
    pub async fn grace_over(&self) {
        self.cancelled().await;
        if let Some(cancelled) = self.state() {
            tokio::time::sleep_until((cancelled.at + self.inner.grace).into()).await;
        }
    }

    fn state(&self) -> Option<Cancelled> {
        if !self.is_cancelled() {
            return None;
        }
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_counts_and_waiters_wake() {
        let token = CancelToken::with_grace(Duration::from_millis(50));
        assert!(!token.is_cancelled() && !token.grace_expired());
        let waiter = tokio::spawn({
            let token = token.clone();
            async move { token.grace_over().await }
        });
        token.cancel("interrupted by SIGTERM");
        token.cancel("interrupted by SIGINT");
        assert_eq!(token.reason().as_deref(), Some("interrupted by SIGTERM"));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the grace period ends")
            .unwrap();
        assert!(token.grace_expired());
    }
}
