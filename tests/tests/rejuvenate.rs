//! Warm reload: the hypervisor replaces itself (a fresh copy of its image)
//! under running VMs. After every reload the memory-pattern guest verifies
//! all of its RAM, the heartbeat guest's counter continues without a reset,
//! and the hypervisor's generation counts up. A corrupted handoff block is
//! refused and the VMs are cold-booted instead.

use std::time::Duration;

use tests::*;

const RELOADS: u32 = 10;

fn heartbeat_n(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("[domU0] heartbeat: n=")?;
    rest.split_whitespace().next()?.parse().ok()
}

fn pass_n(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("[domU1] mempattern: pass ")?;
    rest.split(':').next()?.parse().ok()
}

fn last(run: &QemuRun, f: fn(&str) -> Option<u64>) -> u64 {
    run.lines().iter().filter_map(|l| f(l)).next_back().unwrap_or(0)
}

/// Waits until `f` reports a value above `after` in a line at the end.
fn wait_beyond(run: &mut QemuRun, what: &str, f: fn(&str) -> Option<u64>, after: u64) -> anyhow::Result<u64> {
    run.wait_until(DEADLINE, what, |lines| lines.iter().filter_map(|l| f(l)).find(|&n| n > after))
}

fn start_pair(gic: u32) -> anyhow::Result<QemuRun> {
    require_images(&["heartbeat", "mempattern"])?;
    let s = scenario(gic, [VmSpec::guest("domU0", "heartbeat"), VmSpec::guest("domU1", "mempattern")]);
    let mut run = QemuRun::start(&s)?;
    wait_all(&mut run, &[re(r"^\[domU0\] heartbeat: n=2 "), re(r"^\[domU1\] mempattern: pass 1: \d+ MiB ok$")])?;
    run.send(b"\x1dh")?;
    run.expect(&re(r"^\[hv\] console input now goes to the hypervisor shell"), DEADLINE)?;
    Ok(run)
}

fn reloads(gic: u32) -> anyhow::Result<()> {
    let mut run = start_pair(gic)?;
    for generation in 1..=RELOADS {
        let beat = last(&run, heartbeat_n);
        let pass = last(&run, pass_n);
        run.send(b"rejuvenate\r")?;
        run.expect(&re(&format!(r"^\[hv\] rejuvenate: suspending 2 VMs for a warm reload \(generation {generation}\)$")), DEADLINE)?;
        run.expect(&re(r"^\[hv\] 1 secondary CPU\(s\) released from the holding pen$"), DEADLINE)?;
        run.expect(&re(r"^\[hv\] warm entry: handoff block at 0x[0-9a-f]+$"), DEADLINE)?;
        run.expect(&re(r"^\[hv\] vm 1 'domU1': resumed, 64 MiB at 0x[0-9a-f]+, 1 vCPUs$"), DEADLINE)?;
        run.expect(&re(&format!(r"^\[hv\] reload: generation {generation}, 2 VMs resumed; ")), DEADLINE)?;
        // Both guests go on from where they were: same counters, no restart.
        wait_beyond(&mut run, "heartbeat after the reload", heartbeat_n, beat)?;
        wait_beyond(&mut run, "a full memory verification after the reload", pass_n, pass)?;
    }
    let lines = run.lines();
    let beats: Vec<u64> = lines.iter().filter_map(|l| heartbeat_n(l)).collect();
    check!(run, beats.windows(2).all(|w| w[1] == w[0] + 1), "heartbeat counter not continuous: {beats:?}");
    let passes: Vec<u64> = lines.iter().filter_map(|l| pass_n(l)).collect();
    check!(run, passes.windows(2).all(|w| w[1] == w[0] + 1), "mempattern passes not continuous: {passes:?}");
    check!(run, lines.iter().filter(|l| l.contains("heartbeat: start")).count() == 1, "heartbeat restarted");
    check!(run, lines.iter().filter(|l| l.contains("mempattern: filled")).count() == 1, "mempattern restarted");
    let bad = re(r"MISMATCH|FATAL|PANIC|WARN|ERROR|\bstarted$");
    let first_reload = lines.iter().position(|l| l.contains("rejuvenate: suspending")).unwrap_or(0);
    if let Some(l) = lines[first_reload..].iter().find(|l| bad.is_match(l)) {
        anyhow::bail!("unexpected line after the first reload: {l}\n{}", run.report());
    }
    run.send(b"status\r")?;
    run.expect(&re(&format!(r"^\[hv\] uptime \d+ s, generation {RELOADS}, ")), DEADLINE)?;
    Ok(())
}

fn corrupted_handoff(gic: u32) -> anyhow::Result<()> {
    let mut run = start_pair(gic)?;
    run.send(b"debug-rejuvenate-corrupt\r")?;
    run.expect(&re(r"^\[hv\] rejuvenate: debug: flipping one byte"), DEADLINE)?;
    run.expect(&re(r"^\[hv\] warm entry: handoff block at 0x[0-9a-f]+$"), DEADLINE)?;
    run.expect(&re(r"^\[hv\] ERROR: handoff block refused: .*checksum.*; cold-booting the VMs from their configuration$"), DEADLINE)?;
    // Cold-booted from their configuration: both guests start from scratch.
    run.expect(&re(r"^\[hv\] vm 0 'domU0': started$"), DEADLINE)?;
    run.expect(&re(r"^\[hv\] vm 1 'domU1': started$"), DEADLINE)?;
    run.wait_until(DEADLINE, "both guests starting afresh", |lines| {
        let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
        (count("[domU0] heartbeat: start") == 2 && count("[domU1] mempattern: filled") == 2).then_some(())
    })?;
    std::thread::sleep(Duration::from_millis(200));
    run.assert_absent(&re(r"resumed|MISMATCH|PANIC"))?;
    Ok(())
}

mod warm_reload {
    use super::*;
    on_both_gics!(reloads);
}

mod corrupted {
    use super::*;
    on_both_gics!(corrupted_handoff);
}
