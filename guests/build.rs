//! Links the guest binaries with `link.ld` (arm64 Image layout at 0x4008_0000).
//!
//! Only for bare-metal aarch64: host builds (e.g. `cargo clippy --workspace`)
//! compile the binaries as empty stubs and must use the normal host linker.
use std::env;
use std::path::PathBuf;

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "aarch64" && os == "none" {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
