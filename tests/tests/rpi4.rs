//! The Raspberry Pi 4 on QEMU `raspi4b` (GIC-400, 4 Cortex-A72, spin table,
//! no PSCI), booted with Debian's `bcm2711-rpi-4-b.dtb` and the very
//! `hypervisor.bin` the `virt` tests boot: the banner names the board and
//! its 4 CPUs, CPUs 1-3 come up through the spin table, the counter rate
//! is read from CNTFRQ (the guest sees the same), a test VM runs with its
//! console, the copy staged for warm reloads is byte for byte the loaded
//! image, and warm reloads park the secondaries in the holding pen.
//!
//! Needs `cargo xtask build` and the Pi's device tree (`cargo xtask linux`
//! fetches it into target/linux/).

use tests::*;
use xtask::machine::{raspi4b, Machine};

/// A `raspi4b` scenario with these VMs.
fn pi(vms: impl IntoIterator<Item = VmSpec>) -> Scenario {
    let mut s = Scenario::raspi4b();
    s.vms.extend(vms);
    s
}

/// This build's version, as the banner and the slot headers say it.
fn version() -> String {
    format!("blink {}", env!("CARGO_PKG_VERSION"))
}

fn require_dtb() -> anyhow::Result<()> {
    xtask::rpi4_dtb::require()?;
    Ok(())
}

/// `[hv] cpu <n> (MPIDR 0x<m>) released from the spin table at 0x<a>`.
fn spin_released(cpu: u32, release_addr: u64) -> Regex {
    re(&format!(
        r"^\[hv\] cpu {cpu} \(MPIDR 0x[0-9a-f]+\) released from the spin table at 0x{release_addr:x}$"
    ))
}

/// `[hv] image at 0x<addr>, timer <hz> Hz (CNTFRQ_EL0)` (capture 1 = Hz).
fn timer_line(image_at: u64) -> Regex {
    re(&format!(
        r"^\[hv\] image at 0x{image_at:x}, timer (\d+) Hz \(CNTFRQ_EL0\)$"
    ))
}

/// Slot 0's `images` line holds the running image with the loaded file's
/// length and CRC-32: the staged copy (relocations undone) is the file.
fn check_staged_copy_is_the_file(run: &mut QemuRun, board: &str) -> anyhow::Result<()> {
    let file = std::fs::read(xtask::images::hypervisor_image())?;
    let crc = vmm::crc32::hash(&file);
    run.send(b"images\r")?;
    let line = run.expect(
        &hv::image_slot(0, &version(), board, hv::SlotRole::Running),
        DEADLINE,
    )?;
    let want = format!("'{}', {} bytes, ", version(), file.len());
    check!(
        run,
        line.contains(&want) && line.contains(&format!("checksum {crc:#010x} ok")),
        "slot 0 should hold {} bytes with CRC {crc:#010x} (hypervisor.bin): {line}",
        file.len()
    );
    Ok(())
}

#[test]
fn boots_with_four_cpus_through_the_spin_table() -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    require_dtb()?;
    let mut run = start(&pi([VmSpec::guest("domU0", "heartbeat")]))?;
    let line = run.expect(&hv::Banner::pattern(), DEADLINE)?;
    let banner = hv::Banner::parse(&line).expect("expect returned a matching line");
    check!(
        run,
        banner.board == "rpi4" && banner.ncpus == 4 && banner.gic == 2,
        "expected 'on rpi4: EL2, 4 CPUs, GICv2': {line}"
    );
    let timer = run.expect(&timer_line(raspi4b::LOAD_ADDRESS), DEADLINE)?;
    let hz: u64 = timer_line(raspi4b::LOAD_ADDRESS).captures(&timer).unwrap()[1].parse()?;
    check!(run, hz > 0, "CNTFRQ_EL0 reads 0: {timer}");
    // The Pi's tree: cpu-release-addr 0xd8 + 8n.
    for cpu in 1..=3u32 {
        run.expect(&spin_released(cpu, 0xd8 + 8 * cpu as u64), DEADLINE)?;
    }
    wait_all(&mut run, &[1, 2, 3].map(hv::cpu_online))?;
    run.expect(&started("domU0"), DEADLINE)?;
    // The guest reads the same counter rate through its own CNTFRQ_EL0.
    run.expect(
        &re(&format!(r"^\[domU0\] heartbeat: start cntfrq={hz} ")),
        DEADLINE,
    )?;
    let beats = more_heartbeats(&mut run, "domU0", 3, "three heartbeats on raspi4b")?;
    check_counting(&run, &beats, "heartbeat on raspi4b")?;
    focus_shell(&mut run, DEADLINE)?;
    check_staged_copy_is_the_file(&mut run, "rpi4")?;
    // No PSCI: `reboot` goes through the BCM2835 watchdog, which QEMU's
    // power management model honours with a machine reset.
    let before = run_banners(&run);
    run.send(b"reboot\r")?;
    run.wait_until(
        DEADLINE,
        "a second banner after the watchdog reset",
        |lines| {
            (lines
                .iter()
                .filter(|l| hv::Banner::parse(l).is_some())
                .count()
                > before)
                .then_some(())
        },
    )?;
    Ok(())
}

