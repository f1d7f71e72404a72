//! A missing or malformed host device tree is reported on the early console
//! and the hypervisor halts: it never hangs silently, and never starts VMs.

use tests::*;
use xtask::SerialMode;

/// Booted as an ELF, QEMU passes no device tree address in x0.
fn missing(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let elf = xtask::target_dir().join("aarch64-unknown-none-softfloat/release/hypervisor");
    anyhow::ensure!(
        elf.exists(),
        "{} is missing: run `cargo xtask build`",
        elf.display()
    );
    let mut s = scenario(gic, [VmSpec::guest("domU0", "heartbeat")]);
    s.hypervisor = elf;
    // Not `start`: that fails on the first FATAL line, which is the point here.
    let mut run = QemuRun::start(&s)?;
    run.expect(&hv::no_device_tree(), DEADLINE)?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    run.assert_absent(&re(r"started|\[domU0\]"))?;
    Ok(())
}

/// A structurally valid tree whose GIC is unrecognisable.
fn malformed(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let s = scenario(gic, [VmSpec::guest("domU0", "heartbeat")]);
    let cmd = s.prepare(SerialMode::Pipe)?;
    let mut blob = std::fs::read(&cmd.dtb)?;
    // Same length, so the blob stays well-formed: only the meaning breaks.
    let (from, to): (&[u8], &[u8]) = if gic == 3 {
        (b"arm,gic-v3\0", b"arm,gic-v9\0")
    } else {
        (b"arm,cortex-a15-gic\0", b"arm,cortex-a15-gix\0")
    };
    let at = blob
        .windows(from.len())
        .position(|w| w == from)
        .ok_or_else(|| anyhow::anyhow!("QEMU's tree has no {:?}", String::from_utf8_lossy(from)))?;
    blob[at..at + to.len()].copy_from_slice(to);
    std::fs::write(&cmd.dtb, &blob)?;
    let mut run = QemuRun::spawn(cmd)?;
    run.expect(&hv::no_gic(), DEADLINE)?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    run.assert_absent(&re(r"started|\[domU0\]"))?;
    Ok(())
}

mod missing_dtb {
    use super::*;
    on_both_gics!(missing);
}

mod malformed_dtb {
    use super::*;
    on_both_gics!(malformed);
}
