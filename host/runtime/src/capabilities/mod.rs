//! The capabilities the host grants a tenant's sandbox: outgoing HTTP to an allowlist,
//! that tenant's secrets and client assertions, and a log/progress sink (storage is the store
//! contract's, `m365sync_store::TenantStore`, linked in `state.rs`). Each module
//! implements one import of the `sync-engine` world and nothing else.

pub mod credentials;
pub mod http;
pub mod log;
pub mod secrets;