fn run_banners(run: &QemuRun) -> usize {
    run.lines()
        .iter()
        .filter(|l| hv::Banner::parse(l).is_some())
        .count()
}

/// Debian's cloud kernel (2 vCPUs) reaches /init on the GIC-400 next to the
/// heartbeat guest: the virtual platform a VM sees is the same on every
/// board.
#[test]
fn linux_reaches_init() -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    require_dtb()?;
    xtask::linux::require()?;
    let mut run = start(&pi([
        VmSpec::linux("domU0").cpus(2),
        VmSpec::guest("domU1", "heartbeat"),
    ]))?;
    run.fail_on(re(r"Kernel panic|\] Oops|BUG: |Internal error:"));
    run.expect(
        &re(r"^\[domU0\] init: ready uptime=[0-9.]+ cpus=2$"),
        std::time::Duration::from_secs(300),
    )?;
    more_heartbeats(&mut run, "domU1", 2, "heartbeat beside Linux")?;
    Ok(())
}

/// The same file on `virt` stages the same bytes (one image for both).
#[test]
fn same_image_stages_the_same_bytes_on_virt() -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let mut run = start(&scenario(3, [VmSpec::guest("domU0", "heartbeat")]))?;
    run.expect(&hv::banner_of(&version(), "qemu-virt", 2), DEADLINE)?;
    run.expect(&timer_line(xtask::machine::virt::LOAD_ADDRESS), DEADLINE)?;
    run.expect(&started("domU0"), DEADLINE)?;
    focus_shell(&mut run, DEADLINE)?;
    check_staged_copy_is_the_file(&mut run, "qemu-virt")
}

/// Warm reloads without PSCI: the secondaries wait in the holding pen
/// (they cannot be released from the spin table twice), the guests carry
/// on, memory verified.
#[test]
fn warm_reloads_park_secondaries_in_the_pen() -> anyhow::Result<()> {
    require_dtb()?;
    let mut run = start_heartbeat_and_pattern(2, |s| {
        s.on_raspi4b();
    })?;
    let beat = |l: &str| heartbeat_n("domU0", l);
    let pass = |l: &str| mempattern_pass("domU1", l);
    for generation in 1..=3 {
        let (last_beat, last_pass) = (last_value(&run, beat), last_value(&run, pass));
        run.send(b"rejuvenate\r")?;
        run.expect(&hv::suspending(2, generation), DEADLINE)?;
        run.expect(&hv::secondaries_released(3), DEADLINE)?;
        run.expect(&hv::reload_report(generation, 2), DEADLINE)?;
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
            "memory verified after the reload",
            pass,
            last_pass,
        )?;
    }
    let beats: Vec<u64> = run.lines().iter().filter_map(|l| beat(l)).collect();
    reload::check_continuous(&run, "heartbeat counter", &beats)?;
    reload::check_clean(&run, reload::Since::FirstReload)?;
    Ok(())
}

