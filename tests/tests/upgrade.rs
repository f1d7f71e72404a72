//! Upgrade and rollback by warm reload: N -> N+1 -> N with two different
//! builds (the "next" build says `+next` in its version and writes handoff
//! format 1.1, which the normal build reads as 1.0 plus fields it ignores).
//! QEMU places the next build in image slot 1, the staging slot at a cold
//! boot; `upgrade` reloads into it, `rollback` back into the image it was
//! upgraded from. An empty or damaged slot is refused before any VM is
//! paused.

use tests::hv::SlotRole;
use tests::*;

fn version() -> String {
    format!("blink {}", env!("CARGO_PKG_VERSION"))
}

fn start_with_slot(gic: u32, slot: Option<std::path::PathBuf>) -> anyhow::Result<QemuRun> {
    start_heartbeat_and_pattern(gic, |s| s.next_image = slot)
}

/// One `upgrade` (or `rollback`: `back`) from `from` (writing handoff
/// minor `from_minor`) into `to`.
#[allow(clippy::too_many_arguments)]
fn upgrade(
    run: &mut QemuRun,
    back: bool,
    generation: u32,
    from: &str,
    from_minor: u32,
    to: &str,
    to_minor: u32,
) -> anyhow::Result<()> {
    let beat = last_value(run, |l| heartbeat_n("domU0", l));
    let pass = last_value(run, |l| mempattern_pass("domU1", l));
    reload::switch_image(run, back, to, from)?;
    run.expect(&hv::banner_of(to, "qemu-virt", 2), DEADLINE)?;
    run.expect(
        &hv::handoff_read(from_minor, from, generation - 1, to, to_minor),
        DEADLINE,
    )?;
    run.expect(&hv::reload_report(generation, 2), DEADLINE)?;
    wait_beyond(
        run,
        DEADLINE,
        "heartbeat after the upgrade",
        |l| heartbeat_n("domU0", l),
        beat,
    )?;
    wait_beyond(
        run,
        DEADLINE,
        "memory verified after the upgrade",
        |l| mempattern_pass("domU1", l),
        pass,
    )?;
    Ok(())
}

fn n_to_next_and_back(gic: u32) -> anyhow::Result<()> {
    let next = xtask::images::require_next_image()?;
    let (n, n1) = (version(), xtask::images::next_version());
    let mut run = start_with_slot(gic, Some(next))?;
    run.send(b"images\r")?;
    run.expect(
        &hv::image_slot(0, &n, "qemu-virt", SlotRole::Running),
        DEADLINE,
    )?;
    run.expect(
        &hv::image_slot(1, &n1, "qemu-virt", SlotRole::Staged),
        DEADLINE,
    )?;
    upgrade(&mut run, false, 1, &n, 0, &n1, 1)?;
    run.send(b"images\r")?;
    run.expect(&hv::image_slot_holding(0, &n, SlotRole::Previous), DEADLINE)?;
    run.expect(&hv::image_slot_holding(1, &n1, SlotRole::Running), DEADLINE)?;
    upgrade(&mut run, true, 2, &n1, 1, &n, 0)?;
    // Back on N, whose slot still holds its pristine copy: a plain
    // rejuvenation works as before and keeps the way back (the next build,
    // still intact in slot 1, is the previous image now).
    run.send(b"rejuvenate\r")?;
    run.expect(&hv::handoff_read(0, &n, 2, &n, 0), DEADLINE)?;
    run.expect(&hv::reload_report(3, 2), DEADLINE)?;
    run.send(b"images\r")?;
    run.expect(&hv::image_slot_holding(0, &n, SlotRole::Running), DEADLINE)?;
    run.expect(
        &hv::image_slot_holding(1, &n1, SlotRole::Previous),
        DEADLINE,
    )?;
    more_heartbeats(&mut run, "domU0", 2, "heartbeat after three reloads")?;
    let lines = run.lines();
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU0"))?;
    let passes: Vec<u64> = lines
        .iter()
        .filter_map(|l| mempattern_pass("domU1", l))
        .collect();
    reload::check_continuous(&run, "mempattern passes", &passes)?;
    guest::check_started_once(&run, &re("mempattern: filled"), "mempattern")?;
    // From the first upgrade's first line on.
    reload::check_clean(&run, reload::Since::FirstReload)?;
    Ok(())
}

/// Without a second image, `upgrade` says why not and nothing stops.
fn empty_slot(gic: u32) -> anyhow::Result<()> {
    let mut run = start_with_slot(gic, None)?;
    run.send(b"upgrade\r")?;
    run.expect(
        &hv::slot_refused(1, r"no image \(no BLINKIMG header\)"),
        DEADLINE,
    )?;
    let ns = more_heartbeats(&mut run, "domU0", 2, "heartbeat after the refused upgrade")?;
    check_counting(&run, &ns, "after the refused upgrade")?;
    run.assert_absent(&re(r"suspending|warm entry"))?;
    Ok(())
}

/// Slot 1 holds `bytes`; `upgrade` must be refused with `reason` (the
/// text after "image slot 1: ") and the guests go on.
fn refused_slot(gic: u32, what: &str, bytes: &[u8], reason: &str) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("blink-{what}-slot-{}-{gic}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{what}.slot"));
    std::fs::write(&path, bytes)?;
    let mut run = start_with_slot(gic, Some(path))?;
    run.send(b"upgrade\r")?;
    run.expect(&hv::slot_refused(1, reason), DEADLINE)?;
    let ns = more_heartbeats(&mut run, "domU0", 2, "heartbeat after the refused upgrade")?;
    check_counting(&run, &ns, "after the refused upgrade")?;
    run.assert_absent(&re(r"suspending|warm entry"))?;
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A slot whose image was damaged (one byte) fails its checksum.
fn damaged_slot(gic: u32) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(xtask::images::require_next_image()?)?;
    let mid = vmm::image_slot::HEADER_SIZE + (bytes.len() - vmm::image_slot::HEADER_SIZE) / 2;
    bytes[mid] ^= 0x01;
    refused_slot(
        gic,
        "damaged",
        &bytes,
        r"image checksum mismatch \(header 0x[0-9a-f]{8}, image 0x[0-9a-f]{8}\)",
    )
}

/// A sound image packaged for another board: refused by name, although its
/// arm64 header would pass (same load offset).
fn other_board_slot(gic: u32) -> anyhow::Result<()> {
    let slot = std::fs::read(xtask::images::require_next_image()?)?;
    let len = vmm::image_slot::read_header(&slot)
        .map_err(|e| anyhow::anyhow!("next image slot: {e}"))?
        .image_len as usize;
    let image = &slot[vmm::image_slot::HEADER_SIZE..vmm::image_slot::HEADER_SIZE + len];
    let bytes = vmm::image_slot::package("blink 0.1.0+next", "raspi4b", image);
    refused_slot(
        gic,
        "other-board",
        &bytes,
        r"image built for board 'raspi4b', this is 'qemu-virt'",
    )
}

mod n_next_n {
    use super::*;
    on_both_gics!(n_to_next_and_back);
}

mod refused {
    use super::*;
    #[test]
    fn empty_slot_gicv3() -> anyhow::Result<()> {
        empty_slot(3)
    }
    #[test]
    fn damaged_slot_gicv3() -> anyhow::Result<()> {
        damaged_slot(3)
    }
    #[test]
    fn other_board_slot_gicv3() -> anyhow::Result<()> {
        other_board_slot(3)
    }
}
