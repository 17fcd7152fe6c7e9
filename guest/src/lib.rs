//! m365sync-guest: the m365sync sync engine, built as a WebAssembly component
//! (`wasm32-wasip2`) that exports `m365sync:engine/engine` (of the WIT package version
//! [`engine::WIT_VERSION`]).
//!
//! Everything except the thin binding layer (`wasi_http`, `imports`, `component`, compiled
//! only for wasm) is plain Rust that runs against the traits in [`platform`], so the whole
//! sync logic unit-tests natively with scripted fakes. The plain logic uses the types that
//! `wit-bindgen` generates from `wit/engine.wit` (see [`bindings`]); natively their import
//! functions are unreachable stubs that nothing calls.

pub mod bindings {
    //! Types and imports generated from `wit/engine.wit`. The WASI HTTP, I/O and clock
    //! interfaces are mapped to the `wasi` crate so that the component declares them once.
    wit_bindgen::generate!({
        path: "../wit",
        world: "sync-engine",
        with: {
            "wasi:http/outgoing-handler@0.2.12": wasi::http::outgoing_handler,
            "wasi:http/types@0.2.12": wasi::http::types,
            "wasi:io/poll@0.2.12": wasi::io::poll,
            "wasi:io/error@0.2.12": wasi::io::error,
            "wasi:io/streams@0.2.12": wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
        },
        additional_derives: [PartialEq],
    });
}

pub mod engine;
pub mod fieldmap;
pub mod filter;
pub mod graph;
pub mod ids;
pub mod lookups;
pub mod matching;
pub mod merge;
pub mod normalize;
pub mod orgmatch;
pub mod permissions;
pub mod platform;
pub mod redact;
pub mod review;
pub mod similarity;
pub mod sources;
pub mod sync;
pub mod url;

#[cfg(target_family = "wasm")]
mod component;
#[cfg(target_family = "wasm")]
mod imports;
// Also built for native tests: its request headers, error mapping and body reading are
// plain functions tested there.
#[cfg(any(target_family = "wasm", test))]
mod wasi_http;

#[cfg(test)]
mod fakes;

pub use bindings::m365sync::engine::types;
pub use platform::{Assertions, Clock, Env, Http, Log, Secrets, Store};

#[cfg(target_family = "wasm")]
use component::Component;
#[cfg(target_family = "wasm")]
bindings::export!(Component with_types_in bindings);
