//! PSCI SYSTEM_RESET restarts the calling VM alone: the resetter guest (2
//! vCPUs, one spinning) resets itself every 0.5 s; each boot finds its image
//! freshly loaded, the heartbeat VM next to it never restarts and keeps
//! counting, and the hypervisor heap does not grow with resets.

use tests::*;

const BOOTS: u64 = 6;

/// `heap <n> KiB used` from the shell's `status` answer. Leaves the cursor
/// alone: the resetter's lines keep coming meanwhile.
fn heap_used(run: &mut QemuRun) -> anyhow::Result<u64> {
    let status_re = hv::Status::pattern();
    let seen = run.find_all(&status_re).len();
    run.send(b"status\r")?;
    let line = run.wait_until(DEADLINE, "a status answer", |lines| {
        lines
            .iter()
            .filter(|l| status_re.is_match(l))
            .nth(seen)
            .cloned()
    })?;
    Ok(hv::Status::parse(&line).expect("matched").heap_used_kib)
}

fn vm_reset(gic: u32) -> anyhow::Result<()> {
    require_images(&["resetter", "heartbeat"])?;
    let mut run = start(&scenario(
        gic,
        [
            VmSpec::guest("domU0", "resetter").cpus(2),
            VmSpec::guest("domU1", "heartbeat"),
        ],
    ))?;
    run.fail_on(re(
        r"resetter: boot fresh=no|SYSTEM_RESET returned|restart failed|cannot restart",
    ));
    let boot = re(r"^\[domU0\] resetter: boot fresh=yes cpus=2$");
    let mut heap_after_first_reset = None;
    for n in 1..=BOOTS {
        run.expect(&boot, DEADLINE)?;
        if n == 1 {
            // Input to the hypervisor shell (once the console is up), so
            // that `status` can be asked for.
            focus_shell(&mut run, DEADLINE)?;
        }
        if n == 2 {
            heap_after_first_reset = Some(heap_used(&mut run)?);
        }
        if n < BOOTS {
            run.expect(&hv::vm_reset_requested(0, "domU0"), DEADLINE)?;
            run.expect(&hv::vm_restarted(0, "domU0", n + 1), DEADLINE)?;
        }
    }
    let before = heap_after_first_reset.expect("measured at boot 2");
    let after = heap_used(&mut run)?;
    eprintln!(
        "GICv{gic}: heap {before} KiB after the first reset, {after} KiB after {}",
        BOOTS - 1
    );
    check!(
        run,
        after <= before,
        "heap grew from {before} KiB to {after} KiB over {} resets",
        BOOTS - 2
    );
    // One more heartbeat after the last boot, then check the whole series.
    run.expect(&heartbeat("domU1"), DEADLINE)?;
    let ns = heartbeats(&run, "domU1");
    guest::check_increasing(&run, &ns, "domU1")?;
    guest::check_started_once(&run, &re(r"^\[domU1\] heartbeat: start"), "domU1")?;
    check!(
        run,
        ns.len() >= 3,
        "too few heartbeats while domU0 reset {} times: {ns:?}",
        BOOTS - 1
    );
    Ok(())
}

/// After a warm reload (whose handoff block carries no configuration) the
/// resumed resetter still restarts: its configuration is found again in the
/// host device tree by name.
fn after_warm_reload(gic: u32) -> anyhow::Result<()> {
    require_images(&["resetter", "heartbeat"])?;
    let mut run = start(&scenario(
        gic,
        [
            VmSpec::guest("domU0", "resetter").cpus(2),
            VmSpec::guest("domU1", "heartbeat"),
        ],
    ))?;
    run.fail_on(re(
        r"resetter: boot fresh=no|SYSTEM_RESET returned|restart failed|cannot restart",
    ));
    run.expect(&hv::vm_restarted(0, "domU0", 2), DEADLINE)?;
    focus_shell(&mut run, DEADLINE)?;
    run.send(b"rejuvenate\r")?;
    run.expect(&hv::vm_resumed(0, "domU0"), DEADLINE)?;
    // Boots are counted afresh by the new image.
    run.expect(&hv::vm_reset_requested(0, "domU0"), DEADLINE)?;
    run.expect(&hv::vm_restarted(0, "domU0", 2), DEADLINE)?;
    run.expect(
        &re(r"^\[domU0\] resetter: boot fresh=yes cpus=2$"),
        DEADLINE,
    )?;
    run.expect(&hv::vm_restarted(0, "domU0", 3), DEADLINE)?;
    Ok(())
}

mod cold {
    use super::*;
    on_both_gics!(vm_reset);
}

mod warm {
    use super::*;
    on_both_gics!(after_warm_reload);
}
