//! Builds the engine component (`guest/`) for `wasm32-wasip2` before the host compiles,
//! so building, running or testing the host never needs a separate manual step.
//!
//! The component is built by a nested cargo in its own target directory
//! (`<target>/component`), so it never waits on the outer build's lock. Set
//! `M365SYNC_COMPONENT_PATH` to use a prebuilt component instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=M365SYNC_COMPONENT_PATH");
    if let Ok(prebuilt) = env::var("M365SYNC_COMPONENT_PATH") {
        println!("cargo:rerun-if-changed={prebuilt}");
        println!("cargo:rustc-env=M365SYNC_COMPONENT={prebuilt}");
        return;
    }

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("host/ sits in the workspace");
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
        .join("component");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--package", "m365sync-guest", "--lib"])
        .args(["--target", "wasm32-wasip2", "--profile", "component"])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers target the host, not wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
        "CARGO_LLVM_COV",
        "CARGO_LLVM_COV_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("could not run cargo to build the component: {error}"));
    if !status.success() {
        panic!(
            "building the component (guest/) for wasm32-wasip2 failed; \
             is the target installed? run `rustup target add wasm32-wasip2`"
        );
    }
    let component = target_dir.join("wasm32-wasip2/component/m365sync_guest.wasm");
    assert!(
        exists(&component),
        "the component build produced no {}",
        component.display()
    );
    println!("cargo:rustc-env=M365SYNC_COMPONENT={}", component.display());
}

fn exists(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}