/// Ten warm reloads under Linux (2 vCPUs) and the memory-pattern guest on
/// the Pi: Linux's counter service goes on without a gap and Linux never
/// boots again, the pattern guest's RAM verifies after every reload.
#[test]
fn ten_reloads_under_linux() -> anyhow::Result<()> {
    use tests::guest::linux_counter_n as counter_n;
    require_images(&["mempattern"])?;
    require_dtb()?;
    xtask::linux::require()?;
    let linux_deadline = std::time::Duration::from_secs(300);
    let mut run = start(&pi([
        VmSpec::linux("domU0").cpus(2),
        VmSpec::guest("domU1", "mempattern"),
    ]))?;
    run.fail_on(re(tests::guest::LINUX_TROUBLE));
    run.expect(
        &re(r"^\[domU0\] init: ready uptime=[0-9.]+ cpus=2$"),
        linux_deadline,
    )?;
    wait_all(
        &mut run,
        &[
            re(r"^\[domU0\] counter: 2$"),
            re(r"^\[domU1\] mempattern: pass 1: \d+ MiB ok$"),
        ],
    )?;
    focus_shell(&mut run, DEADLINE)?;
    let pass = |l: &str| mempattern_pass("domU1", l);
    for generation in 1..=10 {
        let (counter, passes) = (last_value(&run, counter_n), last_value(&run, pass));
        run.send(b"rejuvenate\r")?;
        run.expect(&hv::secondaries_released(3), linux_deadline)?;
        run.expect(&hv::reload_report(generation, 2), linux_deadline)?;
        wait_beyond(
            &mut run,
            linux_deadline,
            "the Linux counter after the reload",
            counter_n,
            counter,
        )?;
        wait_beyond(
            &mut run,
            linux_deadline,
            "memory verified after the reload",
            pass,
            passes,
        )?;
    }
    let lines = run.lines();
    let counters: Vec<u64> = lines.iter().filter_map(|l| counter_n(l)).collect();
    reload::check_continuous(&run, "Linux counter", &counters)?;
    let passes: Vec<u64> = lines.iter().filter_map(|l| pass(l)).collect();
    reload::check_continuous(&run, "mempattern passes", &passes)?;
    guest::check_started_once(&run, &re(r"init: ready "), "Linux")?;
    reload::check_clean(&run, reload::Since::FirstReload)?;
    Ok(())
}

/// The hostile guest's probes are contained on the GIC-400 too, only it is
/// warned about, and its neighbour (in memory of its own) keeps beating.
#[test]
fn hostile_guest_contained_beside_its_neighbour() -> anyhow::Result<()> {
    require_images(&["heartbeat", "hostile"])?;
    require_dtb()?;
    let mut run = start(&pi([
        VmSpec::guest("domU0", "heartbeat"),
        VmSpec::guest("domU1", "hostile"),
    ]))?;
    let a = run.expect(&VmCreated::pattern("domU0"), DEADLINE)?;
    let b = run.expect(&VmCreated::pattern("domU1"), DEADLINE)?;
    let (a, b) = (VmCreated::parse(&a).unwrap(), VmCreated::parse(&b).unwrap());
    let (ra, rb) = (a.range(), b.range());
    check!(
        run,
        ra.end <= rb.start || rb.end <= ra.start,
        "the two VMs' RAM overlaps: {ra:x?} and {rb:x?}"
    );
    let done_re = re(r"^\[domU1\] hostile: done (\d+) probes, (\d+) contained$");
    let done = run.expect(&done_re, DEADLINE)?;
    let c = done_re.captures(&done).expect("matched");
    check!(
        run,
        c[1].parse::<u64>()? > 0 && c[1] == c[2],
        "not every probe was contained: {done}"
    );
    let warns = run.find_all(&hv::vm_warning());
    check!(
        run,
        !warns.is_empty(),
        "no `[hv] WARN: vm` line for the hostile guest"
    );
    for w in &warns {
        check!(
            run,
            w.contains("'domU1'"),
            "a warning blames another VM: {w}"
        );
    }
    let beats = more_heartbeats(&mut run, "domU0", 2, "heartbeat after the attack")?;
    check_counting(&run, &beats, "heartbeat beside the hostile guest")?;
    Ok(())
}

