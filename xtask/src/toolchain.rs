//! The Rust toolchain pieces the build and the gates need beyond what a
//! plain `rustup` install has: the two aarch64 targets, `llvm-tools` (for
//! `llvm-objcopy`), `rustfmt` and `clippy`. `rust-toolchain.toml` names
//! them, but rustup installs a pinned toolchain's extras only when it
//! installs the toolchain itself; a machine that already had it (or
//! `RUSTUP_AUTO_INSTALL=0`) lacks them. [`ensure`] adds what is missing,
//! so that `cargo xtask run` and `cargo xtask test` need no set-up step.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::images::{host_triple, sysroot, GUEST_TARGET, HV_TARGET};

/// What is missing from the active toolchain: (targets, components).
pub fn missing() -> Result<(Vec<&'static str>, Vec<&'static str>)> {
    let sysroot = sysroot()?;
    let lib = sysroot.join("lib/rustlib");
    let targets = [GUEST_TARGET, HV_TARGET]
        .into_iter()
        .filter(|t| !lib.join(t).is_dir())
        .collect();
    let host = host_triple()?;
    let objcopy = lib.join(&host).join("bin/llvm-objcopy");
    let exe = |name: &str| sysroot.join("bin").join(name);
    let components = [
        ("llvm-tools", objcopy.is_file()),
        ("rustfmt", exe("rustfmt").is_file()),
        ("clippy", exe("cargo-clippy").is_file()),
    ]
    .into_iter()
    .filter(|(_, present)| !present)
    .map(|(name, _)| name)
    .collect();
    Ok((targets, components))
}

/// Installs the missing targets and components with rustup (in the
/// workspace root, so that `rust-toolchain.toml` picks the toolchain).
pub fn ensure() -> Result<()> {
    let (targets, components) = missing()?;
    if targets.is_empty() && components.is_empty() {
        return Ok(());
    }
    let root = crate::workspace_root();
    if !targets.is_empty() {
        rustup(&root, "target", &targets)?;
    }
    if !components.is_empty() {
        rustup(&root, "component", &components)?;
    }
    let (targets, components) = missing()?;
    if !targets.is_empty() || !components.is_empty() {
        bail!(
            "rustup reported success but the toolchain still lacks {}",
            targets
                .iter()
                .chain(&components)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn rustup(root: &Path, what: &str, names: &[&str]) -> Result<()> {
    let shown = format!("rustup {what} add {}", names.join(" "));
    eprintln!(
        "xtask: the toolchain lacks {}: running `{shown}`",
        names.join(", ")
    );
    let status = Command::new("rustup")
        .args([what, "add"])
        .args(names)
        .current_dir(root)
        .status()
        .with_context(|| format!("running `{shown}` (is rustup installed? https://rustup.rs)"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); run it by hand and retry");
    }
    Ok(())
}
