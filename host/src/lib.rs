//! m365sync's reference host: runs the sync engine component (one sandbox per tenant run)
//! with outgoing HTTP restricted to an allowlist, the tenant's secrets, and SQLite storage.
//!
//! The embedding API is [`runtime::Runtime`] (load once, run many tenants) with the
//! capabilities in [`capabilities`]; [`config`] reads tenant configs; [`store`] holds the
//! SQLite store. The `m365sync` binary (src/main.rs and src/cli/) is built on the same API.

pub mod capabilities;
pub mod cloud;
pub mod config;
pub mod error;
pub mod report;
pub mod runtime;
pub mod store;
pub mod synclog;

pub use capabilities::log::{EventSink, TracingSink};
pub use capabilities::storage::TenantStore;
pub use config::{ConfigFile, SecretSource, TenantRun};
pub use error::{EngineError, RunError};
pub use runtime::{CancelToken, RunLimits, Runtime, SandboxAllocation};
pub use store::SqliteStore;
pub use synclog::{SyncFailure, sync_logged, sync_logged_cancellable};