/// An image whose slot header names another board (the virt package of
/// the next build, same bytes) is refused before any VM pauses.
#[test]
fn image_for_another_board_refused() -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    require_dtb()?;
    let mut s = pi([VmSpec::guest("domU0", "heartbeat")]);
    s.next_image = Some(xtask::images::require_next_image()?);
    let mut run = start(&s)?;
    run.expect(&started("domU0"), DEADLINE)?;
    focus_shell(&mut run, DEADLINE)?;
    run.send(b"upgrade\r")?;
    run.expect(
        &hv::slot_refused(1, r"image built for board 'qemu-virt', this is 'rpi4'"),
        DEADLINE,
    )?;
    let beats = more_heartbeats(&mut run, "domU0", 2, "heartbeat after the refusal")?;
    check_counting(&run, &beats, "after the refused upgrade")?;
    run.assert_absent(&re(r"suspending|warm entry"))?;
    Ok(())
}

/// N -> N+1 -> N on the Pi: the "next" build packaged for rpi4 in slot 1;
/// each upgrade parks the secondaries in the pen and the guests go on.
#[test]
fn upgrade_and_roll_back() -> anyhow::Result<()> {
    require_dtb()?;
    let next = xtask::images::next_image_for(Machine::Raspi4b);
    anyhow::ensure!(
        next.is_file(),
        "{} missing: run `cargo xtask build`",
        next.display()
    );
    let mut run = start_heartbeat_and_pattern(2, |s| {
        s.on_raspi4b();
        s.next_image = Some(next);
    })?;
    let (n, n1) = (version(), xtask::images::next_version());
    run.send(b"images\r")?;
    run.expect(
        &hv::image_slot(1, &n1, "rpi4", hv::SlotRole::Staged),
        DEADLINE,
    )?;
    for (generation, to, from, back) in [(1, &n1, &n, false), (2, &n, &n1, true)] {
        let last = last_value(&run, |l| heartbeat_n("domU0", l));
        reload::switch_image(&mut run, back, to, from)?;
        run.expect(&hv::banner_of(to, "rpi4", 4), DEADLINE)?;
        run.expect(&hv::secondaries_released(3), DEADLINE)?;
        run.expect(&hv::reload_report(generation, 2), DEADLINE)?;
        wait_beyond(
            &mut run,
            DEADLINE,
            "heartbeat after the upgrade",
            |l| heartbeat_n("domU0", l),
            last,
        )?;
    }
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU0"))?;
    reload::check_clean(&run, reload::Since::FirstReload)?;
    Ok(())
}

