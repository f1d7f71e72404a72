//! Aging and rejuvenation: the hypervisor reports its aging indicators
//! (`status`), a deliberate leak shows in them, and a warm reload brings
//! them back to the baseline while the VMs carry on. A periodic reload
//! (`/chosen/blink,rejuvenate-interval-ms`) keeps reloading on its own.

use tests::*;

/// Sends `status` and returns the next aging line.
fn status(run: &mut QemuRun) -> anyhow::Result<hv::Aging> {
    let seen = run.find_all(&hv::Aging::pattern()).len();
    run.send(b"status\r")?;
    let line = run.wait_until(DEADLINE, "an aging line", |lines| {
        lines
            .iter()
            .filter(|l| hv::Aging::pattern().is_match(l))
            .nth(seen)
            .cloned()
    })?;
    Ok(hv::Aging::parse(&line).expect("matched"))
}

fn leak_then_reload(gic: u32) -> anyhow::Result<()> {
    let mut run = start_heartbeat_and_pattern(gic, |_| ())?;
    let base = status(&mut run)?;
    check!(
        run,
        base.generation == 0,
        "generation at a cold boot: {base:?}"
    );
    for _ in 0..3 {
        run.send(b"debug-leak 4096\r")?;
        run.expect(&hv::leaked(4096), DEADLINE)?;
    }
    let aged = status(&mut run)?;
    eprintln!("aging: baseline {base:?}, after leaking 12 MiB {aged:?}");
    check!(
        run,
        aged.heap_used >= base.heap_used + 12 * 1024 * 1024,
        "the leak does not show: {base:?} -> {aged:?}"
    );
    // (The largest free block need not shrink: the heap holds several
    // blocks of the largest size and the leak may fit in the others.)
    check!(
        run,
        aged.largest_free_kib <= base.largest_free_kib,
        "largest free block grew with a leak: {base:?} -> {aged:?}"
    );
    // A refused request (more than the heap can spare) changes nothing.
    run.send(b"debug-leak 100000000\r")?;
    run.expect(&hv::leak_refused(100000000), DEADLINE)?;
    let beat = heartbeats(&run, "domU0").last().copied().unwrap_or(0);
    run.send(b"rejuvenate\r")?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    let fresh = status(&mut run)?;
    eprintln!("aging: after the reload {fresh:?}");
    check!(
        run,
        fresh.generation == 1,
        "generation after one reload: {fresh:?}"
    );
    // Back to the baseline: the same VMs need the same bookkeeping; allow a
    // little for allocations whose size depends on the moment (console
    // buffers), nothing like the 12 MiB leaked.
    let slack = 64 * 1024;
    check!(
        run,
        fresh.heap_used <= base.heap_used + slack && base.heap_used <= fresh.heap_used + slack,
        "heap not back to its baseline: {base:?} -> {aged:?} -> {fresh:?}"
    );
    check!(
        run,
        fresh.largest_free_kib >= base.largest_free_kib,
        "largest free block not restored: {base:?} -> {fresh:?}"
    );
    check!(
        run,
        fresh.image_up_s < aged.image_up_s || fresh.image_up_s == 0,
        "the new image's age did not restart: {aged:?} -> {fresh:?}"
    );
    let ns = more_heartbeats(&mut run, "domU0", 2, "heartbeat after the reload")?;
    check!(
        run,
        ns.iter().any(|&n| n > beat),
        "heartbeat did not continue: {ns:?}"
    );
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU0"))?;
    Ok(())
}

const PERIODIC_RELOADS: u32 = 4;

fn periodic(gic: u32) -> anyhow::Result<()> {
    let mut run = start_heartbeat_and_pattern(gic, |s| s.reload_every_ms = Some(3000))?;
    for generation in 1..=PERIODIC_RELOADS {
        run.expect(&hv::periodic_reload(3000), DEADLINE)?;
        run.expect(&hv::reload_report(generation, 2), DEADLINE)?;
    }
    more_heartbeats(&mut run, "domU0", 2, "heartbeat after the periodic reloads")?;
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU0"))?;
    guest::check_started_once(&run, &re("mempattern: filled"), "mempattern")?;
    // The whole run: the periodic reloads begin on their own 3 s after the
    // cold boot, whose lines are as clean.
    reload::check_clean(&run, reload::Since::ColdBoot)?;
    Ok(())
}

mod leak {
    use super::*;
    on_both_gics!(leak_then_reload);
}

mod periodic_reload {
    use super::*;
    #[test]
    fn gicv3() -> anyhow::Result<()> {
        periodic(3)
    }
}
