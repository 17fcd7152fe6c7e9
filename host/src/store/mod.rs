//! Storage back ends for [`crate::capabilities::storage::TenantStore`]. SQLite is the
//! embedded default.

pub mod sqlite;

pub use sqlite::SqliteStore;
