//! The host side of the `m365sync:engine` WIT world (wit/engine.wit): the generated
//! bindings stay private; this crate re-exports the types a host needs, one name table per
//! WIT enum ([`names`]), and the WIT versions this host supports ([`version`]).
//!
//! WASI and wasi:http come from wasmtime-wasi and wasmtime-wasi-http; only the engine's own
//! interfaces (types, secrets, credentials, storage, log, engine) are generated here. Storage imports are
//! async on the host side (a server database is a network round trip away); secrets and log
//! are short local operations and stay synchronous; so is credentials (a file read and an
//! RSA signature).

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sync-engine",
        imports: {
            "m365sync:engine/storage": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });
}

pub mod names;
pub mod version;

/// The engine's shared types (records, variants, enums of `m365sync:engine/types`).
pub use bindings::m365sync::engine::types;
pub use bindings::m365sync::engine::{
    credentials::CredentialError, log::Level, secrets::SecretError, storage::StorageError,
};

/// A storage error in words: its message (the generated `Display` of a WIT variant is its
/// debug form, `Unavailable("...")`, which no user should read).
pub fn storage_message(error: &StorageError) -> &str {
    match error {
        StorageError::Invalid(message)
        | StorageError::Unavailable(message)
        | StorageError::Cancelled(message) => message,
    }
}

/// What a host implements and links: the import traits and the world's entry points. Only a
/// runtime needs these; stores and config use the types above.
pub mod host {
    pub use super::bindings::exports::m365sync::engine::engine::Guest as EngineExports;
    pub use super::bindings::m365sync::engine::{credentials, log, secrets, storage, types};
    pub use super::bindings::{SyncEngine, SyncEnginePre};
}
