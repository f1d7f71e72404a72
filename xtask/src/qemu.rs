//! Finding (and, on a fresh Debian bookworm machine, installing) a QEMU that
//! is new enough: the `virt` machine features we use and the `raspi4b` board
//! need QEMU 10; bookworm itself ships 7.2.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Oldest acceptable major version.
pub const MIN_MAJOR: u32 = 10;
/// The QEMU binary name; `$BLINK_QEMU` overrides the lookup.
pub const QEMU_BIN: &str = "qemu-system-aarch64";

const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/backports.list";
const BACKPORTS_LINE: &str = "deb http://deb.debian.org/debian bookworm-backports main";

/// A usable QEMU.
#[derive(Debug, Clone)]
pub struct Qemu {
    pub path: PathBuf,
    pub version: (u32, u32, u32),
}

/// The shell commands that install a suitable QEMU on Debian bookworm.
pub fn install_commands() -> String {
    format!(
        "echo '{BACKPORTS_LINE}' > {BACKPORTS_LIST}\n\
         apt-get update\n\
         apt-get install -y -t bookworm-backports qemu-system-arm"
    )
}

/// Parses `QEMU emulator version 10.0.2 (...)`.
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn version_of(path: &Path) -> Result<(u32, u32, u32)> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).with_context(|| {
        format!(
            "cannot parse the version printed by {}: {text:?}",
            path.display()
        )
    })
}

/// Why [`find`] failed, so that [`ensure`] knows whether installing helps.
#[derive(Debug)]
enum Problem {
    Missing,
    TooOld(PathBuf, (u32, u32, u32)),
}

fn locate() -> Result<std::result::Result<Qemu, Problem>> {
    let path = match std::env::var_os("BLINK_QEMU") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => match which(QEMU_BIN) {
            Some(p) => p,
            None => return Ok(Err(Problem::Missing)),
        },
    };
    let version = version_of(&path)?;
    if version.0 < MIN_MAJOR {
        return Ok(Err(Problem::TooOld(path, version)));
    }
    Ok(Ok(Qemu { path, version }))
}

fn explain(problem: &Problem) -> String {
    let what = match problem {
        Problem::Missing => format!("{QEMU_BIN} not found in PATH"),
        Problem::TooOld(path, (a, b, c)) => format!(
            "{} is QEMU {a}.{b}.{c}; blink needs QEMU >= {MIN_MAJOR}",
            path.display()
        ),
    };
    format!(
        "{what}.\nOn Debian bookworm, install it from bookworm-backports (as root):\n{}",
        install_commands()
    )
}

/// Finds a QEMU >= 10 without installing anything.
pub fn find() -> Result<Qemu> {
    match locate()? {
        Ok(q) => Ok(q),
        Err(problem) => bail!("{}", explain(&problem)),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds a QEMU >= 10; if there is none and we are root on a machine with
/// apt-get, installs one from bookworm-backports, otherwise fails with the
/// commands to run.
pub fn ensure() -> Result<Qemu> {
    let problem = match locate()? {
        Ok(q) => return Ok(q),
        Err(p) => p,
    };
    // An explicit $BLINK_QEMU is the user's choice: never paper over it.
    let overridden = std::env::var_os("BLINK_QEMU").is_some_and(|p| !p.is_empty());
    if overridden || !is_root() || which("apt-get").is_none() {
        bail!("{}", explain(&problem));
    }
    eprintln!(
        "xtask: {}",
        explain(&problem).lines().next().unwrap_or_default()
    );
    eprintln!("xtask: installing qemu-system-arm from bookworm-backports");
    install().with_context(|| explain(&problem))?;
    find()
}

fn install() -> Result<()> {
    let existing = std::fs::read_to_string(BACKPORTS_LIST).unwrap_or_default();
    if !existing.lines().any(|l| l.trim() == BACKPORTS_LINE) {
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(BACKPORTS_LINE);
        text.push('\n');
        std::fs::write(BACKPORTS_LIST, text)
            .with_context(|| format!("writing {BACKPORTS_LIST}"))?;
    }
    for args in [
        &["update"][..],
        &[
            "install",
            "-y",
            "-t",
            "bookworm-backports",
            "qemu-system-arm",
        ][..],
    ] {
        eprintln!("xtask: apt-get {}", args.join(" "));
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
    }
    Ok(())
}

/// Held while a QEMU runs: serializes QEMU runs across threads and processes
/// (`target/xtask/qemu.lock`). The machine has 2 cores; two TCG QEMUs at
/// once would starve each other and stretch every test's deadline.
#[derive(Debug)]
pub struct QemuLock {
    _file: File,
}

impl QemuLock {
    /// Blocks until no other QEMU run holds the lock.
    pub fn acquire() -> Result<Self> {
        let dir = crate::target_dir().join("xtask");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("qemu.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!(
                    "xtask: waiting for another QEMU run to finish ({})",
                    path.display()
                );
                file.lock()
                    .with_context(|| format!("locking {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
        Ok(QemuLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing() {
        let text = "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright";
        assert_eq!(parse_version(text), Some((10, 0, 2)));
        assert_eq!(
            parse_version("QEMU emulator version 7.2.15"),
            Some((7, 2, 15))
        );
        assert_eq!(parse_version("QEMU emulator version 9"), Some((9, 0, 0)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version("version x"), None);
    }

    #[test]
    fn install_hint_has_the_exact_commands() {
        let hint = explain(&Problem::Missing);
        assert!(hint.contains(
            "echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list"
        ));
        assert!(hint.contains("apt-get update"));
        assert!(hint.contains("apt-get install -y -t bookworm-backports qemu-system-arm"));
    }
}
