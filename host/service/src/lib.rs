//! What m365sync's CLI and server share, over the layers below them: a store chosen by
//! location ([`location`]: a SQLite file or a PostgreSQL URL), the runtime a config asks for
//! ([`setup`]), a logged sync of one tenant ([`synclog`]) and of many at once ([`fleet`]),
//! previews and organization reviews ([`review`]), field-map checks ([`fieldmap`]), and what
//! an admin must act on before it breaks syncs ([`notices`]); the
//! runtime, config and store crates are re-exported for hosts built on this one.
//!
//! Layers (every arrow points down): `m365sync` (the CLI) → `m365sync-service` →
//! `m365sync-runtime` → (`m365sync-config`, `m365sync-store`) → `m365sync-wit`; the back
//! ends `m365sync-store-sqlite` and `m365sync-store-postgres` implement `m365sync-store`
//! and are chosen here, by location.

pub mod expiry;
pub mod fieldmap;
pub mod fleet;
pub mod location;
pub mod notices;
pub mod onboarding;
pub mod partner;
pub mod review;
pub mod serve;
pub mod setup;
pub mod synclog;
pub mod webhooks;

pub use m365sync_config as config;
pub use m365sync_runtime as runtime;
pub use m365sync_store as store;
pub use m365sync_wit as wit;

pub use fieldmap::{FieldMapError, effective_field_map};
pub use fleet::{DEFAULT_CONCURRENCY, TenantOutcome, sync_many};
pub use location::{StoreLocation, open_store, open_store_existing};
pub use review::{ReviewError, decide, preview, review};
pub use setup::load_runtime;
pub use synclog::{SyncFailure, sync_logged, sync_logged_cancellable};
