//! Warm reload: the hypervisor replaces itself (a fresh copy of its image)
//! under running VMs. After every reload the memory-pattern guest verifies
//! all of its RAM, the heartbeat guest's counter continues without a reset,
//! and the hypervisor's generation counts up. A corrupted handoff block is
//! refused and the VMs are cold-booted instead.

use std::time::Duration;

use tests::*;

const RELOADS: u32 = 10;

fn beat(line: &str) -> Option<u64> {
    heartbeat_n("domU0", line)
}

fn pass(line: &str) -> Option<u64> {
    mempattern_pass("domU1", line)
}

fn reloads(gic: u32) -> anyhow::Result<()> {
    let mut run = start_heartbeat_and_pattern(gic, |_| ())?;
    for generation in 1..=RELOADS {
        let (last_beat, last_pass) = (last_value(&run, beat), last_value(&run, pass));
        run.send(b"rejuvenate\r")?;
        run.expect(&re(&format!(r"^\[hv\] rejuvenate: suspending 2 VMs for a warm reload \(generation {generation}\)$")), DEADLINE)?;
        run.expect(&re(r"^\[hv\] 1 secondary CPU\(s\) released from the holding pen$"), DEADLINE)?;
        run.expect(&re(r"^\[hv\] warm entry: handoff block at 0x[0-9a-f]+$"), DEADLINE)?;
        run.expect(&re(r"^\[hv\] vm 1 'domU1': resumed, 64 MiB at 0x[0-9a-f]+, 1 vCPUs$"), DEADLINE)?;
        run.expect(&re(&format!(r"^\[hv\] reload: generation {generation}, 2 VMs resumed; ")), DEADLINE)?;
        // Both guests go on from where they were: same counters, no restart.
        wait_beyond(&mut run, DEADLINE, "heartbeat after the reload", beat, last_beat)?;
        wait_beyond(&mut run, DEADLINE, "a full memory verification after the reload", pass, last_pass)?;
    }
    let lines = run.lines();
    let beats: Vec<u64> = lines.iter().filter_map(|l| beat(l)).collect();
    check!(run, beats.windows(2).all(|w| w[1] == w[0] + 1), "heartbeat counter not continuous: {beats:?}");
    let passes: Vec<u64> = lines.iter().filter_map(|l| pass(l)).collect();
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
    let mut run = start_heartbeat_and_pattern(gic, |_| ())?;
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
