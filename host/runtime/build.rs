//! Builds the engine component (`guest/`) for `wasm32-wasip2` before the host compiles,
//! so building, running or testing the host never needs a separate manual step.
//!
//! The component is built by a nested cargo in its own target directory
//! (`<target>/component`), so it never waits on the outer build's lock. Set
//! `M365SYNC_COMPONENT_PATH` to use a prebuilt component instead.
//!
//! rustup does not apply `rust-toolchain.toml`'s `targets` to a toolchain that is already
//! installed when `RUSTUP_AUTO_INSTALL=0` (many CI images, this project's machines), so a
//! missing `wasm32-wasip2` standard library is checked for and installed here, before the
//! nested build, with a line saying so.

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
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .expect("host/runtime/ sits in the workspace");
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

    ensure_wasm_target(workspace);

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

const WASM_TARGET: &str = "wasm32-wasip2";

/// Installs the wasm target's standard library through rustup when the toolchain lacks it.
/// Without rustup (a distribution's Rust), says what to install and stops.
fn ensure_wasm_target(workspace: &Path) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let sysroot = Command::new(&rustc)
        .current_dir(workspace)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let Some(sysroot) = sysroot else {
        // No sysroot to look in: let the nested build say what is wrong.
        return;
    };
    let target_lib = sysroot.join("lib/rustlib").join(WASM_TARGET);
    if target_lib.is_dir() {
        return;
    }
    println!(
        "cargo:warning=the {WASM_TARGET} target is not installed in {}; \
         installing it with `rustup target add {WASM_TARGET}`",
        sysroot.display()
    );
    eprintln!("m365sync: installing the {WASM_TARGET} target (rustup target add {WASM_TARGET})");
    let status = Command::new("rustup")
        .current_dir(workspace)
        .args(["target", "add", WASM_TARGET])
        .status();
    match status {
        Ok(status) if status.success() && target_lib.is_dir() => {}
        Ok(status) => panic!(
            "`rustup target add {WASM_TARGET}` failed ({status}); the component (guest/) \
             cannot be built without it. Install it by hand and build again."
        ),
        Err(error) => panic!(
            "the {WASM_TARGET} target is missing from {} and rustup could not be run \
             ({error}); install the target's standard library for this toolchain and \
             build again",
            sysroot.display()
        ),
    }
}

fn exists(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}
