//! `cargo xtask bench reload`: a warm reload's blackout as the guest sees
//! it against a cold reboot of the machine, for guest RAM of 64 MiB .. 2 GiB
//! on QEMU `virt`, and 64 .. 512 MiB on QEMU `raspi4b` (`--board`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use regex::Regex;

use super::log_line_chart;
use crate::machine::{raspi4b, Machine};
use crate::{images, QemuRun, Scenario, VmSpec};

/// Guest RAM sizes of `bench reload`, MiB. The test guests map guest RAM
/// 0x4000_0000..0xC000_0000 (guests/src/rt/boot.rs), so 2 GiB is the most a
/// heartbeat guest can have.
const RELOAD_RAM_MIB: [u64; 4] = [64, 256, 1024, 2048];
/// Guest RAM sizes on `raspi4b`, MiB. The model has 2 GiB, but its tree
/// gives the ARM only 0..960 MiB (the rest is the VideoCore's), of which
/// the hypervisor keeps 64 MiB and the device tree and modules sit at
/// 128 MiB; with Linux's 256 MiB beside it, 512 MiB is the largest
/// power of two the heartbeat guest still gets.
const RPI4_RAM_MIB: [u64; 3] = [64, 256, 512];
/// Machine CPUs: 1 (the reload path alone) and 2 (plus the hand-shakes with
/// a secondary CPU: park, PSCI CPU_OFF, CPU_ON).
const RELOAD_CPUS: [u32; 2] = [1, 2];
/// Warm reloads per configuration (the table shows their median).
const RELOADS: usize = 3;
/// Reloads that may be repeated per configuration (see `unattributed`).
const MAX_UNATTRIBUTED: usize = 5;
/// Generous: in icount mode a guest second is a billion TCG instructions.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// One configuration's figures, all in microseconds of counter time unless
/// named otherwise.
struct ReloadResult {
    /// The heartbeat guest's gap that overlaps each reload's pause: the
    /// blackout as the guest sees it.
    blackout_us: Vec<u64>,
    /// The hypervisor's "VMs paused for" figure of each reload.
    paused_us: Vec<u64>,
    /// The hypervisor's phase list of each reload ("a->b N us").
    phases: Vec<String>,
    /// `reboot` command -> new image entered (counter).
    cold_to_entry_us: u64,
    /// `reboot` command -> heartbeat guest's main() running (counter).
    cold_us: u64,
    /// `reboot` command -> Linux at `/init` (its VM's counter offset plus
    /// the uptime /init reports, so slightly early: Linux starts its clock
    /// a little after the VM starts); None in a run without Linux.
    cold_linux_us: Option<u64>,
    /// `reboot` line -> heartbeat start line, host clock, milliseconds.
    cold_host_ms: f64,
    /// Reloads (generations) repeated because the guest's report did not
    /// contain their gap.
    unattributed: Vec<usize>,
}