/// The tree QEMU `raspi4b` passes (Debian's, with `/memory` filled in and
/// unmodelled devices disabled) parses into the board's host description:
/// the Pi's GIC-400 frames, UART0, the spin table, RAM below the
/// VideoCore's share. Debian's file alone has an empty `/memory` (the
/// firmware fills it), which the hypervisor refuses.
#[test]
fn the_pi_device_tree_describes_the_board() -> anyhow::Result<()> {
    use vmm::config::{host_info, GicRegs};
    let debian = std::fs::read(xtask::rpi4_dtb::require()?)?;
    let err = host_info(&debian).expect_err("Debian's tree has no RAM");
    assert!(err.to_string().contains("no memory"), "{err}");

    let qemu = xtask::qemu::find()?;
    let dir = std::env::temp_dir().join(format!("blink-rpi4-dtb-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("raspi4b.dtb");
    let _lock = xtask::qemu::QemuLock::acquire()?;
    let status = std::process::Command::new(&qemu.path)
        .arg("-M")
        .arg(format!("raspi4b,dumpdtb={}", out.display()))
        .arg("-dtb")
        .arg(xtask::rpi4_dtb::require()?)
        .args(["-display", "none", "-serial", "null", "-monitor", "none"])
        .stderr(std::process::Stdio::null())
        .status()?;
    assert!(status.success(), "QEMU dumpdtb: {status}");
    let blob = std::fs::read(&out)?;
    let _ = std::fs::remove_dir_all(&dir);
    let h = host_info(&blob).map_err(|e| anyhow::anyhow!("{e}"))?;

    let board = Machine::Raspi4b.board();
    assert!(board.matches(h.compatible.iter().map(|s| s.as_str())));
    assert_eq!(h.cpus.len(), 4);
    for (n, c) in h.cpus.iter().enumerate() {
        assert_eq!(c.mpidr, n as u64);
        assert_eq!(c.release_addr, Some(0xd8 + 8 * n as u64), "cpu {n}");
    }
    assert_eq!(h.psci, None, "the Pi has no PSCI");
    assert_eq!(h.gic.gicd.base, 0xff84_1000);
    match h.gic.regs {
        GicRegs::V2 { gicc, gich, gicv } => {
            assert_eq!(
                (gicc.base, gich.base, gicv.base),
                (0xff84_2000, 0xff84_4000, 0xff84_6000)
            );
        }
        GicRegs::V3 { .. } => panic!("the GIC-400 is a GICv2"),
    }
    assert_eq!(h.gic.maintenance_intid, Some(25));
    // stdout-path names the mini UART; the console is the PL011 UART0.
    assert_eq!(h.uart.base, board.console.base as u64);
    assert_eq!(h.uart.spi, Some(153 - 32));
    assert_eq!(
        h.ram.iter().map(|r| (r.base, r.size)).collect::<Vec<_>>(),
        [(0, raspi4b::RAM_END)]
    );
    assert!(h.reserved.iter().any(|r| r.base == 0 && r.size == 0x1000));
    let t = h.timer.expect("architected timer");
    assert_eq!((t.phys, t.virt, t.hyp_phys), (30, 27, 26));
    Ok(())
}

/// Entered at EL3 (QEMU's loader sets the PC; no boot stub drops to EL2):
/// boot.S, before any Rust code and before it knows the board from the
/// device tree, still reports it on the Pi's UART0, chosen by where the
/// image runs.
#[test]
fn not_at_el2_is_reported_on_the_pi_console() -> anyhow::Result<()> {
    let hv = xtask::images::require_hypervisor_image()?;
    let qemu = xtask::qemu::find()?;
    let args = [
        "-M",
        "raspi4b",
        "-device",
        &format!(
            "loader,file={},addr={:#x},force-raw=on",
            hv.display(),
            raspi4b::LOAD_ADDRESS
        ),
        "-device",
        &format!("loader,addr={:#x},cpu-num=0", raspi4b::LOAD_ADDRESS),
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
    ]
    .map(String::from);
    let cmd = xtask::QemuCommand::bare(qemu.path, args.to_vec())?;
    let mut run = QemuRun::spawn(cmd)?;
    run.expect(&re(r"^\[hv\] FATAL: not entered at EL2"), DEADLINE)?;
    Ok(())
}

/// The SD card's files (`cargo xtask sdcard`) boot on QEMU `raspi4b`, with
/// `modules.bin` loaded where config.txt's `initramfs` line puts it: the
/// hypervisor, the tree and the guest layout a real board would get.
#[test]
fn sdcard_files_boot_on_raspi4b() -> anyhow::Result<()> {
    require_images(&["heartbeat", "mempattern"])?;
    require_dtb()?;
    let s = pi([
        VmSpec::guest("domU0", "heartbeat"),
        VmSpec::guest("domU1", "mempattern"),
    ]);
    let card = xtask::target_dir()
        .join("xtask")
        .join(format!("sdcard-test-{}", std::process::id()));
    xtask::sdcard::write(&s, &card)?;
    let config = std::fs::read_to_string(card.join("config.txt"))?;
    let (file, addr) = config
        .lines()
        .find_map(|l| {
            let mut w = l.strip_prefix("initramfs ")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .ok_or_else(|| anyhow::anyhow!("no initramfs line in config.txt:\n{config}"))?;
    let path = |name: &str| card.join(name).display().to_string();
    let args = [
        "-M",
        "raspi4b",
        "-display",
        "none",
        "-kernel",
        &path("hypervisor.bin"),
        "-dtb",
        &path("blink.dtb"),
        "-device",
        &format!("loader,file={},addr={addr},force-raw=on", path(&file)),
        "-serial",
        "stdio",
        "-monitor",
        "none",
    ]
    .map(String::from);
    let cmd = xtask::QemuCommand::bare(xtask::qemu::find()?.path, args.to_vec())?;
    let mut run = QemuRun::spawn(cmd)?;
    run.fail_on(re(FATAL));
    run.expect(&hv::banner_of(&version(), "rpi4", 4), DEADLINE)?;
    wait_all(
        &mut run,
        &[
            started("domU0"),
            started("domU1"),
            re(r"^\[domU0\] heartbeat: n=2 "),
            re(r"^\[domU1\] mempattern: pass 1: \d+ MiB ok$"),
        ],
    )?;
    let _ = std::fs::remove_dir_all(&card);
    Ok(())
}
