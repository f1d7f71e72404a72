//! `cargo xtask bench linux`: what running under blink costs an unmodified
//! Linux guest, in one run:
//!
//! 1. Time to `/init`: the same kernel, initramfs, command line and device
//!    tree booted bare on QEMU (no EL2: Linux enters at EL1) and as the only
//!    VM under the hypervisor, with the same CPU model, vCPU count and RAM.
//!    Two figures each: Linux's own uptime in its `init: ready` line (its
//!    clock starts when the kernel's timekeeping does, so it is the kernel's
//!    boot alone), and the host's wall time from QEMU's spawn to that line
//!    (which also covers QEMU loading the images and, under blink, the
//!    hypervisor's own boot and the copying of the images into the VM).
//!    Once with `-icount shift=0` (deterministic: a guest second is 10^9
//!    instructions, except that idle time passes at host speed) and
//!    [`WALL_RUNS`] times in wall-clock mode (median).
//! 2. Exits per second by kind under the hypervisor, from the shell's
//!    `exits` command read at both ends of a window, while Linux idles at
//!    its shell and while it spins one busy loop per vCPU.
//!
//! The bare run gets the device tree the hypervisor gives its VMs (built by
//! the same `vmm::guest_fdt`), not QEMU's own: QEMU's describes PCIe, 32
//! virtio-mmio slots, flash, an RTC and GPIO, which Linux would probe bare
//! but never sees under blink. The bootargs QEMU writes into its `/chosen`
//! (`-append`) are the VM's; QEMU replaces the memory node with one of the
//! same size and adds the initrd location.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use regex::Regex;

use super::{hbar_chart, parse_exits, rates, ExitsReading};
use crate::machine::virt;
use crate::qemu::{self, QemuLock};
use crate::{images, linux, QemuCommand, QemuRun, Scenario, SerialMode, VmSpec};

/// The machine: GICv3, the default CPU model of the scenarios.
const GIC: u32 = 3;
const CPU: &str = "cortex-a72";
/// The guest: the demo's Linux VM shape.
const VCPUS: u32 = linux::DEFAULT_CPUS;
const MEM_MIB: u64 = linux::DEFAULT_MEM_MIB;
/// Wall-clock boots of each kind; the table shows the median.
const WALL_RUNS: usize = 3;
/// An icount boot slower than this is not worth the bench's time: the
/// table says it was skipped.
const ICOUNT_LIMIT: Duration = Duration::from_secs(120);
/// Deadline of any wall-clock wait (TCG on a loaded 2-core host).
const DEADLINE: Duration = Duration::from_secs(240);
/// Length of each exit-rate window, host time (the rates use the
/// hypervisor's counter readings, not this).
const WINDOW: Duration = Duration::from_secs(10);
/// What the guest types to become CPU-bound: one busy loop per online CPU,
/// then a marker computed by the shell (so the echo of the typed line does
/// not match it).
const BUSY_COMMAND: &str =
    "for i in $(seq $(nproc)); do (while :; do :; done) & done; echo busy-$((6*7))\r";
const BUSY_MARKER: &str = "busy-42";

/// Time to `/init` of one boot.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BootTime {
    /// Linux's uptime in its `init: ready` line, seconds.
    uptime_s: f64,
    /// Host time from QEMU's spawn to that line, seconds.
    host_s: f64,
    /// Under blink: the system counter when the hypervisor had created the
    /// VM (its `cold boot: ... VMs started at counter` line); the counter
    /// starts at 0 with the machine.
    vms_started: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Host {
    Bare,
    Blink,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The Linux VM, as the hypervisor gets it and as the bare run copies it.
fn linux_vm() -> VmSpec {
    VmSpec::linux("domU0").cpus(VCPUS).mem_mib(MEM_MIB)
}

/// QEMU's arguments for the bare run: the machine without EL2, the VM's
/// CPU count and RAM, `vm`'s kernel, initramfs and bootargs, and `dtb`.
fn bare_args(vm: &VmSpec, dtb: &Path, icount: bool) -> Result<Vec<String>> {
    let path = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .with_context(|| format!("path {} is not UTF-8", p.display()))
    };
    let mut args: Vec<String> = vec![
        "-M".into(),
        virt::machine_option(GIC, false),
        "-cpu".into(),
        CPU.into(),
        "-smp".into(),
        vm.cpus.to_string(),
        "-m".into(),
        format!("{}M", vm.mem_kib / 1024),
        "-display".into(),
        "none".into(),
    ];
    if icount {
        args.extend(["-icount".into(), "shift=0".into()]);
    }
    args.extend(["-kernel".into(), path(&vm.kernel)?]);
    if let Some(rd) = &vm.ramdisk {
        args.extend(["-initrd".into(), path(rd)?]);
    }
    args.extend(["-append".into(), vm.bootargs.clone().unwrap_or_default()]);
    args.extend(["-dtb".into(), path(dtb)?]);
    args.extend(["-serial", "stdio", "-monitor", "none"].map(String::from));
    Ok(args)
}

