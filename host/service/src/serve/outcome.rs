//! What a worker does after a run: which failures are worth retrying, and which need an
//! admin (a wrong or expired secret, an app that is not in the tenant, missing consent or
//! permissions, a config that points at another directory...). Retrying those cannot fix
//! them: the tenant is marked `needs-attention` with the fix the error names, and its
//! schedule goes on (the run after the fix succeeds and clears it).

use m365sync_runtime::RunError;
use m365sync_wit::types::{AuthFailure, SyncError};

use crate::synclog::SyncFailure;

/// What to do after a failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// Try again after the next backoff (if any is left).
    Retry,
    /// Do not retry: an admin must act. The text says what to fix.
    Attention(String),
    /// Not a failure of the tenant: put the job back (another process is syncing the
    /// tenant; this worker is shutting down).
    Release,
}

/// How a failed run is handled.
pub fn classify(failure: &SyncFailure) -> FailureAction {
    match failure {
        SyncFailure::Locked { .. } => FailureAction::Release,
        _ if failure.interrupted() => FailureAction::Release,
        SyncFailure::Open { .. } => FailureAction::Retry,
        SyncFailure::Run { error, .. } => classify_run(error),
    }
}

fn classify_run(error: &RunError) -> FailureAction {
    let Some(engine) = error.engine_error() else {
        // Memory, deadline, a crash: perhaps transient (a huge page, a slow network).
        return FailureAction::Retry;
    };
    let fix = match engine {
        SyncError::Auth(auth) => {
            let code = auth
                .aadsts
                .map(|code| format!(" (AADSTS{code})"))
                .unwrap_or_default();
            // The engine's message already says what to do; the label says it at once.
            let label = match auth.failure {
                AuthFailure::ExpiredSecret => "the client secret has expired",
                AuthFailure::InvalidSecret => "the client secret is wrong",
                AuthFailure::AppNotFound => "the app is not registered in this tenant",
                AuthFailure::TenantNotFound => "the tenant does not exist",
                AuthFailure::ConsentMissing => "admin consent is missing",
                AuthFailure::InvalidAssertion => "the client assertion was refused",
                // Other sign-in failures (throttling of the token endpoint, an outage)
                // may pass.
                AuthFailure::Other => return FailureAction::Retry,
            };
            format!("{label}{code}: {}", auth.message)
        }
        SyncError::Permission(p) => format!(
            "grant the application permission {} (needed by {}) and admin consent for it: {}",
            p.permission, p.feature, p.message
        ),
        SyncError::Secret(message) => {
            format!("the app's credential cannot be read: {message}")
        }
        SyncError::TenantMismatch(message) => {
            format!("the config points this tenant at another directory: {message}")
        }
        SyncError::MassRemoval(m) => format!(
            "the run would remove {} of {} stored people (at most {} allowed): if that is \
             meant, raise the removal guard's limits or run `m365sync sync --allow-mass-removal` \
             once",
            m.would_remove, m.stored, m.allowed
        ),
        SyncError::InvalidRequest(message) => format!("the tenant's config is refused: {message}"),
        SyncError::HostDenied(host) => format!(
            "the sandbox refused a request to {host}: add it to the tenant's endpoints (or \
             [host] allowed_hosts)"
        ),
        SyncError::Unsupported(message) => format!("this engine cannot run it: {message}"),
        SyncError::Http(_)
        | SyncError::BadResponse(_)
        | SyncError::Storage(_)
        | SyncError::Cancelled(_) => return FailureAction::Retry,
    };
    FailureAction::Attention(fix)
}

/// When the `attempt`th try of a tenant has failed, when to try again: the backoff's
/// `attempt`th step (1-based), or None when the backoff is spent (the next scheduled run
/// is the next try).
pub fn retry_delay(backoff: &[std::time::Duration], attempt: u32) -> Option<std::time::Duration> {
    let index = usize::try_from(attempt.max(1) - 1).ok()?;
    backoff.get(index).copied()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use m365sync_runtime::EngineError;
    use m365sync_wit::types::{AuthError, HttpFailure};

    use super::*;

    fn run_failure(error: SyncError) -> SyncFailure {
        SyncFailure::Run {
            error: RunError::Engine {
                tenant: "t".into(),
                error: EngineError(error),
                report: None,
            },
            run_id: Some(1),
            log_error: None,
        }
    }

    fn auth(failure: AuthFailure, aadsts: Option<u32>) -> SyncFailure {
        run_failure(SyncError::Auth(AuthError {
            failure,
            aadsts,
            message: "the identity platform said so".into(),
        }))
    }

    #[test]
    fn secrets_consent_and_config_need_an_admin_and_name_the_fix() {
        let expired = classify(&auth(AuthFailure::ExpiredSecret, Some(7000222)));
        let FailureAction::Attention(text) = expired else {
            panic!("{expired:?}")
        };
        assert!(
            text.contains("has expired") && text.contains("AADSTS7000222"),
            "{text}"
        );
        for (failure, code, words) in [
            (AuthFailure::InvalidSecret, 7000215, "is wrong"),
            (
                AuthFailure::AppNotFound,
                700016,
                "not registered in this tenant",
            ),
            (AuthFailure::ConsentMissing, 65001, "consent is missing"),
        ] {
            match classify(&auth(failure, Some(code))) {
                FailureAction::Attention(text) => {
                    assert!(
                        text.contains(words) && text.contains(&code.to_string()),
                        "{text}"
                    )
                }
                other => panic!("{failure:?}: {other:?}"),
            }
        }
        assert!(matches!(
            classify(&run_failure(SyncError::Secret("not set".into()))),
            FailureAction::Attention(_)
        ));
    }

    #[test]
    fn transient_failures_are_retried_and_locks_released() {
        assert_eq!(
            classify(&auth(AuthFailure::Other, None)),
            FailureAction::Retry
        );
        let http = run_failure(SyncError::Http(HttpFailure {
            url: "https://graph.microsoft.com/v1.0/users".into(),
            status: Some(503),
            graph_code: None,
            message: "Service Unavailable".into(),
        }));
        assert_eq!(classify(&http), FailureAction::Retry);
        let deadline = SyncFailure::Run {
            error: RunError::Deadline {
                tenant: "t".into(),
                seconds: 1.0,
            },
            run_id: None,
            log_error: None,
        };
        assert_eq!(classify(&deadline), FailureAction::Retry);
        // Stopped by this worker's shutdown: back to the queue.
        assert_eq!(
            classify(&run_failure(SyncError::Cancelled("SIGTERM".into()))),
            FailureAction::Release
        );
    }

    #[test]
    fn the_backoff_is_walked_once_then_spent() {
        let backoff = [Duration::from_secs(60), Duration::from_secs(300)];
        assert_eq!(retry_delay(&backoff, 1), Some(Duration::from_secs(60)));
        assert_eq!(retry_delay(&backoff, 2), Some(Duration::from_secs(300)));
        assert_eq!(retry_delay(&backoff, 3), None);
        assert_eq!(retry_delay(&[], 1), None);
    }
}
