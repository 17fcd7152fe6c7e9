//! Typed errors of the host library: how a run ended when it did not succeed.

use std::fmt;

use m365sync_wit::types::{AuthFailure, SyncError, SyncReport};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine reported a failure (sign-in, Graph, storage, a refused host...).
    #[error("tenant {tenant}: {error}")]
    Engine {
        tenant: String,
        error: EngineError,
        /// What the run did until it failed (requests, retries, the mode that ran, the
        /// data sets), when the call was a sync.
        report: Option<Box<SyncReport>>,
    },
    /// The sandbox asked for more memory than its limit and was stopped.
    #[error(
        "tenant {tenant}: the run was stopped: it exceeded its memory limit of {limit_mib} MiB"
    )]
    MemoryLimit { tenant: String, limit_mib: usize },
    /// The run took longer than its budget and was stopped.
    #[error("tenant {tenant}: the run was stopped: it exceeded its time budget of {seconds} s")]
    Deadline { tenant: String, seconds: f64 },
    /// The component trapped or failed in a way it could not report itself.
    #[error("tenant {tenant}: the engine component failed during {call}: {detail}")]
    Crashed {
        tenant: String,
        call: String,
        detail: String,
    },
}

impl RunError {
    /// A stable name of the kind of failure, for the sync log and scripts: the engine's
    /// `sync-error` case ("auth", "permission", "host-denied", "http", "bad-response",
    /// "secret", "storage", "invalid-request", "unsupported", "mass-removal",
    /// "tenant-mismatch", "cancelled"), or "memory-limit",
    /// "deadline", "crashed" when the host stopped the run.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Engine { error, .. } => match &error.0 {
                SyncError::Auth(_) => "auth",
                SyncError::Permission(_) => "permission",
                SyncError::HostDenied(_) => "host-denied",
                SyncError::Http(_) => "http",
                SyncError::BadResponse(_) => "bad-response",
                SyncError::Secret(_) => "secret",
                SyncError::Storage(_) => "storage",
                SyncError::InvalidRequest(_) => "invalid-request",
                SyncError::Unsupported(_) => "unsupported",
                SyncError::MassRemoval(_) => "mass-removal",
                SyncError::TenantMismatch(_) => "tenant-mismatch",
                SyncError::Cancelled(_) => "cancelled",
            },
            RunError::MemoryLimit { .. } => "memory-limit",
            RunError::Deadline { .. } => "deadline",
            RunError::Crashed { .. } => "crashed",
        }
    }

    /// What a failed sync did until it failed, when the engine reported it.
    pub fn report(&self) -> Option<&SyncReport> {
        match self {
            RunError::Engine { report, .. } => report.as_deref(),
            _ => None,
        }
    }

    /// The engine's own error, when the engine reported one.
    pub fn engine_error(&self) -> Option<&SyncError> {
        match self {
            RunError::Engine { error, .. } => Some(&error.0),
            _ => None,
        }
    }
}

/// The engine's `sync-error`, displayed in words an admin can act on.
#[derive(Debug, Clone)]
pub struct EngineError(pub SyncError);

impl std::error::Error for EngineError {}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            SyncError::Auth(auth) => {
                let kind = match auth.failure {
                    AuthFailure::InvalidSecret => "invalid client secret",
                    AuthFailure::ExpiredSecret => "expired client secret",
                    AuthFailure::AppNotFound => "application not found",
                    AuthFailure::TenantNotFound => "tenant not found",
                    AuthFailure::ConsentMissing => "admin consent missing",
                    AuthFailure::InvalidAssertion => "client assertion refused",
                    AuthFailure::Other => "sign-in failed",
                };
                match auth.aadsts {
                    Some(code) => {
                        write!(f, "sign-in failed: {kind} (AADSTS{code}): {}", auth.message)
                    }
                    None => write!(f, "sign-in failed: {kind}: {}", auth.message),
                }
            }
            SyncError::Permission(p) => write!(
                f,
                "permission {} is missing (needed by feature {}): {}",
                p.permission, p.feature, p.message
            ),
            SyncError::HostDenied(host) => write!(
                f,
                "the sandbox refused a request to {host}: that host is not on this tenant's allowlist"
            ),
            SyncError::Http(h) => {
                write!(f, "Graph request to {} failed", h.url)?;
                if let Some(status) = h.status {
                    write!(f, " with HTTP {status}")?;
                }
                if let Some(code) = &h.graph_code {
                    write!(f, " ({code})")?;
                }
                write!(f, ": {}", h.message)
            }
            SyncError::BadResponse(h) => {
                write!(
                    f,
                    "Graph answered {} with a response that cannot be read: {}",
                    h.url, h.message
                )
            }
            SyncError::Secret(message) => write!(f, "secret unavailable: {message}"),
            SyncError::Storage(message) => write!(f, "storage failed: {message}"),
            SyncError::InvalidRequest(message) => write!(f, "invalid request: {message}"),
            SyncError::Unsupported(message) => write!(f, "not supported: {message}"),
            SyncError::MassRemoval(m) => write!(f, "stopped before removing people: {}", m.message),
            SyncError::TenantMismatch(message) => write!(f, "wrong directory: {message}"),
            SyncError::Cancelled(message) => write!(f, "the run was stopped: {message}"),
        }
    }
}
