//! Host-side bindings of the `m365sync:engine` world (wit/engine.wit).
//!
//! WASI and wasi:http come from wasmtime-wasi and wasmtime-wasi-http; only the engine's own
//! interfaces (types, secrets, storage, log, engine) are generated here. The engine's imports
//! are synchronous on the host side: each is a short, local operation (a SQLite transaction,
//! a secret read); the component's HTTP waits are the async part, inside wasi:http.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "sync-engine",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
    require_store_data_send: true,
});

pub use self::m365sync::engine::{log, secrets, storage, types};
