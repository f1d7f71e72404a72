//! A missing or malformed host device tree is reported on the early console
//! and the hypervisor halts: it never hangs silently, and never starts VMs.

use tests::*;
use xtask::SerialMode;

/// No boot loader protocol at all: QEMU's generic loader places the raw
/// image and starts CPU 0 there with x0 = 0 (at EL2, the highest EL of
/// `virt,virtualization=on`). It goes 2 MiB above the usual load address:
/// without `-kernel` QEMU keeps a 1 MiB device tree at the RAM base, which
/// the usual place would overlap. So this also boots the position
/// independent image where no board loads it: it falls back to the first
/// board's console and still says what is wrong. (This test used to boot
/// the ELF, which QEMU enters without a DTB; the ELF is linked at 0 now.)
fn missing(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let s = scenario(gic, [VmSpec::guest("domU0", "heartbeat")]);
    let mut cmd = s.prepare(SerialMode::Pipe)?;
    for opt in ["-kernel", "-dtb"] {
        let i = cmd
            .args
            .iter()
            .position(|a| a == opt)
            .ok_or_else(|| anyhow::anyhow!("prepared command has no {opt}"))?;
        cmd.args.drain(i..i + 2);
    }
    let load = xtask::machine::virt::LOAD_ADDRESS + 0x20_0000;
    cmd.args.extend([
        "-device".to_string(),
        format!(
            "loader,file={},addr={load:#x},force-raw=on",
            s.hypervisor.display()
        ),
        "-device".to_string(),
        format!("loader,addr={load:#x},cpu-num=0"),
    ]);
    // Not `start`: that fails on the first FATAL line, which is the point here.
    let mut run = QemuRun::spawn(cmd)?;
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
