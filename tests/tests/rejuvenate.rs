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
        run.expect(&hv::suspending(2, generation), DEADLINE)?;
        // The block is taken before the secondaries leave the pen (a trial
        // image that refuses it can still hand it back).
        run.expect(&hv::warm_entry(), DEADLINE)?;
        run.expect(&hv::secondaries_released(1), DEADLINE)?;
        run.expect(&hv::vm_resumed_as(1, "domU1", 64, 1), DEADLINE)?;
        run.expect(&hv::reload_report(generation, 2), DEADLINE)?;
        // Both guests go on from where they were: same counters, no restart.
        wait_beyond(
            &mut run,
            DEADLINE,
            "heartbeat after the reload",
            beat,
            last_beat,
        )?;
        wait_beyond(
            &mut run,
            DEADLINE,
            "a full memory verification after the reload",
            pass,
            last_pass,
        )?;
    }
    let lines = run.lines();
    let beats: Vec<u64> = lines.iter().filter_map(|l| beat(l)).collect();
    reload::check_continuous(&run, "heartbeat counter", &beats)?;
    let passes: Vec<u64> = lines.iter().filter_map(|l| pass(l)).collect();
    reload::check_continuous(&run, "mempattern passes", &passes)?;
    guest::check_started_once(&run, &re("heartbeat: start"), "heartbeat")?;
    guest::check_started_once(&run, &re("mempattern: filled"), "mempattern")?;
    reload::check_clean(&run, reload::Since::FirstReload)?;
    run.send(b"status\r")?;
    run.expect(&hv::status_generation(RELOADS), DEADLINE)?;
    Ok(())
}

fn corrupted_handoff(gic: u32) -> anyhow::Result<()> {
    let mut run = start_heartbeat_and_pattern(gic, |_| ())?;
    run.send(b"debug-rejuvenate-corrupt\r")?;
    run.expect(&hv::corrupting_handoff(), DEADLINE)?;
    run.expect(&hv::warm_entry(), DEADLINE)?;
    run.expect(&hv::handoff_refused(".*checksum.*"), DEADLINE)?;
    // Cold-booted from their configuration: both guests start from scratch.
    run.expect(&hv::vm_started(0, "domU0"), DEADLINE)?;
    run.expect(&hv::vm_started(1, "domU1"), DEADLINE)?;
    run.wait_until(DEADLINE, "both guests starting afresh", |lines| {
        let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
        (count("[domU0] heartbeat: start") == 2 && count("[domU1] mempattern: filled") == 2)
            .then_some(())
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
