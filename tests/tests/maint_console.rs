//! The maintenance link on a board with one usable UART (the Raspberry
//! Pi 4 on QEMU `raspi4b`: its board file names no maintenance UART):
//! blinkctl's frames ride on the console while a person types at the
//! same line, and the guests keep printing on it. The test shares QEMU's
//! serial port between itself (the person, and the log it checks) and
//! blinkctl (`QemuRun::console_socket`).

use tests::link::{blinkctl, blinkctl_binary, signed_next, upload_staged};
use tests::*;
use xtask::machine::{raspi4b, Machine};

fn version() -> String {
    format!("blink {}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn blinkctl_shares_the_pi_console() -> anyhow::Result<()> {
    xtask::rpi4_dtb::require()?;
    blinkctl_binary()?;
    let next = xtask::images::next_image_for(Machine::Raspi4b);
    anyhow::ensure!(
        next.is_file(),
        "{} missing: run `cargo xtask build`",
        next.display()
    );
    let (n, n1) = (version(), xtask::images::next_version());
    let mut run = start_heartbeat_and_pattern(2, |s| {
        s.on_raspi4b();
        s.next_image = Some(next);
    })?;
    let on_console =
        re(r"^\[hv\] maintenance link on the console \(board 'rpi4' names no UART for it\): ");
    check!(
        run,
        !run.find_all(&on_console).is_empty(),
        "the link is not on the console"
    );
    let dir = xtask::target_dir().join("xtask");
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join(format!("pi-console-{}.sock", std::process::id()));
    run.console_socket(&sock)?;
    let beat = |l: &str| heartbeat_n("domU0", l);

    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.starts_with(&format!("{n} on rpi4: ")),
        "status over the console: exit {code}: {err}{out}"
    );
    // `log`: the hypervisor's recent log lines, timed.
    let (code, out, err) = blinkctl(&sock, &["log"])?;
    check!(
        run,
        code == 0
            && out.starts_with("log: the last ")
            && out
                .lines()
                .any(|l| re(r"^ +\d+\.\d{3} maintenance link on the console ").is_match(l)),
        "log: exit {code}: {err}{out}"
    );
    // A person at the same line: the shell still answers typed text.
    run.send(b"images\r")?;
    run.expect(
        &hv::image_slot(1, &n1, "rpi4", hv::SlotRole::Staged),
        DEADLINE,
    )?;

    let last = last_value(&run, beat);
    let (code, out, err) = blinkctl(&sock, &["rejuvenate"])?;
    check!(run, code == 0, "rejuvenate: exit {code}: {err}{out}");
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    wait_beyond(&mut run, DEADLINE, "heartbeat after rejuvenate", beat, last)?;

    // A trial that nobody confirms reverts by itself.
    let (code, out, err) = blinkctl(&sock, &["upgrade", "--revert-after", "3"])?;
    check!(
        run,
        code == 0 && out.contains("on trial"),
        "upgrade --revert-after 3: exit {code}: {err}{out}"
    );
    run.expect(&hv::upgrade_to(&n1, &n), DEADLINE)?;
    run.expect(&hv::banner_of(&n1, "rpi4", raspi4b::CPUS), DEADLINE)?;
    run.expect(&hv::reload_report(2, 2), DEADLINE)?;
    run.expect(&hv::rollback_to(&n, &n1), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] trial: the upgrade to slot 1 was reverted \(not confirmed in time\); this image \(slot 0\) resumed the VMs, slot 1 is staged again$"),
        DEADLINE,
    )?;
    run.expect(&hv::reload_report(3, 2), DEADLINE)?;
    let last = last_value(&run, beat);
    wait_beyond(&mut run, DEADLINE, "heartbeat after the revert", beat, last)?;
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.starts_with(&format!("{n} on rpi4: ")) && !out.contains("trial:"),
        "status after the revert: exit {code}: {err}{out}"
    );

    reload::check_guests_intact(&run)?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

/// A signed image uploaded over the board's only UART (the console the
/// guests print on), then upgraded into and confirmed: what a technician
/// with one cable does in the field. On the Pi, and on `virt` without a
/// second serial.
#[test]
fn upload_over_the_pi_console() -> anyhow::Result<()> {
    upload_over_the_console(true)
}

#[test]
fn upload_over_the_virt_console() -> anyhow::Result<()> {
    upload_over_the_console(false)
}

fn upload_over_the_console(pi: bool) -> anyhow::Result<()> {
    let (board, cpus) = if pi {
        ("rpi4", raspi4b::CPUS)
    } else {
        ("qemu-virt", 2)
    };
    if pi {
        xtask::rpi4_dtb::require()?;
    }
    let (n, n1) = (version(), xtask::images::next_version());
    let (dir, _, image) = signed_next(&format!("console-upload-{board}"), board)?;
    let mut run = start_heartbeat_and_pattern(2, |s| {
        if pi {
            s.on_raspi4b()
        }
    })?;
    let sock = dir.join("console.sock");
    run.console_socket(&sock)?;
    let beat = |l: &str| heartbeat_n("domU0", l);

    let last = last_value(&run, beat);
    // blinkctl's defaults (16 frames in flight): the console is slower to
    // take bytes than a UART of its own, so the round trip through the
    // queue is longer than the configured timeout (the sender adapts).
    let (code, out, err) = blinkctl(&sock, &["upload", image.to_str().unwrap_or_default()])?;
    check!(
        run,
        code == 0,
        "upload over the console: exit {code}: {err}{out}"
    );
    run.expect(&upload_staged(&n1), DEADLINE)?;
    // The guests printed on the same line throughout.
    wait_beyond(
        &mut run,
        DEADLINE,
        "heartbeat during the upload",
        beat,
        last,
    )?;

    let (code, out, err) = blinkctl(&sock, &["upgrade"])?;
    check!(run, code == 0, "upgrade: exit {code}: {err}{out}");
    run.expect(&hv::upgrade_to(&n1, &n), DEADLINE)?;
    run.expect(&hv::banner_of(&n1, board, cpus), DEADLINE)?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    let (code, out, err) = blinkctl(&sock, &["confirm"])?;
    check!(
        run,
        code == 0 && out.contains("confirm: the image in slot 1 is permanent"),
        "confirm: exit {code}: {err}{out}"
    );
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.starts_with(&format!("{n1} on {board}: ")) && !out.contains("trial:"),
        "status after the confirmation: exit {code}: {err}{out}"
    );
    let last = last_value(&run, beat);
    wait_beyond(
        &mut run,
        DEADLINE,
        "heartbeat after the upgrade",
        beat,
        last,
    )?;
    reload::check_guests_intact(&run)?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}
