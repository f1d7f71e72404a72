//! Host-side tooling for blink: builds the aarch64 images, turns a [`Scenario`]
//! (machine + VMs) into a QEMU command line with a patched device tree, and
//! drives QEMU over a serial pipe for the integration tests.
//!
//! The `cargo xtask` binary is a thin CLI over this library (`main.rs`: the
//! options; `cmd/`: one file per subcommand); the `tests` crate uses it
//! directly. [`machine`] holds what xtask knows about each QEMU machine.

use std::path::{Path, PathBuf};

pub mod bench;
pub mod cpio;
pub mod dtb;
pub mod images;
pub mod linux;
pub mod machine;
pub mod qemu;
pub mod rpi4_dtb;
pub mod runner;
pub mod scenario;
pub mod sdcard;
pub mod toolchain;

pub use runner::{LinePattern, QemuRun};
pub use scenario::{QemuCommand, Scenario, SerialMode, VmSpec};

/// `cargo xtask bench linux` and the `exits` line reading under their
/// former path (`bench_linux.rs`), which the `tests` crate uses; they live
/// in [`bench::linux`] and [`bench`](mod@bench).
pub mod bench_linux {
    pub use crate::bench::linux::run;
    pub use crate::bench::{parse_exits, rates, ExitsReading};
}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
///
/// Taken from this crate's location at compile time so that the library works
/// the same from `cargo xtask`, from the `tests` crate and from any current
/// directory.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

#[cfg(test)]
mod selftest;

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::PathBuf;

    /// A directory under `target/xtask/` removed when dropped.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let dir = crate::target_dir()
                .join("xtask")
                .join(format!("test-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
