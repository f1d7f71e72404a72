//! Aging and rejuvenation: the hypervisor reports its aging indicators
//! (`status`), a deliberate leak shows in them, and a warm reload brings
//! them back to the baseline while the VMs carry on. A periodic reload
//! (`/chosen/blink,rejuvenate-interval-ms`) keeps reloading on its own.

use tests::*;

/// Figures of one `aging:` line.
#[derive(Debug, Clone, Copy)]
struct Aging {
    image_up: u64,
    generation: u64,
    used: u64,
    largest_free_kib: u64,
}

fn aging_re() -> Regex {
    re(r"^\[hv\] aging: image up (\d+) s, generation (\d+) \((\d+) warm reloads since the cold boot\), heap (\d+) bytes in use \((\d+) bytes requested\), largest free block (\d+) KiB$")
}

/// Sends `status` and returns the next aging line.
fn status(run: &mut QemuRun) -> anyhow::Result<Aging> {
    let seen = run.find_all(&aging_re()).len();
    run.send(b"status\r")?;
    let line = run.wait_until(DEADLINE, "an aging line", |lines| {
        lines.iter().filter(|l| aging_re().is_match(l)).nth(seen).cloned()
    })?;
    let c = aging_re().captures(&line).expect("matched");
    let n = |i: usize| c[i].parse::<u64>().expect("digits");
    Ok(Aging { image_up: n(1), generation: n(2), used: n(4), largest_free_kib: n(6) })
}

fn leak_then_reload(gic: u32) -> anyhow::Result<()> {
    let mut run = start_heartbeat_and_pattern(gic, |_| ())?;
    let base = status(&mut run)?;
    check!(run, base.generation == 0, "generation at a cold boot: {base:?}");
    for _ in 0..3 {
        run.send(b"debug-leak 4096\r")?;
        run.expect(&re(r"^\[hv\] debug-leak: leaked 4096 KiB of hypervisor heap$"), DEADLINE)?;
    }
    let aged = status(&mut run)?;
    eprintln!("aging: baseline {base:?}, after leaking 12 MiB {aged:?}");
    check!(run, aged.used >= base.used + 12 * 1024 * 1024, "the leak does not show: {base:?} -> {aged:?}");
    // (The largest free block need not shrink: the heap holds several
    // blocks of the largest size and the leak may fit in the others.)
    check!(run, aged.largest_free_kib <= base.largest_free_kib, "largest free block grew with a leak: {base:?} -> {aged:?}");
    // A refused request (more than the heap can spare) changes nothing.
    run.send(b"debug-leak 100000000\r")?;
    run.expect(&re(r"^\[hv\] debug-leak: 100000000 KiB refused: at most \d+ KiB may be leaked$"), DEADLINE)?;
    let beat = heartbeats(&run, "domU0").last().copied().unwrap_or(0);
    run.send(b"rejuvenate\r")?;
    run.expect(&re(r"^\[hv\] reload: generation 1, 2 VMs resumed; "), DEADLINE)?;
    let fresh = status(&mut run)?;
    eprintln!("aging: after the reload {fresh:?}");
    check!(run, fresh.generation == 1, "generation after one reload: {fresh:?}");
    // Back to the baseline: the same VMs need the same bookkeeping; allow a
    // little for allocations whose size depends on the moment (console
    // buffers), nothing like the 12 MiB leaked.
    let slack = 64 * 1024;
    check!(
        run,
        fresh.used <= base.used + slack && base.used <= fresh.used + slack,
        "heap not back to its baseline: {base:?} -> {aged:?} -> {fresh:?}"
    );
    check!(run, fresh.largest_free_kib >= base.largest_free_kib, "largest free block not restored: {base:?} -> {fresh:?}");
    check!(run, fresh.image_up < aged.image_up || fresh.image_up == 0, "the new image's age did not restart: {aged:?} -> {fresh:?}");
    let ns = more_heartbeats(&mut run, "domU0", 2, "heartbeat after the reload")?;
    check!(run, ns.iter().any(|&n| n > beat), "heartbeat did not continue: {ns:?}");
    let beats = heartbeats(&run, "domU0");
    check!(run, beats.windows(2).all(|w| w[1] == w[0] + 1), "heartbeat counter not continuous: {beats:?}");
    Ok(())
}

const PERIODIC_RELOADS: u32 = 4;

fn periodic(gic: u32) -> anyhow::Result<()> {
    let mut run = start_heartbeat_and_pattern(gic, |s| s.reload_every_ms = Some(3000))?;
    for generation in 1..=PERIODIC_RELOADS {
        run.expect(&re(r"^\[hv\] rejuvenate: periodic reload \(every 3000 ms\)$"), DEADLINE)?;
        run.expect(&re(&format!(r"^\[hv\] reload: generation {generation}, 2 VMs resumed; ")), DEADLINE)?;
    }
    more_heartbeats(&mut run, "domU0", 2, "heartbeat after the periodic reloads")?;
    let lines = run.lines();
    let beats = heartbeats(&run, "domU0");
    check!(run, beats.windows(2).all(|w| w[1] == w[0] + 1), "heartbeat counter not continuous: {beats:?}");
    check!(run, lines.iter().filter(|l| l.contains("mempattern: filled")).count() == 1, "mempattern restarted");
    run.assert_absent(&re(r"MISMATCH|ERROR|refused"))?;
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
