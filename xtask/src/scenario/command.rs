//! A QEMU invocation prepared from a scenario ([`QemuCommand`]): program,
//! arguments, the device trees and modules, and the temporary directory
//! that holds them; shell quoting for printing it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::dtb::Module;

pub(super) fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))
}

/// A path inside a QEMU `key=value,...` option: commas are doubled.
pub(super) fn qemu_opt_path(path: &Path) -> Result<String> {
    Ok(path_str(path)?.replace(',', ",,"))
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

pub(super) fn shell_line(program: &Path, args: &[String]) -> String {
    let mut line = shell_quote(&program.to_string_lossy());
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    line
}

/// A directory under `target/xtask/` private to one prepared command.
#[derive(Debug)]
pub(super) struct WorkDir {
    pub(super) path: PathBuf,
}

impl WorkDir {
    pub(super) fn new() -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = crate::target_dir().join("xtask").join(name);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("BLINK_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A prepared QEMU invocation. Owns its temporary directory: keep it alive
/// while QEMU runs.
#[derive(Debug)]
pub struct QemuCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The patched device tree passed with `-dtb`.
    pub dtb: PathBuf,
    /// QEMU's own tree as dumped, before patching.
    pub base_dtb: PathBuf,
    /// Every module, in load order.
    pub modules: Vec<Module>,
    pub(super) workdir: WorkDir,
}

impl QemuCommand {
    /// A QEMU invocation that boots no hypervisor: `args` as given, none of
    /// a scenario's device tree or modules (`dtb` and `base_dtb` are empty
    /// paths, `modules` empty). For running a guest bare on QEMU, as a
    /// baseline (`cargo xtask bench linux`).
    pub fn bare(program: PathBuf, args: Vec<String>) -> Result<Self> {
        Ok(QemuCommand {
            program,
            args,
            dtb: PathBuf::new(),
            base_dtb: PathBuf::new(),
            modules: Vec::new(),
            workdir: WorkDir::new()?,
        })
    }

    /// A `Command` for this invocation (stdio left to the caller).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }

    /// The temporary directory holding the device trees.
    pub fn workdir(&self) -> &Path {
        &self.workdir.path
    }
}

impl fmt::Display for QemuCommand {
    /// The command as a shell line, for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_line(&self.program, &self.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-M"), "-M");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(qemu_opt_path(Path::new("/a,b")).unwrap(), "/a,,b");
    }
}