/// The device tree a VM like `vm` gets from the hypervisor.
fn guest_dtb(vm: &VmSpec) -> Result<Vec<u8>> {
    let params = vmm::guest_fdt::GuestFdtParams {
        ram_base: vmm::layout::RAM_BASE,
        ram_size: vm.mem_kib * 1024,
        vcpus: vm.cpus as usize,
        gic: if GIC == 3 {
            vmm::guest_fdt::GicVersion::V3
        } else {
            vmm::guest_fdt::GicVersion::V2
        },
        bootargs: vm.bootargs.as_deref(),
        initrd: None,
        devices: &[],
    };
    vmm::guest_fdt::build(&params)
        .map_err(|e| anyhow::anyhow!("building the guest device tree: {e:?}"))
}

/// Boots Linux once, bare or under blink, until its `init: ready` line.
/// The QEMU lock is taken before the clock starts, so waiting for another
/// QEMU run is not counted. Returns the run (still going) for more.
fn boot(host: Host, icount: bool, deadline: Duration) -> Result<(BootTime, QemuRun)> {
    let vm = linux_vm();
    let lock = QemuLock::acquire()?;
    let command = match host {
        Host::Bare => {
            let mut c = QemuCommand::bare(qemu::find()?.path, Vec::new())?;
            let dtb = c.workdir().join("guest.dtb");
            std::fs::write(&dtb, guest_dtb(&vm)?)
                .with_context(|| format!("writing {}", dtb.display()))?;
            c.args = bare_args(&vm, &dtb, icount)?;
            c
        }
        Host::Blink => {
            let mut s = Scenario::new(GIC).smp(VCPUS).vm(vm);
            s.cpu = CPU.to_string();
            s.icount = icount;
            s.prepare_locked(SerialMode::Pipe, &lock)?
        }
    };
    let t0 = Instant::now();
    let mut run = QemuRun::spawn_locked(command, lock)?;
    run.fail_on(Regex::new(
        r"Kernel panic|\] Oops|BUG: |Internal error:|FATAL|PANIC|\[hv\] ERROR",
    )?);
    let tag = if host == Host::Bare {
        ""
    } else {
        r"\[domU0\] "
    };
    let ready = Regex::new(&format!(r"^{tag}init: ready uptime=([0-9.]+) cpus=(\d+)$"))?;
    let line = run.expect(&ready, deadline)?;
    let host_s = t0.elapsed().as_secs_f64();
    let c = ready.captures(&line).context("ready line")?;
    if c[2] != *VCPUS.to_string() {
        bail!(
            "Linux came up with {} CPUs, expected {VCPUS}: {line}",
            &c[2]
        );
    }
    let vms_started = match host {
        Host::Bare => None,
        Host::Blink => {
            let started = Regex::new(
                r"cold boot: image entered at counter \d+, VMs started at counter (\d+),",
            )?;
            let line = run
                .find_all(&started)
                .into_iter()
                .next()
                .context("no `cold boot:` line from the hypervisor")?;
            Some(started.captures(&line).context("cold boot line")?[1].parse()?)
        }
    };
    Ok((
        BootTime {
            uptime_s: c[1].parse()?,
            host_s,
            vms_started,
        },
        run,
    ))
}