/// The cold path until the guests are back at work: Linux at /init if it
/// ran, the heartbeat's start otherwise.
fn cold(r: &ReloadResult) -> u64 {
    r.cold_linux_us.unwrap_or(0).max(r.cold_us)
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// (line index, n, max_gap_us, max_gap_ticks, max_gap_end) of the first
/// heartbeat report at or after `from`.
fn heartbeat_after(
    lines: &[String],
    from: usize,
    re: &Regex,
) -> Option<(usize, u64, u64, u64, u64)> {
    lines[from..].iter().enumerate().find_map(|(i, l)| {
        let c = re.captures(l)?;
        Some((
            from + i,
            c[1].parse().ok()?,
            c[2].parse().ok()?,
            c[3].parse().ok()?,
            c[4].parse().ok()?,
        ))
    })
}

/// Timing modes measured with `cpus` CPUs: icount (true) and wall-clock.
/// With 2 CPUs only wall-clock: under `-icount` QEMU runs the CPUs round
/// robin, and Linux on one CPU next to the CPU-bound heartbeat guest on the
/// other stops early in its boot (after "efi: UEFI not found"; it boots
/// with 2 CPUs in wall-clock mode and alone under icount). Not understood
/// yet, so not measured rather than measured wrong.
fn reload_modes(cpus: u32) -> impl Iterator<Item = bool> {
    [true, false]
        .into_iter()
        .filter(move |&icount| cpus == 1 || !icount)
}

/// RAM of the Linux VM next to the heartbeat guest (fixed: the RAM sizes
/// compared are the heartbeat guest's).
const RELOAD_LINUX_MIB: u64 = 256;

/// The machines of `bench reload --board`: `virt`, `rpi4` or `all` (both,
/// and a table of their blackouts side by side).
pub fn boards(board: &str) -> Result<Vec<Machine>> {
    Ok(match board {
        "virt" | "qemu-virt" => vec![Machine::Virt],
        "rpi4" => vec![Machine::Raspi4b],
        "all" => Machine::ALL.to_vec(),
        other => bail!("unknown board {other:?} (virt, rpi4 or all)"),
    })
}

/// One configuration to measure on a machine: CPUs, icount, guest RAM,
/// and whether Linux runs beside the heartbeat guest.
struct Config {
    machine: Machine,
    cpus: u32,
    icount: bool,
    rams: Vec<u64>,
    linux: bool,
}

/// What `bench reload` measures on `machine`. On `raspi4b` the model fixes
/// 4 CPUs, so there is no 1-CPU run, and under icount the heartbeat guest
/// runs alone: Linux on a CPU of its own beside the CPU-bound heartbeat
/// crawls there as on `virt` with 2 CPUs (see [`reload_modes`]; still in
/// its first 0.0 s of boot after two minutes), so the icount cold figure is
/// the heartbeat's and Linux's cold boot is measured in wall-clock mode.
fn configs(machine: Machine, quick: bool) -> Vec<Config> {
    match machine {
        Machine::Virt => {
            let cpu_list: &[u32] = if quick {
                &RELOAD_CPUS[..1]
            } else {
                &RELOAD_CPUS
            };
            let rams: Vec<u64> = if quick {
                vec![RELOAD_RAM_MIB[0], RELOAD_RAM_MIB[3]]
            } else {
                RELOAD_RAM_MIB.to_vec()
            };
            cpu_list
                .iter()
                .flat_map(|&cpus| {
                    let rams = rams.clone();
                    reload_modes(cpus).map(move |icount| Config {
                        machine,
                        cpus,
                        icount,
                        rams: rams.clone(),
                        linux: true,
                    })
                })
                .collect()
        }
        Machine::Raspi4b => {
            let rams: Vec<u64> = if quick {
                vec![RPI4_RAM_MIB[0], RPI4_RAM_MIB[2]]
            } else {
                RPI4_RAM_MIB.to_vec()
            };
            [true, false]
                .into_iter()
                .map(|icount| Config {
                    machine,
                    cpus: raspi4b::CPUS,
                    icount,
                    rams: rams.clone(),
                    linux: !icount,
                })
                .collect()
        }
    }
}

/// Short name of a machine in the tables.
fn machine_name(machine: Machine) -> &'static str {
    match machine {
        Machine::Virt => "virt",
        Machine::Raspi4b => "raspi4b",
    }
}

