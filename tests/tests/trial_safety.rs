//! The safety net of a trial upgrade: a trial image that refuses the
//! handoff block, panics, or hangs in its warm entry ends with the previous
//! image running the same VMs, which says why. The faulty image is a test
//! build (`hypervisor-faulty.slot`) that fails the way the device tree's
//! `/chosen/blink,test-fault` asks; QEMU's loader places it in the staging
//! slot. The heartbeat and the memory-pattern guest count and verify on
//! through all of it (a hang costs them the pen's 5 s watch and a machine
//! reset, which keeps RAM).

use tests::hv::SlotRole;
use tests::link::{blinkctl, blinkctl_binary, serial_socket, wait_listening};
use tests::*;
use xtask::machine::{raspi4b, Machine};

fn version() -> String {
    format!("blink {}", env!("CARGO_PKG_VERSION"))
}

fn beat(l: &str) -> Option<u64> {
    heartbeat_n("domU0", l)
}

/// Why the previous image says the trial ended, for each fault.
fn reason(fault: &str) -> &'static str {
    match fault {
        "refuse" => r"the trial image refused the handoff block: a test build refusing every block",
        "panic" => r"the trial image panicked",
        _ => r"the trial image hung in its warm entry",
    }
}

/// The board's name and CPU count as the banner says them.
fn banner(machine: Machine, version: &str) -> Regex {
    match machine {
        Machine::Virt => hv::banner_of(version, "qemu-virt", 2),
        Machine::Raspi4b => hv::banner_of(version, "rpi4", raspi4b::CPUS),
    }
}

/// What the maintenance link says, or on the Pi (no maintenance UART yet)
/// the console shell.
struct Link {
    sock: Option<std::path::PathBuf>,
}

impl Link {
    fn upgrade(&self, run: &mut QemuRun) -> anyhow::Result<()> {
        match &self.sock {
            Some(sock) => {
                let (code, out, err) = blinkctl(sock, &["upgrade"])?;
                check!(
                    run,
                    code == 0 && out.contains("on trial"),
                    "upgrade: exit {code}: {err}{out}"
                );
            }
            None => run.send(b"upgrade\r")?,
        }
        Ok(())
    }

    /// After the revert: slot 0 runs `n` again, slot 1 is staged with
    /// `bad`, no trial is on.
    fn check_after(&self, run: &mut QemuRun, n: &str, bad: &str) -> anyhow::Result<()> {
        let Some(sock) = &self.sock else {
            run.send(b"images\r")?;
            run.expect(&hv::image_slot(0, n, "rpi4", SlotRole::Running), DEADLINE)?;
            run.expect(&hv::image_slot(1, bad, "rpi4", SlotRole::Staged), DEADLINE)?;
            return Ok(());
        };
        let (code, out, _) = blinkctl(sock, &["images"])?;
        let has = |slot, v, role| {
            out.lines()
                .any(|l| hv::image_slot_holding(slot, v, role).is_match(&format!("[hv] {l}")))
        };
        check!(
            run,
            code == 0 && has(1, bad, SlotRole::Staged) && has(0, n, SlotRole::Running),
            "images after the revert: {out}"
        );
        let (code, out, _) = blinkctl(sock, &["status"])?;
        check!(
            run,
            code == 0 && out.starts_with(&format!("{n} on qemu-virt: ")) && !out.contains("trial:"),
            "status after the revert: {out}"
        );
        let _ = std::fs::remove_file(sock);
        Ok(())
    }
}

