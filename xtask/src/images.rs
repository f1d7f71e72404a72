//! Building the aarch64 artifacts and turning them into raw images under
//! `target/images/`.
//!
//! QEMU's `-kernel` and `-device loader,force-raw=on` want flat binaries, and
//! the guest boot protocol is the arm64 `Image` one, so every ELF is flattened
//! with `llvm-objcopy -O binary`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Target of the EL2 image: soft-float so the hypervisor never touches the
/// guests' FP/SIMD registers.
pub const HV_TARGET: &str = "aarch64-unknown-none-softfloat";
/// Target of the test guests.
pub const GUEST_TARGET: &str = "aarch64-unknown-none";

/// `target/images/`.
pub fn images_dir() -> PathBuf {
    crate::target_dir().join("images")
}

/// `target/images/hypervisor.bin`.
pub fn hypervisor_image() -> PathBuf {
    images_dir().join("hypervisor.bin")
}

/// `target/images/<guest>.bin`.
pub fn guest_image(guest: &str) -> PathBuf {
    images_dir().join(format!("{guest}.bin"))
}

/// The hypervisor image, or an error telling how to build it.
pub fn require_hypervisor_image() -> Result<PathBuf> {
    require_file(&hypervisor_image())
}

/// `target/images/hypervisor-next.slot`: a second build of the hypervisor
/// (version `+next`, handoff format minor 1) in the image slot format, for
/// the upgrade tests (N -> N+1 -> N).
pub fn next_image() -> PathBuf {
    next_image_for(crate::machine::Machine::Virt)
}

/// The "next" image packaged for `machine`'s board (the slot header names
/// the board; the image bytes are the same for every board):
/// [`next_image`] for `virt`, `hypervisor-next-<board>.slot` otherwise.
pub fn next_image_for(machine: crate::machine::Machine) -> PathBuf {
    NEXT.slot_for(machine)
}

/// The "next" image, or an error telling how to build it.
pub fn require_next_image() -> Result<PathBuf> {
    require_file(&next_image())
}

/// Version string the "next" build reports.
pub fn next_version() -> String {
    NEXT.version()
}

/// `target/images/hypervisor-faulty.slot` (virt; see [`faulty_image_for`]):
/// a build for the tests of a trial upgrade's safety net, which fails in
/// its warm entry the way `/chosen/blink,test-fault` asks (refuse the
/// handoff block, panic, hang). Never ship it.
pub fn faulty_image_for(machine: crate::machine::Machine) -> PathBuf {
    FAULTY.slot_for(machine)
}

/// The faulty image for `machine`, or an error telling how to build it.
pub fn require_faulty_image(machine: crate::machine::Machine) -> Result<PathBuf> {
    require_file(&faulty_image_for(machine))
}

/// Version string the faulty build reports.
pub fn faulty_version() -> String {
    FAULTY.version()
}

/// A second build of the hypervisor, told apart by its version suffix,
/// that tests reload into.
struct Variant {
    tag: &'static str,
    envs: &'static [(&'static str, &'static str)],
}

const NEXT: Variant = Variant {
    tag: "next",
    envs: &[("BLINK_BUILD_TAG", "next"), ("BLINK_HANDOFF_MINOR", "1")],
};

const FAULTY: Variant = Variant {
    tag: "faulty",
    envs: &[("BLINK_BUILD_TAG", "faulty"), ("BLINK_TEST_FAULTS", "1")],
};

impl Variant {
    fn version(&self) -> String {
        format!("blink {}+{}", env!("CARGO_PKG_VERSION"), self.tag)
    }

    /// `hypervisor-<tag>.slot` for virt, `hypervisor-<tag>-<board>.slot`
    /// for the other boards.
    fn slot_for(&self, machine: crate::machine::Machine) -> PathBuf {
        match machine {
            crate::machine::Machine::Virt => {
                images_dir().join(format!("hypervisor-{}.slot", self.tag))
            }
            m => images_dir().join(format!("hypervisor-{}-{}.slot", self.tag, m.board().name)),
        }
    }
}

/// `target/images/hypervisor-production.bin`: a production test build,
/// the hypervisor with `keys/test-operator.pub` as its operator key
/// (`BLINK_OPERATOR_KEYS`): state changes on its maintenance link need
/// an operator session, its shell changes nothing, it has no `debug-*`
/// commands. The key is committed and test-only; so is this image.
pub fn production_image() -> PathBuf {
    images_dir().join("hypervisor-production.bin")
}

