//! The headline: Linux keeps running across warm reloads of the hypervisor.
//!
//! Linux (2 vCPUs), the heartbeat guest and the memory-pattern guest share
//! two CPUs; the hypervisor reloads itself 20 times. After each reload the
//! pattern guest verifies all of its RAM, the heartbeat continues and the
//! Linux counter service goes on counting. At the end Linux is still the
//! same boot (same boot id, uptime advanced by at least the time counted),
//! and a 16 MiB file written before the reloads reads back identical from
//! the page cache, whose size did not drop. (The guest's root file system
//! is its initramfs, which lives only in the page cache: there is no disk
//! to fall back to, so the content surviving is the page cache surviving.)

use tests::guest::linux_counter_n as counter_n;
use tests::*;

const RELOADS: u32 = 20;

fn pass_n(line: &str) -> Option<u64> {
    mempattern_pass("domU2", line)
}

const LINUX_DEADLINE: std::time::Duration = std::time::Duration::from_secs(240);

/// What the guest's `probe` shell function prints.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    boot_id: String,
    uptime: f64,
    md5: String,
    cached_kb: u64,
}

fn probe_re() -> Regex {
    re(
        r"^\[domU0\] probe: boot_id=([0-9a-f-]{36}) uptime=([0-9.]+) md5=([0-9a-f]{32}) cached_kb=(\d+)$",
    )
}

/// Runs the probe in the Linux shell (input focus must be on VM 0).
fn probe(run: &mut QemuRun) -> anyhow::Result<Probe> {
    let seen = run.find_all(&probe_re()).len();
    run.send(b"probe\r")?;
    let line = run.wait_until(LINUX_DEADLINE, "a probe line", |lines| {
        lines
            .iter()
            .filter(|l| probe_re().is_match(l))
            .nth(seen)
            .cloned()
    })?;
    let c = probe_re().captures(&line).expect("matched");
    Ok(Probe {
        boot_id: c[1].to_string(),
        uptime: c[2].parse()?,
        md5: c[3].to_string(),
        cached_kb: c[4].parse()?,
    })
}