/// Sends `text` a few bytes at a time: the emulated UART's receive FIFO
/// holds 16 bytes and the console does not queue beyond it.
fn type_slowly(run: &mut QemuRun, text: &str) -> Result<()> {
    for chunk in text.as_bytes().chunks(4) {
        run.send(chunk)?;
        std::thread::sleep(Duration::from_millis(40));
    }
    Ok(())
}

fn read_exits(run: &mut QemuRun) -> Result<ExitsReading> {
    run.send(b"exits\r")?;
    let line = run
        .expect(&Regex::new(r"^\[hv\] exits at counter ")?, DEADLINE)
        .context("the hypervisor did not answer `exits`")?;
    parse_exits(&line).with_context(|| format!("cannot parse the exits line: {line}"))
}

/// Rates over one window, the shell focus already on the hypervisor.
fn window(run: &mut QemuRun) -> Result<(f64, Vec<(String, f64)>)> {
    let a = read_exits(run)?;
    std::thread::sleep(WINDOW);
    let b = read_exits(run)?;
    rates(&a, &b)
}

struct ExitRates {
    /// The system counter's frequency, from the `exits` line.
    freq: u64,
    idle_secs: f64,
    idle: Vec<(String, f64)>,
    busy_secs: f64,
    busy: Vec<(String, f64)>,
}

/// Exit rates with Linux idle at its shell, then with a busy loop per vCPU.
fn exit_rates(run: &mut QemuRun) -> Result<ExitRates> {
    // Let the boot's tail (shell start, the counter service) settle.
    run.expect(&Regex::new(r"^\[domU0\] counter: 3$")?, DEADLINE)?;
    run.send(b"\x1dh")?;
    run.expect("console input now goes to the hypervisor shell", DEADLINE)?;
    eprintln!("bench linux: exits while Linux idles ({WINDOW:?}) ...");
    let freq = read_exits(run)?.freq;
    let (idle_secs, idle) = window(run)?;
    run.send(b"\x1d0")?;
    run.expect("console input now goes to vm 0", DEADLINE)?;
    type_slowly(run, BUSY_COMMAND)?;
    run.expect(
        &Regex::new(&format!(r"^\[domU0\] {BUSY_MARKER}$"))?,
        DEADLINE,
    )
    .context("the busy loops did not start")?;
    run.send(b"\x1dh")?;
    run.expect("console input now goes to the hypervisor shell", DEADLINE)?;
    eprintln!("bench linux: exits while Linux spins a loop per vCPU ({WINDOW:?}) ...");
    let (busy_secs, busy) = window(run)?;
    Ok(ExitRates {
        freq,
        idle_secs,
        idle,
        busy_secs,
        busy,
    })
}

fn ratio(hv: f64, bare: f64) -> f64 {
    if bare > 0.0 {
        hv / bare
    } else {
        f64::NAN
    }
}

