//! The capabilities the host grants a tenant's sandbox: outgoing HTTP to an allowlist,
//! that tenant's secrets, that tenant's storage, and a log/progress sink. Each module
//! implements one import of the `sync-engine` world and nothing else.

pub mod http;
pub mod log;
pub mod secrets;
pub mod storage;
