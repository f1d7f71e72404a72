//! A guest that masks its interrupts and spins forever cannot take a
//! physical CPU away: on a single-CPU machine shared with the heartbeat
//! guest, the heartbeat keeps counting, the hypervisor shell answers and a
//! warm reload completes, after which the heartbeat still counts.
//!
//! It holds because the hypervisor's own interrupts (its slice timer, the
//! UART, kicks) are physical interrupts routed to EL2 by HCR_EL2.IMO: the
//! guest's PSTATE.I masks only the virtual interrupts it is given.

use tests::*;

fn spinner(gic: u32) -> anyhow::Result<()> {
    require_images(&["spinner", "heartbeat"])?;
    let s = scenario(
        gic,
        [
            VmSpec::guest("domU0", "spinner"),
            VmSpec::guest("domU1", "heartbeat"),
        ],
    )
    .smp(1);
    let mut run = start(&s)?;
    run.fail_on(hv::tagged(&[hv::Tag::Warn, hv::Tag::Error]));
    run.expect(
        &re(r"^\[domU0\] spinner: masking interrupts and spinning$"),
        DEADLINE,
    )?;
    let before = heartbeats(&run, "domU1").len();

    // The heartbeat goes on next to the spinner on the only CPU.
    let ns = more_heartbeats(&mut run, "domU1", 4, "heartbeats next to the spinner")?;
    check_counting(&run, &ns[before..], "next to the spinner")?;

    // The hypervisor shell still answers (the UART interrupt reaches EL2).
    focus_shell(&mut run, DEADLINE)?;
    run.send(b"status\r")?;
    run.expect(&hv::status_line(0, 1), DEADLINE)?;
    run.expect(&hv::vm_running(0, "domU0"), DEADLINE)?;
    run.expect(&hv::vm_running(1, "domU1"), DEADLINE)?;

    // A warm reload takes the spinning vCPU off the CPU and resumes it.
    let before_reload = heartbeats(&run, "domU1").len();
    run.send(b"rejuvenate\r")?;
    run.expect(&hv::suspending(2, 1), DEADLINE)?;
    run.expect(&hv::vm_resumed(0, "domU0"), DEADLINE)?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    let ns = more_heartbeats(&mut run, "domU1", 4, "heartbeats after the warm reload")?;
    // From the last report before the reload: the reload's pause counts too.
    check_counting(
        &run,
        &ns[before_reload.saturating_sub(1)..],
        "across the warm reload",
    )?;

    // Still the same two guests: neither restarted.
    let lines = run.lines();
    let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    check!(
        run,
        count("[domU1] heartbeat: start") == 1,
        "the heartbeat restarted"
    );
    check!(
        run,
        count("[domU0] spinner: masking") == 1,
        "the spinner restarted"
    );
    run.send(b"status\r")?;
    run.expect(&hv::status_generation(1), DEADLINE)?;
    run.expect(&hv::vm_running(0, "domU0"), DEADLINE)?;
    Ok(())
}

on_both_gics!(spinner);