/// Runs the benchmark, prints the tables, writes `target/bench/linux.{txt,svg}`.
pub fn run() -> Result<()> {
    images::require_hypervisor_image()?;
    let lx = linux::prepare(false).context("preparing the Linux guest (`cargo xtask linux`)")?;

    // icount: one boot each (deterministic), unless too slow.
    let mut icount: Option<(BootTime, BootTime)> = None;
    let mut icount_note = String::new();
    let mut pair = Vec::new();
    for host in [Host::Bare, Host::Blink] {
        eprintln!("bench linux: icount boot, {host:?} ...");
        let t = Instant::now();
        match boot(host, true, ICOUNT_LIMIT) {
            Ok((b, _run)) => {
                eprintln!(
                    "bench linux: icount {host:?}: uptime {:.2} s, host {:.1} s",
                    b.uptime_s, b.host_s
                );
                pair.push(b);
            }
            Err(e) if t.elapsed() >= ICOUNT_LIMIT => {
                eprintln!("bench linux: icount boot {host:?} took over {ICOUNT_LIMIT:?}; skipping icount mode: {e:#}");
                icount_note = format!(
                    "skipped: a Linux boot with -icount shift=0 ({host:?}) took over {} s",
                    ICOUNT_LIMIT.as_secs()
                );
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if let [bare, hv] = pair[..] {
        icount = Some((bare, hv));
    }

    // Wall clock: interleaved, so that a busy spell of the host hits both.
    let mut bare = Vec::new();
    let mut hv = Vec::new();
    let mut exits = None;
    for i in 0..WALL_RUNS {
        eprintln!(
            "bench linux: wall-clock boot {}/{WALL_RUNS}, bare ...",
            i + 1
        );
        let (b, run) = boot(Host::Bare, false, DEADLINE)?;
        drop(run);
        bare.push(b);
        eprintln!(
            "bench linux: wall-clock boot {}/{WALL_RUNS}, under blink ...",
            i + 1
        );
        let (b, mut run) = boot(Host::Blink, false, DEADLINE)?;
        hv.push(b);
        eprintln!(
            "bench linux: wall-clock {}: bare uptime {:.2} s host {:.2} s; blink uptime {:.2} s host {:.2} s",
            i + 1,
            bare[i].uptime_s,
            bare[i].host_s,
            b.uptime_s,
            b.host_s
        );
        if i + 1 == WALL_RUNS {
            exits = Some(exit_rates(&mut run)?);
        }
    }
    let exits = exits.context("no exit rates measured")?;

    let mut t = String::new();
    writeln!(
        t,
        "\nLinux guest: {} + {}, {VCPUS} vCPUs, {MEM_MIB} MiB, GICv{GIC}, {CPU}",
        lx.kernel_package, lx.busybox_package
    )?;
    writeln!(t, "bare: QEMU virt without EL2, {VCPUS} CPUs, {MEM_MIB} MiB, the VM's device tree and bootargs")?;
    writeln!(
        t,
        "blink: the same as the only VM, machine {VCPUS} CPUs (one per vCPU), 1024 MiB"
    )?;
    writeln!(t, "uptime: Linux's own clock at /init (its kernel's boot alone); host: QEMU spawn -> the /init line\n")?;
    writeln!(t, "Time to /init")?;
    writeln!(
        t,
        "{:<26} {:>10} {:>10} {:>7}   {:>10} {:>10} {:>7}",
        "mode", "uptime bare", "blink", "ratio", "host bare", "blink", "ratio"
    )?;
    let row = |label: &str, b: BootTime, h: BootTime| {
        format!(
            "{:<26} {:>9.2}s {:>9.2}s {:>7.2}   {:>9.2}s {:>9.2}s {:>7.2}",
            label,
            b.uptime_s,
            h.uptime_s,
            ratio(h.uptime_s, b.uptime_s),
            b.host_s,
            h.host_s,
            ratio(h.host_s, b.host_s)
        )
    };
    match icount {
        Some((b, h)) => writeln!(t, "{}", row("icount (1 run)", b, h))?,
        None => writeln!(t, "{:<26} {icount_note}", "icount")?,
    }
    let med =
        |v: &[BootTime], f: fn(&BootTime) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let bm = BootTime {
        uptime_s: med(&bare, |b| b.uptime_s),
        host_s: med(&bare, |b| b.host_s),
        vms_started: None,
    };
    let hm = BootTime {
        uptime_s: med(&hv, |b| b.uptime_s),
        host_s: med(&hv, |b| b.host_s),
        vms_started: None,
    };
    writeln!(
        t,
        "{}",
        row(&format!("wall-clock (median of {WALL_RUNS})"), bm, hm)
    )?;
    let all = |v: &[BootTime]| {
        v.iter()
            .map(|b| format!("{:.2}/{:.2}", b.uptime_s, b.host_s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        t,
        "  wall-clock runs (uptime/host s): bare {}; blink {}",
        all(&bare),
        all(&hv)
    )?;
    // Same CPU model in every run, so the same counter frequency.
    let ms =
        |ticks: Option<u64>| ticks.map_or(f64::NAN, |t| t as f64 * 1e3 / exits.freq.max(1) as f64);
    let started_wall = median(&hv.iter().map(|b| ms(b.vms_started)).collect::<Vec<_>>());
    let started_icount = icount.map_or(String::from("-"), |(_, h)| {
        format!("{:.0} ms", ms(h.vms_started))
    });
    writeln!(
        t,
        "  blink: machine start -> VM created (hypervisor boot, images copied; counter time): icount {started_icount}, wall-clock {started_wall:.0} ms (median)"
    )?;

    writeln!(
        t,
        "\nExits per second under blink (wall-clock; windows of {:.1} s idle and {:.1} s busy, counter time)",
        exits.idle_secs, exits.busy_secs
    )?;
    writeln!(t, "idle: Linux at its shell (its /init prints a line a second); busy: one `while :; do :; done` per vCPU")?;
    writeln!(t, "pirq_*: physical interrupts the hypervisor took, also while waiting at EL2 (not exits themselves)\n")?;
    writeln!(t, "{:<18} {:>12} {:>12}", "kind", "idle /s", "busy /s")?;
    let busy: BTreeMap<&str, f64> = exits.busy.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut bars = Vec::new();
    let mut zero = Vec::new();
    for (name, idle) in &exits.idle {
        let b = busy.get(name.as_str()).copied().unwrap_or(0.0);
        if *idle == 0.0 && b == 0.0 {
            zero.push(name.as_str());
            continue;
        }
        writeln!(t, "{:<18} {:>12.1} {:>12.1}", name, idle, b)?;
        if name != "total" {
            bars.push((name.clone(), *idle, b));
        }
    }
    if !zero.is_empty() {
        writeln!(t, "0 in both: {}", zero.join(", "))?;
    }
    print!("{t}");
    let dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("linux.txt"), &t)?;
    let svg = hbar_chart(
        "Linux under blink: exits and physical interrupts per second",
        ("idle", "busy loop per vCPU"),
        &bars,
    );
    let path = dir.join("linux.svg");
    std::fs::write(&path, svg)?;
    println!(
        "\nwrote {} and {}",
        dir.join("linux.txt").display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_run_copies_the_vm() {
        let vm = linux_vm();
        let args = bare_args(&vm, Path::new("/tmp/g.dtb"), false).unwrap();
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].as_str())
        };
        assert_eq!(
            after("-M"),
            Some("virt,gic-version=3"),
            "no virtualization=on: Linux enters at EL1"
        );
        assert_eq!(after("-smp"), Some(&*VCPUS.to_string()));
        assert_eq!(after("-m"), Some(&*format!("{MEM_MIB}M")));
        assert_eq!(after("-cpu"), Some(CPU));
        assert_eq!(after("-append"), vm.bootargs.as_deref());
        assert_eq!(after("-kernel"), vm.kernel.to_str());
        assert_eq!(
            after("-initrd"),
            vm.ramdisk.as_deref().and_then(Path::to_str)
        );
        assert_eq!(after("-dtb"), Some("/tmp/g.dtb"));
        assert!(!args.iter().any(|a| a == "-icount"));
        let args = bare_args(&vm, Path::new("/tmp/g.dtb"), true).unwrap();
        assert!(args
            .windows(2)
            .any(|w| w[0] == "-icount" && w[1] == "shift=0"));
    }

    #[test]
    fn bare_device_tree_is_the_vms() {
        let vm = linux_vm();
        let blob = guest_dtb(&vm).unwrap();
        let fdt = fdt::Fdt::new_unaligned(&blob).unwrap();
        let root = fdt.root();
        let raw = |path: &str, name: &str| {
            root.find_node(path)
                .and_then(|n| n.raw_property(name))
                .map(|p| p.value.to_vec())
        };
        assert!(root
            .find_node(&format!("/cpus/cpu@{}", VCPUS - 1))
            .is_some());
        assert!(root.find_node(&format!("/cpus/cpu@{VCPUS}")).is_none());
        let bootargs = raw("/chosen", "bootargs").unwrap();
        assert_eq!(
            std::str::from_utf8(&bootargs)
                .unwrap()
                .trim_end_matches('\0'),
            vm.bootargs.unwrap()
        );
        let reg = raw("/memory@40000000", "reg").unwrap();
        assert_eq!(reg[8..16], (MEM_MIB << 20).to_be_bytes());
        assert_eq!(raw("/intc@8000000", "compatible").unwrap(), b"arm,gic-v3\0");
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }
}