/// The production test build, or an error telling how to build it.
pub fn require_production_image() -> Result<PathBuf> {
    require_file(&production_image())
}

/// The test operator key pair's base (`.pub` is built into
/// [`production_image`], `.secret` opens sessions on it). Test-only.
pub fn test_operator_key() -> PathBuf {
    crate::workspace_root().join("keys/test-operator")
}

/// A guest image, or an error telling how to build it.
pub fn require_guest_image(guest: &str) -> Result<PathBuf> {
    require_file(&guest_image(guest))
}

fn require_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        bail!(
            "{} is missing: run `cargo xtask build` first",
            path.display()
        )
    }
}

/// Guest program names, discovered from `guests/src/bin/*.rs` (and the
/// `guests/src/bin/<name>/main.rs` form), sorted.
pub fn guest_names() -> Result<Vec<String>> {
    guest_names_in(&crate::workspace_root().join("guests/src/bin"))
}

fn guest_names_in(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No guests yet is a valid state of the tree, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_file() {
            if let Some(stem) = name.strip_suffix(".rs") {
                names.push(stem.to_string());
            }
        } else if path.join("main.rs").is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// What [`build`] produced.
#[derive(Debug, Clone)]
pub struct BuiltImages {
    pub hypervisor: PathBuf,
    /// `(guest name, raw image)`.
    pub guests: Vec<(String, PathBuf)>,
}

/// The cargo to run nested builds with: the one that started us if any.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds the hypervisor and every guest in release mode and writes the raw
/// images to `target/images/`.
pub fn build() -> Result<BuiltImages> {
    let root = crate::workspace_root();
    let target = crate::target_dir();
    let objcopy = llvm_objcopy()?;
    let out = images_dir();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    run_cargo(
        &root,
        &[
            "build",
            "-p",
            "hypervisor",
            "--target",
            HV_TARGET,
            "--release",
        ],
    )?;
    let hv_elf = target.join(HV_TARGET).join("release").join("hypervisor");
    let hypervisor = hypervisor_image();
    objcopy_binary(&objcopy, &hv_elf, &hypervisor)?;
    build_variant(&root, &objcopy, &NEXT)?;
    build_variant(&root, &objcopy, &FAULTY)?;
    build_production(&root, &objcopy)?;

    let names = guest_names()?;
    let mut guests = Vec::new();
    if names.is_empty() {
        eprintln!("xtask: no guests found in guests/src/bin; only the hypervisor was built");
    } else {
        run_cargo(
            &root,
            &[
                "build",
                "-p",
                "guests",
                "--target",
                GUEST_TARGET,
                "--release",
                "--bins",
            ],
        )?;
        for name in names {
            let elf = target.join(GUEST_TARGET).join("release").join(&name);
            let bin = guest_image(&name);
            objcopy_binary(&objcopy, &elf, &bin)?;
            let bytes =
                std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
            // Not fatal: a guest without the header only fails when booted,
            // and a clear warning at build time saves a confusing test run.
            if let Err(e) = check_arm64_header(&bytes) {
                eprintln!("xtask: warning: {}: {e}", bin.display());
            }
            guests.push((name, bin));
        }
    }
    Ok(BuiltImages { hypervisor, guests })
}

/// A second, distinguishable build (see [`next_image`], [`faulty_image_for`]).
/// Each gets its own target directory so that the builds do not invalidate
/// each other.
fn build_variant(root: &Path, objcopy: &Path, v: &Variant) -> Result<()> {
    let bin = images_dir().join(format!("hypervisor-{}.bin", v.tag));
    build_hypervisor_variant(root, objcopy, &format!("{}-build", v.tag), v.envs, &bin)?;
    let image = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    // One slot file per board: the same image, the header naming the board.
    for machine in crate::machine::Machine::ALL {
        let out = v.slot_for(machine);
        std::fs::write(
            &out,
            vmm::image_slot::package(&v.version(), machine.board().name, &image),
        )
        .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// The production test build (see [`production_image`]), in its own
/// target directory like [`build_variant`]'s.
fn build_production(root: &Path, objcopy: &Path) -> Result<PathBuf> {
    let key = test_operator_key().with_extension("pub");
    let key_str = key.to_str().context("key path is not UTF-8")?;
    let bin = production_image();
    build_hypervisor_variant(
        root,
        objcopy,
        "production-build",
        &[("BLINK_OPERATOR_KEYS", key_str)],
        &bin,
    )?;
    Ok(bin)
}

/// The hypervisor built with `envs` in `target/<dir>`, flattened to `bin`.
fn build_hypervisor_variant(
    root: &Path,
    objcopy: &Path,
    dir: &str,
    envs: &[(&str, &str)],
    bin: &Path,
) -> Result<()> {
    let dir = crate::target_dir().join(dir);
    let dir_str = dir.to_str().context("target directory path is not UTF-8")?;
    run_cargo_env(
        root,
        &[
            "build",
            "-p",
            "hypervisor",
            "--target",
            HV_TARGET,
            "--release",
            "--target-dir",
            dir_str,
        ],
        envs,
    )?;
    objcopy_binary(
        objcopy,
        &dir.join(HV_TARGET).join("release").join("hypervisor"),
        bin,
    )
}

fn run_cargo(root: &Path, args: &[&str]) -> Result<()> {
    run_cargo_env(root, args, &[])
}

fn run_cargo_env(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = cargo()
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn objcopy_binary(objcopy: &Path, elf: &Path, bin: &Path) -> Result<()> {
    if !elf.is_file() {
        bail!("expected build output {} does not exist", elf.display());
    }
    let status = Command::new(objcopy)
        .arg("-O")
        .arg("binary")
        .arg(elf)
        .arg(bin)
        .status()
        .with_context(|| format!("running {}", objcopy.display()))?;
    if !status.success() {
        bail!("llvm-objcopy failed on {} ({status})", elf.display());
    }
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    eprintln!("xtask: {} ({size} bytes)", bin.display());
    Ok(())
}

/// Output of `rustc <args>`, trimmed.
fn rustc_output(args: &[&str]) -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(args)
        .output()
        .context("running rustc")?;
    if !out.status.success() {
        bail!(
            "`rustc {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The toolchain's sysroot (`rustc --print sysroot`).
pub fn sysroot() -> Result<PathBuf> {
    Ok(PathBuf::from(rustc_output(&["--print", "sysroot"])?))
}

/// The host triple rustc builds for by default.
pub fn host_triple() -> Result<String> {
    let verbose = rustc_output(&["-vV"])?;
    verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|s| s.trim().to_string())
        .context("`rustc -vV` printed no host triple")
}

/// The `llvm-objcopy` shipped with the `llvm-tools` rustup component.
pub fn llvm_objcopy() -> Result<PathBuf> {
    let path = sysroot()?
        .join("lib/rustlib")
        .join(host_triple()?)
        .join("bin/llvm-objcopy");
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "llvm-objcopy not found at {}: run `rustup component add llvm-tools`",
            path.display()
        )
    }
}

/// Checks the 64-byte arm64 `Image` header the guest boot protocol relies on.
pub fn check_arm64_header(image: &[u8]) -> Result<()> {
    let Some(header) = image.get(..64) else {
        bail!(
            "image is {} bytes, shorter than the 64-byte arm64 Image header",
            image.len()
        );
    };
    if &header[56..60] != b"ARM\x64" {
        bail!("no arm64 Image header (magic \"ARM\\x64\" missing at offset 56)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_discovery_handles_files_dirs_and_absence() {
        let dir = crate::target_dir()
            .join("xtask")
            .join(format!("guest-discovery-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("smp")).unwrap();
        std::fs::write(dir.join("timer.rs"), "").unwrap();
        std::fs::write(dir.join("heartbeat.rs"), "").unwrap();
        std::fs::write(dir.join("notes.txt"), "").unwrap();
        std::fs::write(dir.join("smp/main.rs"), "").unwrap();
        assert_eq!(guest_names_in(&dir).unwrap(), ["heartbeat", "smp", "timer"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(guest_names_in(&dir).unwrap().is_empty());
    }

    #[test]
    fn arm64_header_check() {
        let mut image = vec![0u8; 64];
        assert!(check_arm64_header(&image).is_err());
        image[56..60].copy_from_slice(b"ARM\x64");
        assert!(check_arm64_header(&image).is_ok());
        assert!(check_arm64_header(&image[..10]).is_err());
    }
}
