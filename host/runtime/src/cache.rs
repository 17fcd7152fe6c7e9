//! The compiled component on disk: compiling the engine with Cranelift takes a second or
//! more, loading its compiled form a few milliseconds. The file is keyed by the component's
//! bytes and the wasmtime engine's compatibility hash (version and settings), so a new
//! component or a new wasmtime never loads a stale one; it is written to a temporary file
//! and renamed, so a reader never sees half of it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::SetupError;

/// Whether the component came from the cache or was compiled (and stored) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Loaded,
    Compiled,
}

/// The cache file of `component` for `engine` in `dir`.
pub fn path(engine: &Engine, component: &[u8], dir: &Path) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    component.len().hash(&mut h);
    component.hash(&mut h);
    dir.join(format!("m365sync-engine-{:016x}.cwasm", h.finish()))
}

/// Loads the compiled component from `dir`, or compiles it and stores it there. A cache
/// file that cannot be read or written is not an error: the component is compiled.
pub fn load(
    engine: &Engine,
    component: &[u8],
    dir: &Path,
) -> Result<(Component, CacheOutcome), SetupError> {
    let file = path(engine, component, dir);
    if file.is_file() {
        // SAFETY: the file is one this host wrote (serialize below) into its own cache
        // directory; wasmtime checks that it was made by a compatible engine and refuses
        // it otherwise. A refused or damaged file is replaced by a fresh compile.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &file) } {
            return Ok((c, CacheOutcome::Loaded));
        }
    }
    let compiled =
        Component::new(engine, component).map_err(|e| SetupError::Component(format!("{e:#}")))?;
    if let Ok(bytes) = compiled.serialize() {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let stored = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &file));
        if stored.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok((compiled, CacheOutcome::Compiled))
}