fn reload_run(c: &Config, ram_mib: u64) -> Result<ReloadResult> {
    let (machine, cpus, icount) = (c.machine, c.cpus, c.icount);
    let mode = if icount { "icount" } else { "wall-clock" };
    // virt: GICv3. With 2 CPUs the reload also parks a secondary in the
    // holding pen, as on a real machine; with 1 it shows the path's own
    // cost. Machine RAM leaves room for the hypervisor region and the
    // modules below the VMs. raspi4b: GICv2, 4 CPUs and 2 GiB, all fixed.
    // Linux (1 vCPU) runs beside the heartbeat guest, so that the cold
    // reboot is measured until the guests are back at work: the heartbeat
    // counting and Linux at /init.
    let mut s = match machine {
        Machine::Virt => {
            let mut s = Scenario::new(3).smp(cpus);
            s.mem_mib = ram_mib + RELOAD_LINUX_MIB + 1024;
            s
        }
        Machine::Raspi4b => Scenario::raspi4b(),
    }
    .vm(VmSpec::guest("domU0", "heartbeat").mem_mib(ram_mib));
    if c.linux {
        s = s.vm(VmSpec::linux("domU1").cpus(1).mem_mib(RELOAD_LINUX_MIB));
    }
    let vms = if c.linux { 2 } else { 1 };
    s.icount = icount;
    let mut run = QemuRun::start(&s)?;
    run.fail_on(Regex::new(r"FATAL|PANIC|\] ERROR|Kernel panic")?);
    let beat = Regex::new(
        r"^\[domU0\] heartbeat: n=(\d+) count=\d+ max_gap_us=(\d+) max_gap_ticks=(\d+) max_gap_end=(\d+)$",
    )?;
    // The first boot is cold: its line gives the heartbeat VM's counter
    // offset, to place the guest's largest gap on the system counter.
    // The Linux VM's offset, if there is one, is the third capture.
    let cold_line = Regex::new(
        r"cold boot: image entered at counter (\d+), VMs started at counter \d+, counter offsets \[(\d+)(?:, (\d+))?\]$",
    )?;
    let l = run.expect(&cold_line, RELOAD_TIMEOUT)?;
    let beat_cntvoff: u64 = cold_line.captures(&l).context("cold boot line")?[2].parse()?;
    let linux_ready = Regex::new(r"^\[domU1\] init: ready uptime=([0-9.]+) ")?;
    // Both, in whichever order they come.
    let beat2 = Regex::new(r"^\[domU0\] heartbeat: n=2 ")?;
    run.wait_until(
        RELOAD_TIMEOUT,
        "Linux at /init and the heartbeat counting",
        |lines| {
            ((!c.linux || lines.iter().any(|l| linux_ready.is_match(l)))
                && lines.iter().any(|l| beat2.is_match(l)))
            .then_some(())
        },
    )
    .with_context(|| format!("the {ram_mib} MiB heartbeat guest (and Linux at /init) ({mode})"))?;
    run.send(b"\x1dh")?;
    run.expect(
        "console input now goes to the hypervisor shell",
        RELOAD_TIMEOUT,
    )?;
    let long_gaps = Regex::new(r"^\[domU0\] heartbeat: long gaps \(ticks@end\):((?: \d+@\d+)+)$")?;
    let paused_line =
        Regex::new(r"^\[hv\] reload: VMs paused from counter (\d+) to counter (\d+)$")?;
    // The counter frequency, as the heartbeat guest read it at its start.
    let start_line = Regex::new(r"^\[domU0\] heartbeat: start cntfrq=(\d+) counter=(\d+)$")?;
    let freq: u64 = run
        .lines()
        .iter()
        .find_map(|l| start_line.captures(l).and_then(|c| c[1].parse().ok()))
        .context("no heartbeat start line with the counter frequency")?;
    let reload_line = Regex::new(&format!(
        r"^\[hv\] reload: generation (\d+), {vms} VMs resumed; request to resume \d+ us, VMs paused for (\d+) us;(.*)$"
    ))?;
    let mut r = ReloadResult {
        blackout_us: Vec::new(),
        paused_us: Vec::new(),
        phases: Vec::new(),
        cold_to_entry_us: 0,
        cold_us: 0,
        cold_linux_us: None,
        cold_host_ms: 0.0,
        unattributed: Vec::new(),
    };
    // A reload whose gap the guest's report does not contain (the guest was
    // descheduled for a busy neighbour around it, and longer gaps filled
    // its list) is repeated, up to this many times in all.
    let mut generation = 0;
    while r.blackout_us.len() < RELOADS {
        generation += 1;
        if generation > RELOADS + MAX_UNATTRIBUTED {
            bail!("{ram_mib} MiB ({mode}): {} of {} reloads could not be lined up with a gap of the heartbeat guest", r.unattributed.len(), generation - 1);
        }
        run.send(b"rejuvenate\r")?;
        let l = run.expect(&reload_line, RELOAD_TIMEOUT).with_context(|| {
            format!("reload {generation} with {ram_mib} MiB ({mode}) did not finish")
        })?;
        let c = reload_line.captures(&l).context("reload line")?;
        if c[1].parse::<usize>()? != generation {
            bail!("expected generation {generation}: {l}");
        }
        let paused_us: u64 = c[2].parse()?;
        let phases = c[3].trim().to_string();
        let l = run.expect(&paused_line, RELOAD_TIMEOUT)?;
        let c = paused_line.captures(&l).context("paused line")?;
        let (quiesced, resumed): (u64, u64) = (c[1].parse()?, c[2].parse()?);
        // The first report after the resume normally covers the interval
        // that contains the blackout; the guest's long gaps of that
        // interval follow it on the next line. A report the guest was in
        // the middle of printing when the reload came is completed after
        // the resume (its partial line travels in the handoff block) and
        // covers the interval before: then the next report is the one.
        let mut from = run.cursor();
        let mut found = None;
        let mut last_gaps_line = String::new();
        for _ in 0..2 {
            let (beat_at, _, max_gap_us, _, _) =
                run.wait_until(RELOAD_TIMEOUT, "a heartbeat after the reload", |lines| {
                    heartbeat_after(lines, from, &beat)
                })?;
            let gaps_at = run.wait_until(
                RELOAD_TIMEOUT,
                "the heartbeat's line after its report",
                |lines| {
                    lines[beat_at + 1..]
                        .iter()
                        .position(|l| l.starts_with("[domU0] heartbeat: "))
                        .map(|i| beat_at + 1 + i)
                },
            )?;
            let gaps_line = run.lines()[gaps_at].clone();
            from = gaps_at + 1;
            let gaps: Vec<(u64, u64)> = match long_gaps.captures(&gaps_line) {
                Some(c) => c[1]
                    .split_whitespace()
                    .filter_map(|g| g.split_once('@'))
                    .map(|(t, e)| Ok((t.parse()?, e.parse()?)))
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            };
            // The reload's gap is the one that overlaps the pause on the
            // system counter (guest counter + its VM's offset); others are
            // the guest's ordinary pauses, e.g. Linux running on the shared
            // CPU.
            found = gaps
                .iter()
                .map(|&(t, e)| (t, beat_cntvoff + e))
                .find(|&(t, end)| end >= quiesced && end.saturating_sub(t) <= resumed)
                .map(|g| (g, max_gap_us));
            last_gaps_line = gaps_line;
            if found.is_some() {
                break;
            }
        }
        let us = |a: u64, b: u64| (b as i64 - a as i64) * 1_000_000 / freq as i64;
        let Some(((ticks, end), max_gap_us)) = found else {
            eprintln!("bench reload: reload {generation} ({ram_mib} MiB, {mode}): no gap of the heartbeat guest in its next two reports overlaps the pause (counter {quiesced}..{resumed}), repeating: {last_gaps_line}");
            r.unattributed.push(generation);
            continue;
        };
        r.paused_us.push(paused_us);
        r.blackout_us.push(ticks * 1_000_000 / freq);
        // Where the guest's gap lies against the pause: how much of it is
        // before all vCPUs stopped and after they were let go again.
        r.phases.push(format!(
            "{phases}; guest gap from {} us before quiesced to {} us after resumed (largest gap that second {max_gap_us} us)",
            us(end - ticks, quiesced),
            us(resumed, end)
        ));
    }
    // Cold baseline. The system counter keeps running across the reset
    // (QEMU's virtual clock is not reset), so counter values of the old and
    // the new boot can be subtracted.
    run.send(b"reboot\r")?;
    let reboot_line =
        Regex::new(r"^\[hv\] reboot: resetting the machine \(cold reboot\) at counter (\d+)$")?;
    let l = run.expect(&reboot_line, RELOAD_TIMEOUT)?;
    let t_host = std::time::Instant::now();
    let t_reboot: u64 = reboot_line.captures(&l).context("reboot line")?[1].parse()?;
    let l = run
        .expect(&cold_line, RELOAD_TIMEOUT)
        .context("the machine did not boot again after `reboot`")?;
    let caps = cold_line.captures(&l).context("cold boot line")?;
    let (t_entry, cntvoff): (u64, u64) = (caps[1].parse()?, caps[2].parse()?);
    let cntvoff_linux: Option<u64> = caps.get(3).map(|m| m.as_str().parse()).transpose()?;
    let l = run.expect(&start_line, RELOAD_TIMEOUT)?;
    r.cold_host_ms = t_host.elapsed().as_secs_f64() * 1e3;
    let caps = start_line.captures(&l).context("heartbeat start line")?;
    let (freq, guest_start): (u64, u64) = (caps[1].parse()?, caps[2].parse()?);
    if t_entry < t_reboot {
        bail!("the system counter went back across the reset ({t_reboot} -> {t_entry}): the cold path cannot be measured in counter time");
    }
    let us = |ticks: u64| ticks * 1_000_000 / freq.max(1);
    r.cold_to_entry_us = us(t_entry - t_reboot);
    // The guest's virtual counter is the system counter minus its VM's
    // offset, so offset + its counter at the start line is when the guest
    // reached its workload, in system-counter time.
    r.cold_us = us(cntvoff + guest_start - t_reboot);
    // The guests are back at work once the heartbeat reports again and
    // Linux is at /init, in whichever order.
    let from = run.cursor();
    let beat1 = Regex::new(r"^\[domU0\] heartbeat: n=1 ")?;
    let Some(cntvoff_linux) = cntvoff_linux else {
        return Ok(r);
    };
    let l = run
        .wait_until(
            RELOAD_TIMEOUT,
            "the heartbeat and Linux back after the cold reboot",
            |lines| {
                let ready = lines[from..].iter().find(|l| linux_ready.is_match(l))?;
                lines[from..]
                    .iter()
                    .any(|l| beat1.is_match(l))
                    .then(|| ready.clone())
            },
        )
        .context("the guests did not come back after the cold reboot")?;
    let uptime: f64 = linux_ready.captures(&l).context("ready line")?[1].parse()?;
    r.cold_linux_us = Some(us(cntvoff_linux - t_reboot) + (uptime * 1e6) as u64);
    Ok(r)
}