fn linux_across_reloads(gic: u32) -> anyhow::Result<()> {
    xtask::images::require_hypervisor_image()?;
    xtask::linux::require()?;
    require_images(&["heartbeat", "mempattern"])?;
    let mut s = scenario(
        gic,
        [
            VmSpec::linux("domU0").cpus(2),
            VmSpec::guest("domU1", "heartbeat"),
            VmSpec::guest("domU2", "mempattern"),
        ],
    );
    s.mem_mib = 2048;
    let mut run = start(&s)?;
    run.fail_on(re(tests::guest::LINUX_TROUBLE));
    run.expect(
        &re(r"^\[domU0\] init: ready uptime=[0-9.]+ cpus=2$"),
        LINUX_DEADLINE,
    )?;
    wait_all(
        &mut run,
        &[
            re(r"^\[domU0\] counter: 2$"),
            re(r"^\[domU1\] heartbeat: n=2 "),
            re(r"^\[domU2\] mempattern: pass 1: \d+ MiB ok$"),
        ],
    )?;
    // Input goes to VM 0 (Linux) after a cold boot. A 16 MiB file of random
    // bytes on the initramfs root (page cache only), and a probe function.
    run.send(b"dd if=/dev/urandom of=/cachefile bs=1M count=16 2>/dev/null\r")?;
    run.send(
        b"probe() { echo \"probe: boot_id=$(cat /proc/sys/kernel/random/boot_id) uptime=$(cut -d' ' -f1 /proc/uptime) md5=$(md5sum /cachefile | cut -d' ' -f1) cached_kb=$(awk '/^Cached:/ {print $2}' /proc/meminfo)\"; }\r",
    )?;
    let before = probe(&mut run)?;
    let counter_before = last_value(&run, counter_n);
    eprintln!("linux reload GICv{gic}: before {before:?}, counter {counter_before}");

    focus_shell(&mut run, LINUX_DEADLINE)?;
    let mut paused_us = Vec::new();
    for generation in 1..=RELOADS {
        let (counter, beat, pass) = (
            last_value(&run, counter_n),
            heartbeats(&run, "domU1").last().copied().unwrap_or(0),
            last_value(&run, pass_n),
        );
        run.send(b"rejuvenate\r")?;
        let line = run.expect(&hv::reload_report(generation, 3), LINUX_DEADLINE)?;
        paused_us.push(hv::ReloadReport::parse(&line).map_or(0, |r| r.paused_us));
        wait_beyond(
            &mut run,
            LINUX_DEADLINE,
            "the Linux counter after the reload",
            counter_n,
            counter,
        )?;
        run.wait_until(LINUX_DEADLINE, "heartbeat after the reload", |l| {
            l.iter()
                .filter_map(|l| heartbeat_n("domU1", l))
                .find(|&n| n > beat)
        })?;
        wait_beyond(
            &mut run,
            LINUX_DEADLINE,
            "a full memory verification after the reload",
            pass_n,
            pass,
        )?;
    }
    eprintln!("linux reload GICv{gic}: VMs paused per reload (us): {paused_us:?}");

    run.send(b"\x1d0")?;
    run.expect(&hv::input_to_vm(0), LINUX_DEADLINE)?;
    let after = probe(&mut run)?;
    let counter_after = last_value(&run, counter_n);
    eprintln!("linux reload GICv{gic}: after {after:?}, counter {counter_after}");
    check!(
        run,
        after.boot_id == before.boot_id,
        "Linux rebooted: boot id {} -> {}",
        before.boot_id,
        after.boot_id
    );
    check!(
        run,
        after.md5 == before.md5,
        "the cached file changed: {} -> {}",
        before.md5,
        after.md5
    );
    check!(
        run,
        after.cached_kb + 1024 >= before.cached_kb,
        "page cache shrank: {} kB -> {} kB",
        before.cached_kb,
        after.cached_kb
    );
    // The counter service sleeps one second per count, so Linux's clock
    // must have advanced by at least that much: time went on, not back.
    // (Less one: the probes need not fall at the same point of a second.)
    let counted = (counter_after - counter_before) as f64 - 1.0;
    check!(
        run,
        after.uptime >= before.uptime + counted,
        "uptime {} -> {} but the counter advanced {counted}",
        before.uptime,
        after.uptime
    );

    let lines = run.lines();
    let counts: Vec<u64> = lines.iter().filter_map(|l| counter_n(l)).collect();
    if let Err(d) = reload::check_continuity(&counts) {
        // Say where the missing counts went: every Linux line that
        // mentions the counter.
        let mentions: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("[domU0]") && l.contains("counter"))
            .collect();
        anyhow::bail!("Linux counter not continuous: {d}: {counts:?}\nLinux lines mentioning it: {mentions:#?}\n{}", run.report());
    }
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU1"))?;
    let passes: Vec<u64> = lines.iter().filter_map(|l| pass_n(l)).collect();
    reload::check_continuous(&run, "mempattern passes", &passes)?;
    for (what, n) in [
        ("init: ready", 1),
        ("heartbeat: start", 1),
        ("mempattern: filled", 1),
    ] {
        let seen = lines.iter().filter(|l| l.contains(what)).count();
        check!(
            run,
            seen == n,
            "'{what}' seen {seen} times: a guest restarted"
        );
    }
    // From the first reload only: Linux's own boot is not under test here.
    reload::check_clean(&run, reload::Since::FirstReload)?;
    Ok(())
}

#[test]
fn gicv3() -> anyhow::Result<()> {
    linux_across_reloads(3)
}

#[test]
fn counter_lines() {
    assert_eq!(counter_n("[domU0] counter: 5"), Some(5));
    assert_eq!(counter_n("[domU0] / # \x1b[6ncounter: 5"), Some(5));
    assert_eq!(counter_n("[domU1] counter: 5"), None);
    assert_eq!(counter_n("[domU0] echo counter: 5"), None);
}
