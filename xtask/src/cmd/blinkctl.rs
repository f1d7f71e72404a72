//! What `keygen`, `sign` and `maint` share: they are `blinkctl` run from
//! the workspace (issue 12), so that one `cargo xtask ...` covers the
//! whole build, sign, upload cycle without a separate install. Building
//! and running it, rather than linking its library, keeps one
//! implementation and its exit codes (`blinkctl/src/exit.rs`: 0 ok, 1
//! refused, 2 usage, 3 no answer, 4 link, 5 local) as they are.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use xtask::images;

/// `cargo build -p blinkctl` (debug, host) with the cargo that started us;
/// returns `target/debug/blinkctl`.
pub fn build() -> Result<PathBuf> {
    let status = images::cargo()
        .args(["build", "--quiet", "-p", "blinkctl"])
        .current_dir(xtask::workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo build -p blinkctl` failed ({status})");
    }
    let exe = xtask::target_dir()
        .join("debug")
        .join(format!("blinkctl{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!("cargo built blinkctl but {} is missing", exe.display());
    }
    Ok(exe)
}

/// Builds blinkctl and runs it with `args` in the current directory; its
/// exit code becomes ours.
pub fn run<I, S>(args: I) -> Result<ExitCode>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let exe = build()?;
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let status = std::process::Command::new(&exe)
        .args(&args)
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Killed by a signal.
        None => ExitCode::FAILURE,
    })
}

/// A path as the xtask commands take them: relative to the workspace root
/// (like `dtb --out`), so `keys/development` means the same from anywhere.
pub fn in_workspace(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        xtask::workspace_root().join(path)
    }
}
