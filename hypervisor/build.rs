//! Links the image with the selected board's linker script.
use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let platform = manifest.join("../platform");
    let board = if env::var_os("CARGO_FEATURE_BOARD_QEMU_VIRT").is_some() {
        "qemu-virt"
    } else {
        panic!("select a board feature, e.g. --features board-qemu-virt");
    };
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("aarch64") {
        let dir = platform.join(board);
        println!("cargo:rustc-link-arg=-T{}", dir.join("link.ld").display());
        // common.ld is INCLUDEd from the board script.
        println!("cargo:rustc-link-arg=-L{}", platform.display());
        println!("cargo:rerun-if-changed={}", platform.display());
    }
    println!("cargo:rustc-env=BLINK_BOARD={board}");
    // A second, distinguishable build for upgrade tests (N -> N+1 -> N):
    // BLINK_BUILD_TAG adds "+tag" to the version string, BLINK_HANDOFF_MINOR
    // sets the handoff format minor the image writes.
    let version = env::var("CARGO_PKG_VERSION").unwrap();
    let version = match env::var("BLINK_BUILD_TAG") {
        Ok(tag) if !tag.is_empty() => format!("{version}+{tag}"),
        _ => version,
    };
    println!("cargo:rustc-env=BLINK_VERSION={version}");
    let minor = env::var("BLINK_HANDOFF_MINOR").unwrap_or_else(|_| "0".into());
    println!("cargo:rustc-env=BLINK_HANDOFF_MINOR={minor}");
    println!("cargo:rerun-if-env-changed=BLINK_BUILD_TAG");
    println!("cargo:rerun-if-env-changed=BLINK_HANDOFF_MINOR");
}
