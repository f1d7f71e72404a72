//! Trial upgrades: `upgrade` starts the staged image on trial. Never
//! confirmed, it reverts by itself at its deadline: the previous image
//! resumes the VMs, says why, and stages the trial image again. With
//! `--confirm-after N` it becomes permanent by itself once every VM has
//! made progress for N seconds (and not while one VM spins stalled). The heartbeat and the memory-pattern guest count
//! and verify on through all of it. (The next build is placed in the
//! staging slot by QEMU's loader, as a boot loader would.)

use tests::hv::SlotRole;
use tests::link::{blinkctl, blinkctl_binary, serial_socket, wait_listening};
use tests::*;

fn version() -> String {
    format!("blink {}", env!("CARGO_PKG_VERSION"))
}

fn beat(l: &str) -> Option<u64> {
    heartbeat_n("domU0", l)
}

/// `blinkctl upgrade --confirm-after 2 --revert-after <revert_after>`,
/// accepted.
fn upgrade_confirming_after_2(
    run: &QemuRun,
    sock: &std::path::Path,
    revert_after: &str,
) -> anyhow::Result<()> {
    let (code, out, err) = blinkctl(
        sock,
        &[
            "upgrade",
            "--confirm-after",
            "2",
            "--revert-after",
            revert_after,
        ],
    )?;
    check!(
        run,
        code == 0 && out.contains("confirmed by itself after 2 s of every VM making progress"),
        "upgrade --confirm-after 2: exit {code}: {err}{out}"
    );
    Ok(())
}

fn unconfirmed_reverts_then_health_confirms(gic: u32) -> anyhow::Result<()> {
    blinkctl_binary()?;
    let next = xtask::images::require_next_image()?;
    let (n, n1) = (version(), xtask::images::next_version());
    let mut sock = std::path::PathBuf::new();
    let mut run = start_heartbeat_and_pattern(gic, |s| {
        s.next_image = Some(next);
        sock = serial_socket(s, &format!("trial-v{gic}")).unwrap_or_default();
    })?;
    wait_listening(&sock)?;

    // 1. On trial for 4 s, never confirmed: back to N by itself.
    let last = last_value(&run, beat);
    let (code, out, err) = blinkctl(&sock, &["upgrade", "--revert-after", "4"])?;
    check!(
        run,
        code == 0 && out.contains("on trial: 'confirm' within 4 s or it reverts"),
        "upgrade --revert-after 4: exit {code}: {err}{out}"
    );
    run.expect(&hv::upgrade_to(&n1, &n), DEADLINE)?;
    run.expect(&hv::banner_of(&n1, "qemu-virt", 2), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] trial: this image \(slot 1\) is on trial: 'confirm' within \d s or it reverts to slot 0$"),
        DEADLINE,
    )?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] trial: not confirmed in time: reverting to the previous image \(slot 0\)$"),
        DEADLINE,
    )?;
    run.expect(&hv::rollback_to(&n, &n1), DEADLINE)?;
    run.expect(&hv::banner_of(&n, "qemu-virt", 2), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] trial: the upgrade to slot 1 was reverted \(not confirmed in time\); this image \(slot 0\) resumed the VMs, slot 1 is staged again$"),
        DEADLINE,
    )?;
    run.expect(&hv::reload_report(2, 2), DEADLINE)?;
    wait_beyond(&mut run, DEADLINE, "heartbeat after the revert", beat, last)?;
    let (code, out, _) = blinkctl(&sock, &["images"])?;
    check!(
        run,
        code == 0
            && hv::image_slot_holding(1, &n1, SlotRole::Staged)
                .is_match(&format!("[hv] {}", out.lines().nth(1).unwrap_or_default())),
        "images after the revert: {out}"
    );

    // 2. Confirmed by health: every VM making progress for 2 s.
    upgrade_confirming_after_2(&run, &sock, "120")?;
    run.expect(&hv::reload_report(3, 2), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] trial: every VM made progress for the time asked: this image \(slot 1\) is permanent$"),
        DEADLINE,
    )?;
    let (code, out, _) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.starts_with(&format!("{n1} on qemu-virt: ")) && !out.contains("trial:"),
        "status after the confirmation: {out}"
    );
    more_heartbeats(&mut run, "domU0", 2, "heartbeat after the confirmation")?;
    reload::check_guests_intact(&run)?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

on_both_gics!(unconfirmed_reverts_then_health_confirms);

/// The health check looks for progress, not for a state: a VM that spins
/// with its interrupts masked is `Running` but does nothing of its own, so
/// `--confirm-after` never confirms, `status` names it, and the trial
/// reverts at its deadline with the heartbeat counting on throughout.
fn a_stalled_vm_keeps_the_trial_unconfirmed(gic: u32) -> anyhow::Result<()> {
    require_images(&["spinner", "heartbeat"])?;
    blinkctl_binary()?;
    let next = xtask::images::require_next_image()?;
    let (n, n1) = (version(), xtask::images::next_version());
    let mut s = scenario(
        gic,
        [
            VmSpec::guest("domU0", "heartbeat"),
            VmSpec::guest("domU1", "spinner"),
        ],
    );
    s.next_image = Some(next);
    let sock = serial_socket(&mut s, &format!("stalled-v{gic}"))?;
    let mut run = start(&s)?;
    run.expect(
        &re(r"^\[domU1\] spinner: masking interrupts and spinning$"),
        DEADLINE,
    )?;
    run.expect(&re(r"^\[domU0\] heartbeat: n=2 "), DEADLINE)?;
    wait_listening(&sock)?;
    let last = last_value(&run, beat);
    upgrade_confirming_after_2(&run, &sock, "8")?;
    run.expect(&hv::banner_of(&n1, "qemu-virt", 2), DEADLINE)?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    // Past the confirmation time, still on trial, and status says why.
    more_heartbeats(&mut run, "domU0", 4, "heartbeats on trial")?;
    let (code, out, _) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0
            && out.contains("slot 1 on trial")
            && out.contains(
                "no progress now: vm 1 'domU1' (no exit or finished interrupt of its own for 3 s)"
            )
            && !out.contains("vm 0 'domU0' ("),
        "status on trial with a stalled VM: {out}"
    );
    run.expect(
        &re(r"^\[hv\] trial: no progress at the deadline: vm 1 'domU1' \(no exit or finished interrupt of its own for 3 s\)$"),
        DEADLINE,
    )?;
    run.expect(
        &re(r"^\[hv\] trial: not confirmed in time: reverting to the previous image \(slot 0\)$"),
        DEADLINE,
    )?;
    run.expect(&hv::rollback_to(&n, &n1), DEADLINE)?;
    run.expect(&hv::reload_report(2, 2), DEADLINE)?;
    wait_beyond(&mut run, DEADLINE, "heartbeat after the revert", beat, last)?;
    check!(
        run,
        !run.lines().iter().any(|l| l.contains("is permanent")),
        "a trial with a stalled VM was confirmed"
    );
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU0"))?;
    guest::check_started_once(&run, &re("spinner: masking"), "spinner")?;
    reload::check_clean(&run, reload::Since::FirstReload)?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

mod a_stalled_vm {
    use super::*;
    fn case(gic: u32) -> anyhow::Result<()> {
        a_stalled_vm_keeps_the_trial_unconfirmed(gic)
    }
    on_both_gics!(case);
}