fn trial_image_fails(machine: Machine, gic: u32, fault: &'static str) -> anyhow::Result<()> {
    let faulty = xtask::images::require_faulty_image(machine)?;
    let (n, bad) = (version(), xtask::images::faulty_version());
    let mut sock = None;
    let mut run = start_heartbeat_and_pattern(gic, |s| {
        if machine == Machine::Raspi4b {
            s.on_raspi4b();
        } else {
            sock = serial_socket(s, &format!("fault-{fault}-v{gic}")).ok();
        }
        s.next_image = Some(faulty);
        s.test_fault = Some(fault);
    })?;
    // The panic is provoked; the test checks it is the only one.
    run.fail_only_on(vec![re(r"\[hv\] FATAL")]);
    let link = Link { sock };
    if let Some(sock) = &link.sock {
        blinkctl_binary()?;
        wait_listening(sock)?;
    }

    let last = last_value(&run, beat);
    link.upgrade(&mut run)?;
    run.expect(&hv::upgrade_to(&bad, &n), DEADLINE)?;
    run.expect(&banner(machine, &bad), DEADLINE)?;
    match fault {
        "refuse" => run.expect(
            &re(r"^\[hv\] ERROR: trial: this image refused the handoff block \(test fault: this build refuses every block, .*\); handing the VMs back to the previous image$"),
            DEADLINE,
        )?,
        "panic" => run.expect(
            &re(r"^\[hv\] PANIC on cpu 0: panicked at hypervisor/src/reload/test_fault\.rs:"),
            DEADLINE,
        )?,
        _ => {
            run.expect(
                &re(r"^\[hv\] test fault: hanging in the warm entry, as /chosen/blink,test-fault asks$"),
                DEADLINE,
            )?;
            // The pen's watch resets the machine; the image QEMU boots
            // again finds the VMs and hands them back.
            run.expect(&banner(machine, &n), DEADLINE)?;
            run.expect(
                &re(r"^\[hv\] trial: the trial image \(slot 1\) hung in its warm entry: the holding pen's watch reset the machine; handing the VMs back to slot 0$"),
                DEADLINE,
            )?
        }
    };
    run.expect(&banner(machine, &n), DEADLINE)?;
    let reverted = re(&format!(
        r"^\[hv\] trial: the upgrade to slot 1 was reverted \({}\); this image \(slot 0\) resumed the VMs, slot 1 is staged again$",
        reason(fault)
    ));
    run.expect(&reverted, DEADLINE)?;
    let from = run.cursor();
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    wait_beyond(&mut run, DEADLINE, "heartbeat after the revert", beat, last)?;
    let passes = mempattern_passes(&run, "domU1").len();
    run.wait_until(DEADLINE, "a mempattern pass after the revert", |lines| {
        (lines
            .iter()
            .filter_map(|l| guest::mempattern_pass("domU1", l))
            .count()
            > passes)
            .then_some(())
    })?;

    link.check_after(&mut run, &n, &bad)?;
    let panics = run.find_all(&re(r"\[hv\] PANIC"));
    check!(
        run,
        panics.len() == usize::from(fault == "panic"),
        "panics: {panics:?}"
    );
    let beats = heartbeats(&run, "domU0");
    if fault == "hang" {
        // The heartbeat counts seconds of guest time: the 5 s watch shows
        // as a jump, never as a step back.
        check!(
            run,
            beats.windows(2).all(|w| w[1] > w[0]),
            "heartbeat went back: {beats:?}"
        );
    } else {
        reload::check_continuous(&run, "heartbeat counter", &beats)?;
    }
    guest::check_started_once(&run, &re(r"heartbeat: start "), "heartbeat")?;
    reload::check_continuous(&run, "mempattern passes", &mempattern_passes(&run, "domU1"))?;
    guest::check_started_once(&run, &re("mempattern: filled"), "mempattern")?;
    reload::check_clean(&run, reload::Since::Line(from))?;
    Ok(())
}

mod refuses_the_handoff {
    use super::*;
    fn case(gic: u32) -> anyhow::Result<()> {
        trial_image_fails(Machine::Virt, gic, "refuse")
    }
    on_both_gics!(case);
}

mod panics_in_its_warm_entry {
    use super::*;
    fn case(gic: u32) -> anyhow::Result<()> {
        trial_image_fails(Machine::Virt, gic, "panic")
    }
    on_both_gics!(case);
}

mod hangs_in_its_warm_entry {
    use super::*;
    fn case(gic: u32) -> anyhow::Result<()> {
        trial_image_fails(Machine::Virt, gic, "hang")
    }
    on_both_gics!(case);
}

/// The Pi has no PSCI: the pen's watch resets it through the BCM2711
/// watchdog, and after the reset the secondaries come back through the
/// spin table.
#[test]
fn hangs_in_its_warm_entry_on_raspi4b() -> anyhow::Result<()> {
    xtask::rpi4_dtb::require()?;
    trial_image_fails(Machine::Raspi4b, 2, "hang")
}