/// Warm reload against cold reboot on each of `machines`: on `virt` for
/// guest RAM of 64 MiB .. 2 GiB, on 1 and 2 CPUs, in icount and wall-clock
/// mode; on `raspi4b` for 64 .. 512 MiB on its 4 CPUs, in both modes.
/// `quick`: on `virt` only 1 CPU, and everywhere only the smallest and
/// largest RAM (for working on the reload path). With both machines a
/// last table puts their blackouts side by side.
pub fn reload(quick: bool, machines: &[Machine]) -> Result<()> {
    let configs: Vec<Config> = machines.iter().flat_map(|&m| configs(m, quick)).collect();
    images::require_hypervisor_image()?;
    images::require_guest_image("heartbeat")?;
    crate::linux::require()?;
    if machines.contains(&Machine::Raspi4b) {
        crate::rpi4_dtb::prepare(false).context("fetching the Raspberry Pi 4 device tree")?;
    }
    type Key = (&'static str, u32, bool, u64);
    let mut results: BTreeMap<Key, ReloadResult> = BTreeMap::new();
    for c in &configs {
        let name = machine_name(c.machine);
        for &ram in &c.rams {
            let mode = if c.icount { "icount" } else { "wall-clock" };
            eprintln!(
                "bench reload: {name}, {} CPUs, {ram} MiB guest, {mode} ...",
                c.cpus
            );
            let r = reload_run(c, ram)?;
            eprintln!(
                "bench reload: {name}, {} CPUs, {ram} MiB {mode}: blackouts {:?} us, paused {:?} us, cold {} us (heartbeat), {:?} us (Linux /init)",
                c.cpus, r.blackout_us, r.paused_us, r.cold_us, r.cold_linux_us
            );
            results.insert((name, c.cpus, c.icount, ram), r);
        }
    }
    let mut t = String::new();
    writeln!(t, "\nWarm reload (rejuvenate) vs cold reboot: heartbeat guest (RAM as listed) + Linux ({RELOAD_LINUX_MIB} MiB, 1 vCPU), {RELOADS} reloads each")?;
    writeln!(t, "  blackout  the heartbeat guest's gap (its virtual counter not advancing) that overlaps the pause (median of {RELOADS}):")?;
    writeln!(
        t,
        "            the time the guest did not run, as the guest itself sees it"
    )?;
    writeln!(
        t,
        "  paused    the hypervisor's own figure, all vCPUs stopped -> VMs resumed (median)"
    )?;
    writeln!(t, "  cold      `reboot` (PSCI SYSTEM_RESET; raspi4b: the PM watchdog) -> heartbeat guest's main() running again, in")?;
    writeln!(t, "            system-counter time, which runs on across the reset: VM's counter offset + guest's counter at its")?;
    writeln!(
        t,
        "            start line - counter at `reboot`; reset->entry is the part until the new hypervisor image runs"
    )?;
    writeln!(t, "  cold→init `reboot` -> Linux at /init (its VM's counter offset + the uptime /init prints); the guests are")?;
    writeln!(
        t,
        "            back at work only then, so cold÷warm uses this figure"
    )?;
    writeln!(t, "  cold host host clock between the `reboot` line and the guest's start line as read by xtask")?;
    writeln!(t, "  icount: -icount shift=0, 1 us of counter time = 1000 instructions, deterministic; wall: TCG, noisy")?;
    if machines.contains(&Machine::Raspi4b) {
        writeln!(t, "  raspi4b: GICv2, 4 CPUs and 2 GiB fixed by the model; guest RAM at most {} MiB there: the tree gives the ARM", RPI4_RAM_MIB[2])?;
        writeln!(t, "           960 MiB, 64 of them the hypervisor's, the tree and modules at 128 MiB, Linux 256 MiB (not 2 GiB as on virt)")?;
    }
    writeln!(t)?;
    for c in &configs {
        let name = machine_name(c.machine);
        let cpus = c.cpus;
        let icount = c.icount;
        let rams = &c.rams;
        let mode = if icount {
            "icount (us of guest time = 1000 insns)"
        } else {
            "wall-clock (us)"
        };
        let gic = match c.machine {
            Machine::Virt => "GICv3",
            Machine::Raspi4b => "GIC-400 (GICv2)",
        };
        let alone = if c.linux {
            ""
        } else {
            ", heartbeat guest alone (no Linux: cold is the heartbeat's)"
        };
        writeln!(t, "{name}, {gic}, {cpus} CPU(s), {mode}{alone}")?;
        writeln!(
            t,
            "{:>8} {:>12} {:>10} {:>14} {:>12} {:>14} {:>12} {:>12}",
            "RAM",
            "blackout us",
            "paused us",
            "reset->entry",
            "cold us",
            "cold→init us",
            "cold÷warm",
            "cold host ms"
        )?;
        for &ram in rams {
            let r = &results[&(name, cpus, icount, ram)];
            let warm = median(&r.blackout_us);
            writeln!(
                t,
                "{:>8} {:>12} {:>10} {:>14} {:>12} {:>14} {:>12.1} {:>12.0}",
                format!("{ram} MiB"),
                warm,
                median(&r.paused_us),
                r.cold_to_entry_us,
                r.cold_us,
                r.cold_linux_us.map_or("-".to_string(), |v| v.to_string()),
                cold(r) as f64 / warm.max(1) as f64,
                r.cold_host_ms
            )?;
        }
        let b = |ram| median(&results[&(name, cpus, icount, ram)].blackout_us).max(1) as f64;
        let (lo, hi) = (rams[0], rams[rams.len() - 1]);
        writeln!(t, "blackout {hi} MiB ÷ {lo} MiB: {:.2}", b(hi) / b(lo))?;
        writeln!(t, "phases of each reload (hypervisor timestamps):")?;
        for &ram in rams {
            let r = &results[&(name, cpus, icount, ram)];
            for (i, p) in r.phases.iter().enumerate() {
                writeln!(t, "  {ram:>4} MiB #{}: {p}", i + 1)?;
            }
            if !r.unattributed.is_empty() {
                writeln!(t, "  {ram:>4} MiB: reloads {:?} repeated: the guest's report held no gap overlapping the pause", r.unattributed)?;
            }
        }
        writeln!(t)?;
    }
    if machines.len() > 1 {
        side_by_side(&mut t, &configs, &results)?;
    }
    print!("{t}");
    let dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    // Named by board, so that a raspi4b run does not overwrite virt's.
    let txt = dir.join(match machines {
        [Machine::Virt] => "reload.txt".to_string(),
        [m] => format!("reload-{}.txt", machine_name(*m)),
        _ => "reload-all.txt".to_string(),
    });
    std::fs::write(&txt, &t)?;
    if quick || !machines.contains(&Machine::Virt) {
        // Not the full set of virt's series: no plot.
        println!(
            "wrote {} (no plot: the plot is of a full virt run)",
            txt.display()
        );
        return Ok(());
    }
    let xs: Vec<String> = RELOAD_RAM_MIB
        .iter()
        .map(|m| {
            if *m >= 1024 {
                format!("{} GiB", m / 1024)
            } else {
                format!("{m} MiB")
            }
        })
        .collect();
    let series = |cpus: u32, icount: bool, cold_series: bool| -> Vec<f64> {
        RELOAD_RAM_MIB
            .iter()
            .map(|ram| {
                let r = &results[&("virt", cpus, icount, *ram)];
                (if cold_series {
                    cold(r)
                } else {
                    median(&r.blackout_us)
                }) as f64
            })
            .collect()
    };
    let svg = log_line_chart(
        "Guest blackout: warm reload vs cold reboot (us, log scale)",
        &xs,
        &[
            (
                "cold, 1 CPU, icount".into(),
                "#b03a2e",
                series(1, true, true),
            ),
            (
                "cold, 1 CPU, wall".into(),
                "#e59866",
                series(1, false, true),
            ),
            (
                "warm, 1 CPU, icount".into(),
                "#1f618d",
                series(1, true, false),
            ),
            (
                "warm, 1 CPU, wall".into(),
                "#7fb3d5",
                series(1, false, false),
            ),
            (
                "warm, 2 CPUs, wall".into(),
                "#82e0aa",
                series(2, false, false),
            ),
        ],
    );
    let path = dir.join("reload.svg");
    std::fs::write(&path, svg)?;
    println!("wrote {} and {}", txt.display(), path.display());
    Ok(())
}

/// The blackouts of every machine side by side: one row per RAM size, one
/// column per machine, CPU count and mode ("-" where not measured).
fn side_by_side(
    t: &mut String,
    configs: &[Config],
    results: &BTreeMap<(&'static str, u32, bool, u64), ReloadResult>,
) -> Result<()> {
    let mut rams: Vec<u64> = configs.iter().flat_map(|c| c.rams.clone()).collect();
    rams.sort_unstable();
    rams.dedup();
    let column = |c: &Config| {
        format!(
            "{} {}CPU {}",
            machine_name(c.machine),
            c.cpus,
            if c.icount { "icount" } else { "wall" }
        )
    };
    writeln!(t, "the machines side by side: blackout / cold (us, median blackout; cold until Linux at /init, or the heartbeat's")?;
    writeln!(t, "start where Linux did not run)")?;
    write!(t, "{:>8}", "RAM")?;
    for c in configs {
        write!(t, " {:>32}", column(c))?;
    }
    writeln!(t)?;
    for ram in rams {
        write!(t, "{:>8}", format!("{ram} MiB"))?;
        for c in configs {
            let cell = match results.get(&(machine_name(c.machine), c.cpus, c.icount, ram)) {
                Some(r) => format!("{} / {}", median(&r.blackout_us), cold(r)),
                None => "-".to_string(),
            };
            write!(t, " {cell:>32}")?;
        }
        writeln!(t)?;
    }
    writeln!(t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(super::median(&[5, 1, 3]), 3);
        assert_eq!(super::median(&[4, 1]), 4);
        assert_eq!(super::median(&[]), 0);
    }
}
