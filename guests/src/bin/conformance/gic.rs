use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use guests::println;
use guests::rt::gic::{self, Version};
use guests::rt::{self, exception, psci, timer, MAX_CPUS};

use crate::report::{wait_until, Tally, PROGRESS_TIMEOUT_MS, SEEN};

const ROUND_TRIPS: u64 = 100_000;
/// The ping-pong's deadline is set 1 s ahead every this many round trips
/// (at ~3 ms a round trip on a badly overloaded host, 16 take 50 ms).
const DEADLINE_EVERY: u64 = 16;
/// A progress line every this many round trips.
const PROGRESS_EVERY: u64 = 10_000;

const SGI_DOORBELL: u32 = 2;
const SGI_PING: u32 = 3;
const SGI_PONG: u32 = 4;
const SGI_SOURCE: u32 = 5;
const SGI_MERGE: u32 = 6;
const SGIS: [u32; 5] = [SGI_DOORBELL, SGI_PING, SGI_PONG, SGI_SOURCE, SGI_MERGE];

/// The vCPU that answers pings.
const RECEIVER: usize = 1;

/// The first SPI; its ITARGETSR byte is lane 0 of ITARGETSR8.
const SPI: u32 = 32;
const ITARGETSR_SPI: usize = gic::GICD_ITARGETSR + SPI as usize;

// Commands to a secondary (CMD[cpu]); the secondary sets IDLE when done.
const CMD_IDLE: u32 = 0;
/// Spin with IRQs unmasked until PINGPONG is cleared (ping receiver).
const CMD_SPIN: u32 = 1;
/// Send SGI_SOURCE to vCPU 0 once.
const CMD_SOURCE: u32 = 2;
/// Send SGI_MERGE to vCPU 0 twice.
const CMD_MERGE: u32 = 3;

#[allow(clippy::declare_interior_mutable_const)] // only initialises the arrays
const ZERO32: AtomicU32 = AtomicU32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO64: AtomicU64 = AtomicU64::new(0);

static CMD: [AtomicU32; MAX_CPUS] = [ZERO32; MAX_CPUS];
/// Secondaries whose GIC is set up and that wait for commands.
static ONLINE: AtomicUsize = AtomicUsize::new(0);
/// GIC setup of a secondary failed: 1 + cpu (0 = none).
static INIT_FAILED: AtomicUsize = AtomicUsize::new(0);
/// GICv2 ITARGETSR0..7 as read by each vCPU: 0 = as expected, otherwise
/// 1 << 63 | word << 32 | value of the first wrong word.
static PRIVATE_TARGETS: [AtomicU64; MAX_CPUS] = [ZERO64; MAX_CPUS];

/// Set while the ping-pong runs; the receiver spins while it is.
static PINGPONG: AtomicBool = AtomicBool::new(false);
/// The receiver is in its spin loop.
static SPINNING: AtomicBool = AtomicBool::new(false);
/// The virtual timer marked the current round trip's deadline.
static DEADLINE_PASSED: AtomicBool = AtomicBool::new(false);
static PINGS: AtomicU64 = AtomicU64::new(0);
static PONGS: AtomicU64 = AtomicU64::new(0);
/// GICv2: pings or pongs whose IAR named the wrong source.
static WRONG_SOURCE: AtomicU64 = AtomicU64::new(0);
/// First wrong ping-pong IAR: 1 << 63 | cpu << 32 | iar.
static WRONG_SOURCE_FIRST: AtomicU64 = AtomicU64::new(0);

/// IAR of the last SGI_SOURCE vCPU 0 took, | 1 << 63 (0 = none yet).
static SOURCE_IAR: AtomicU64 = AtomicU64::new(0);
/// SGI_MERGE deliveries to vCPU 0, and the sources seen (bit n = CPU n).
static MERGE_COUNT: AtomicU32 = AtomicU32::new(0);
static MERGE_SOURCES: AtomicU32 = AtomicU32::new(0);

static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
/// First unexpected interrupt: 1 << 63 | cpu << 32 | iar.
static UNEXPECTED_FIRST: AtomicU64 = AtomicU64::new(0);

fn record_first(slot: &AtomicU64, cpu: usize, iar: u32) {
    let _ = slot.compare_exchange(
        0,
        SEEN | (cpu as u64) << 32 | u64::from(iar),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
}

fn is_v2() -> bool {
    VERSION.load(Ordering::Relaxed) == 2
}

/// The GIC version, once `gic::init` succeeded on vCPU 0.
static VERSION: AtomicU32 = AtomicU32::new(0);

fn on_irq() {
    let iar = gic::ack();
    let intid = gic::intid(iar);
    if intid >= gic::SPURIOUS_FIRST || crate::spi::on_irq(iar) {
        return;
    }
    let me = rt::cpu_id();
    if crate::timers::on_irq(intid, me) {
        gic::eoi(iar);
        return;
    }
    let source = gic::sgi_source(iar);
    match (intid, me) {
        (SGI_DOORBELL, _) => {}
        (SGI_PING, RECEIVER) => {
            if is_v2() && source != 0 {
                WRONG_SOURCE.fetch_add(1, Ordering::SeqCst);
                record_first(&WRONG_SOURCE_FIRST, me, iar);
            }
            PINGS.fetch_add(1, Ordering::SeqCst);
            // The pong only after this ping has ended, so the next ping
            // can never find this one still active.
            gic::eoi(iar);
            gic::send_sgi(SGI_PONG, 0);
            return;
        }
        (SGI_PONG, 0) => {
            if is_v2() && source != RECEIVER as u32 {
                WRONG_SOURCE.fetch_add(1, Ordering::SeqCst);
                record_first(&WRONG_SOURCE_FIRST, me, iar);
            }
            PONGS.fetch_add(1, Ordering::SeqCst);
        }
        (timer::VIRTUAL_TIMER_INTID, 0) => {
            // A round trip's deadline passed: say so, and keep the
            // timer from firing again until the next one is set.
            DEADLINE_PASSED.store(true, Ordering::SeqCst);
            timer::set_virtual_timer_in(timer::ms_to_ticks(PROGRESS_TIMEOUT_MS));
        }
        (SGI_SOURCE, 0) => SOURCE_IAR.store(SEEN | u64::from(iar), Ordering::SeqCst),
        (SGI_MERGE, 0) => {
            MERGE_COUNT.fetch_add(1, Ordering::SeqCst);
            MERGE_SOURCES.fetch_or(1 << source, Ordering::SeqCst);
        }
        _ => {
            UNEXPECTED.fetch_add(1, Ordering::SeqCst);
            record_first(&UNEXPECTED_FIRST, me, iar);
        }
    }
    gic::eoi(iar);
}

/// GICv2: every ITARGETSR0..7 word reads as `expected` in every byte.
/// Returns 0, or SEEN | word << 32 | value of the first that does not.
fn check_private_targets(expected: u8) -> u64 {
    let want = u32::from_ne_bytes([expected; 4]);
    (0..8)
        .map(|word| (word, gic::dist_read(gic::GICD_ITARGETSR + word * 4)))
        .find(|&(_, value)| value != want)
        .map_or(0, |(word, value)| {
            SEEN | (word as u64) << 32 | u64::from(value)
        })
}

fn own_target_mask() -> u8 {
    1 << (rt::cpu_id() & 7)
}

/// Secondary vCPUs: set up the GIC, then carry out commands.
fn secondary(_context: u64) -> ! {
    let me = rt::cpu_id();
    if gic::init().is_err() {
        let _ = INIT_FAILED.compare_exchange(0, me + 1, Ordering::SeqCst, Ordering::SeqCst);
        rt::halt();
    }
    for sgi in SGIS {
        gic::enable_ppi(sgi);
    }
    if is_v2() {
        PRIVATE_TARGETS[me].store(check_private_targets(own_target_mask()), Ordering::SeqCst);
    }
    exception::set_irq_handler(on_irq);
    ONLINE.fetch_add(1, Ordering::SeqCst);
    rt::enable_irqs();
    loop {
        // Masked while deciding to sleep: a doorbell that comes after the
        // check still ends the `wfi` (and is taken once unmasked).
        let cmd = rt::without_irqs(|| {
            let cmd = CMD[me].load(Ordering::SeqCst);
            if cmd == CMD_IDLE {
                rt::wait_for_interrupt();
            }
            cmd
        });
        match cmd {
            CMD_IDLE => continue,
            CMD_SPIN => {
                SPINNING.store(true, Ordering::SeqCst);
                while PINGPONG.load(Ordering::SeqCst) {
                    core::hint::spin_loop();
                }
                SPINNING.store(false, Ordering::SeqCst);
            }
            CMD_SOURCE => gic::send_sgi(SGI_SOURCE, 0),
            CMD_MERGE => {
                gic::send_sgi(SGI_MERGE, 0);
                gic::send_sgi(SGI_MERGE, 0);
            }
            _ => {}
        }
        CMD[me].store(CMD_IDLE, Ordering::SeqCst);
    }
}

/// Gives `cpu` a command and waits (bounded) until it has carried it out.
fn command(cpu: usize, cmd: u32) -> bool {
    CMD[cpu].store(cmd, Ordering::SeqCst);
    gic::send_sgi(SGI_DOORBELL, cpu);
    wait_until(PROGRESS_TIMEOUT_MS, || {
        CMD[cpu].load(Ordering::SeqCst) == CMD_IDLE
    })
}

/// Reads ArchRev (bits [7:4]) of the distributor's peripheral ID2
/// register at `offset`; a fault is reported as such.
fn arch_rev(offset: usize) -> Result<u32, exception::Fault> {
    exception::catch(|| gic::dist_read(offset)).map(|pidr2| (pidr2 >> 4) & 0xf)
}

fn pidr2_archrev(t: &mut Tally, v3_cpu: bool) {
    let (expected, offset, reg) = if v3_cpu {
        (3, gic::GICD_PIDR2, "GICD_PIDR2")
    } else {
        (2, gic::GICD_PIDR2_V2, "GICD_ICPIDR2")
    };
    let name = "gicd_pidr2_archrev";
    match arch_rev(offset) {
        Ok(rev) if rev == expected => t.pass(name),
        Ok(rev) => t.fail(
            name,
            format_args!(
                "{reg} (GICD + {offset:#x}) ArchRev = {rev}, expected {expected} \
                 (ID_AA64PFR0_EL1.GIC says GICv{expected})"
            ),
        ),
        Err(f) => t.fail(
            name,
            format_args!(
                "reading {reg} (GICD + {offset:#x}) faulted: esr={:#x}",
                f.esr
            ),
        ),
    }
}

fn typer_cpus(t: &mut Tally, cpus: usize) {
    let name = "gicd_typer_cpus";
    if !is_v2() {
        return t.skip(
            name,
            format_args!("GICv3: CPUNumber is for legacy operation only"),
        );
    }
    let typer = gic::dist_read(gic::GICD_TYPER);
    let got = ((typer >> 5) & 7) as usize;
    if got + 1 == cpus {
        t.pass(name)
    } else {
        t.fail(
            name,
            format_args!(
                "GICD_TYPER = {typer:#x}: CPUNumber = {got}, expected {}",
                cpus - 1
            ),
        )
    }
}

fn itargetsr_uniprocessor(t: &mut Tally, cpus: usize) {
    let name = "gicv2_itargetsr_uniprocessor";
    if !is_v2() {
        return t.skip(
            name,
            format_args!("GICv3: no ITARGETSR with affinity routing"),
        );
    }
    if cpus != 1 {
        return t.skip(name, format_args!("more than one vCPU"));
    }
    let before = gic::dist_read(ITARGETSR_SPI);
    gic::dist_write(ITARGETSR_SPI, 0x0101_0101);
    let after = gic::dist_read(ITARGETSR_SPI);
    let private = check_private_targets(0);
    if before != 0 || after != 0 {
        t.fail(
            name,
            format_args!(
                "ITARGETSR{} (INTIDs {SPI}..{}) read {before:#x}, then {after:#x} \
                 after writing 0x01010101; expected 0 (RAZ/WI)",
                SPI / 4,
                SPI + 3
            ),
        )
    } else if private != 0 {
        t.fail(
            name,
            format_args!(
                "ITARGETSR{} reads {:#x}, expected 0 (RAZ/WI)",
                (private >> 32) & 0xff,
                private as u32
            ),
        )
    } else {
        t.pass(name)
    }
}

/// GICv2, 2+ vCPUs: writes the SPI's target byte (CPU 1, then CPUs 0
/// and 1) and reads it back; restores the register. Returns the first
/// (written, read) pair that differs.
fn itargetsr_spi_targets() -> Option<(u32, u32)> {
    let original = gic::dist_read(ITARGETSR_SPI);
    let mut wrong = None;
    for targets in [0b10u32, 0b11] {
        gic::dist_write(ITARGETSR_SPI, (original & !0xff) | targets);
        let got = gic::dist_read(ITARGETSR_SPI) & 0xff;
        if got != targets && wrong.is_none() {
            wrong = Some((targets, got));
        }
    }
    gic::dist_write(ITARGETSR_SPI, original);
    wrong
}

/// GICv2, 2+ vCPUs, not a check: what the SPI's target byte reads after
/// writing no CPU (0) and every CPU interface bit (0xff, bits of CPUs
/// that do not exist included), for comparing blink with bare QEMU.
fn itargetsr_spi_probe() {
    let original = gic::dist_read(ITARGETSR_SPI);
    let mut read = [0u32; 2];
    for (i, targets) in [0u32, 0xff].into_iter().enumerate() {
        gic::dist_write(ITARGETSR_SPI, (original & !0xff) | targets);
        read[i] = gic::dist_read(ITARGETSR_SPI) & 0xff;
    }
    gic::dist_write(ITARGETSR_SPI, original);
    println!(
        "INFO gicv2_itargetsr_spi: byte 0 (INTID {SPI}) wrote 0x0 read {:#x}, wrote 0xff read {:#x}",
        read[0], read[1]
    );
}

/// Brings up the GIC on every vCPU (secondaries then wait for commands)
/// and checks what needs no second vCPU to be up. Returns the number of
/// vCPUs online, or `None` if the GIC did not come up (reported).
pub fn setup(t: &mut Tally) -> Option<usize> {
    let v3_cpu = gic::cpu_has_gicv3_sysregs();
    pidr2_archrev(t, v3_cpu);
    let version = match gic::init() {
        Ok(v) => v,
        Err(e) => {
            t.fail("gic_init", format_args!("{e}"));
            return None;
        }
    };
    VERSION.store(version.number(), Ordering::SeqCst);
    if (version == Version::V3) != v3_cpu {
        t.fail(
            "gic_version",
            format_args!(
                "the distributor says GICv{}, ID_AA64PFR0_EL1.GIC says GICv{}",
                version.number(),
                if v3_cpu { 3 } else { 2 }
            ),
        );
    }
    for sgi in SGIS {
        gic::enable_ppi(sgi);
    }
    if version == Version::V2 {
        PRIVATE_TARGETS[0].store(check_private_targets(own_target_mask()), Ordering::SeqCst);
    }
    exception::set_irq_handler(on_irq);
    rt::enable_irqs();

    let cpus = start_secondaries();
    println!("conformance: gic=v{} cpus={cpus}", version.number());
    if let Some(cpu) = INIT_FAILED.load(Ordering::SeqCst).checked_sub(1) {
        t.fail("gic_init", format_args!("cpu {cpu}: GIC setup failed"));
    }
    Some(cpus)
}

/// The checks of the GIC proper, in the order the crate docs list them.
pub fn checks(t: &mut Tally, cpus: usize) {
    typer_cpus(t, cpus);
    itargetsr_uniprocessor(t, cpus);
    itargetsr_multiprocessor(t, cpus);
    let ping_pong_ran = ping_pong(t, cpus);
    sgi_source(t, cpus, ping_pong_ran);
    sgi_pending_merge(t, cpus);
}

/// The last check: no vCPU took an interrupt nobody sent it, during any
/// of the checks before.
pub fn no_unexpected_interrupts(t: &mut Tally) {
    let name = "no_unexpected_interrupts";
    match UNEXPECTED.load(Ordering::SeqCst) {
        0 => t.pass(name),
        n => {
            let first = UNEXPECTED_FIRST.load(Ordering::SeqCst);
            t.fail(
                name,
                format_args!(
                    "{n} unexpected interrupt(s), the first on cpu {}: IAR {:#x}",
                    (first >> 32) & 0xff,
                    first as u32
                ),
            )
        }
    }
}

/// Starts vCPUs 1, 2, ... until PSCI says there is no such vCPU; waits
/// for each to be ready. Returns the number of vCPUs online.
fn start_secondaries() -> usize {
    let mut cpus = 1;
    for cpu in 1..MAX_CPUS {
        let before = ONLINE.load(Ordering::SeqCst);
        match psci::start_secondary(cpu as u64, secondary, cpu as u64) {
            psci::SUCCESS => {
                if wait_until(2000, || ONLINE.load(Ordering::SeqCst) > before) {
                    cpus += 1;
                } else {
                    println!("INFO cpu {cpu} did not come online");
                    break;
                }
            }
            psci::INVALID_PARAMETERS => break,
            err => {
                println!("INFO CPU_ON cpu {cpu}: {err}");
                break;
            }
        }
    }
    cpus
}

fn itargetsr_multiprocessor(t: &mut Tally, cpus: usize) {
    let (spi, private) = ("gicv2_itargetsr_spi_targets", "gicv2_itargetsr_private");
    if !is_v2() {
        t.skip(
            spi,
            format_args!("GICv3: no ITARGETSR with affinity routing"),
        );
        return t.skip(
            private,
            format_args!("GICv3: no ITARGETSR with affinity routing"),
        );
    }
    if cpus == 1 {
        t.skip(
            spi,
            format_args!("one vCPU (see gicv2_itargetsr_uniprocessor)"),
        );
        return t.skip(
            private,
            format_args!("one vCPU (see gicv2_itargetsr_uniprocessor)"),
        );
    }
    itargetsr_spi_probe();
    match itargetsr_spi_targets() {
        None => t.pass(spi),
        Some((wrote, read)) => t.fail(
            spi,
            format_args!(
                "ITARGETSR{} byte 0 (INTID {SPI}): wrote {wrote:#x}, read back {read:#x}",
                SPI / 4
            ),
        ),
    }
    let wrong = (0..cpus)
        .map(|cpu| (cpu, PRIVATE_TARGETS[cpu].load(Ordering::SeqCst)))
        .find(|&(_, r)| r != 0);
    match wrong {
        None => t.pass(private),
        Some((cpu, r)) => t.fail(
            private,
            format_args!(
                "cpu {cpu}: ITARGETSR{} reads {:#x}, expected {:#x}",
                (r >> 32) & 0xff,
                r as u32,
                u32::from_ne_bytes([1 << cpu; 4])
            ),
        ),
    }
}

/// How a round trip of the ping-pong ended.
enum RoundTrip {
    Done,
    /// The pong came, but only after the 1 s deadline: it was left
    /// pending until the deadline timer woke vCPU 0 (a lost wake-up).
    Late,
    /// No pong by the deadline.
    Lost,
}

/// vCPU 0 during the ping-pong: sends ping `round` and waits in `wfi`
/// until its handler has taken the pong, at most until the deadline
/// (the virtual timer; its handler sets DEADLINE_PASSED), which is set
/// 1 s ahead every DEADLINE_EVERY round trips: a timer write per round
/// trip would double its cost under QEMU TCG.
/// Sleeping rather than spinning leaves the host CPU to the receiver
/// when QEMU's two vCPU threads share one host core (spinning, each
/// round trip then waits for a host time slice: ~2 ms, not ~50 us).
fn round_trip(round: u64) -> RoundTrip {
    if (round - 1).is_multiple_of(DEADLINE_EVERY) {
        DEADLINE_PASSED.store(false, Ordering::SeqCst);
        timer::set_virtual_timer_in(timer::ms_to_ticks(PROGRESS_TIMEOUT_MS));
    }
    gic::send_sgi(SGI_PING, RECEIVER);
    loop {
        // Masked while deciding to sleep, so a pong that comes after the
        // check still ends the `wfi`; it is taken once unmasked.
        rt::without_irqs(|| {
            if PONGS.load(Ordering::SeqCst) < round && !DEADLINE_PASSED.load(Ordering::SeqCst) {
                rt::wait_for_interrupt();
            }
        });
        let done = PONGS.load(Ordering::SeqCst) >= round;
        match (DEADLINE_PASSED.load(Ordering::SeqCst), done) {
            (true, true) => return RoundTrip::Late,
            (true, false) => return RoundTrip::Lost,
            (false, true) => return RoundTrip::Done,
            (false, false) => {}
        }
    }
}

/// The ping-pong; returns whether it ran (its IARs then count for
/// `gicv2_sgi_source`).
fn ping_pong(t: &mut Tally, cpus: usize) -> bool {
    let name = "ipi_ping_pong";
    if cpus < 2 {
        t.skip(name, format_args!("needs two vCPUs"));
        return false;
    }
    PINGPONG.store(true, Ordering::SeqCst);
    CMD[RECEIVER].store(CMD_SPIN, Ordering::SeqCst);
    gic::send_sgi(SGI_DOORBELL, RECEIVER);
    if !wait_until(PROGRESS_TIMEOUT_MS, || SPINNING.load(Ordering::SeqCst)) {
        PINGPONG.store(false, Ordering::SeqCst);
        t.fail(
            name,
            format_args!("cpu {RECEIVER} never started to spin (doorbell SGI lost?)"),
        );
        return false;
    }
    // The deadline that bounds vCPU 0's waits in `wfi` (see round_trip).
    gic::enable_ppi(timer::VIRTUAL_TIMER_INTID);
    timer::set_virtual_timer_in(timer::ms_to_ticks(PROGRESS_TIMEOUT_MS));
    timer::enable_virtual_timer(true);
    let start = timer::counter();
    let mut failed = None;
    for round in 1..=ROUND_TRIPS {
        match round_trip(round) {
            RoundTrip::Done => {}
            how => {
                failed = Some((round, how));
                break;
            }
        }
        if round.is_multiple_of(PROGRESS_EVERY) && round < ROUND_TRIPS {
            // Shows the test that the run still moves (only vCPU 0
            // prints; the receiver keeps spinning meanwhile).
            println!("INFO ipi_ping_pong: {round} of {ROUND_TRIPS} round trips");
        }
    }
    let elapsed = timer::counter().wrapping_sub(start);
    timer::enable_virtual_timer(false);
    PINGPONG.store(false, Ordering::SeqCst);
    let (pings, pongs) = (PINGS.load(Ordering::SeqCst), PONGS.load(Ordering::SeqCst));
    let back = wait_until(PROGRESS_TIMEOUT_MS, || {
        CMD[RECEIVER].load(Ordering::SeqCst) == CMD_IDLE
    });
    match failed {
        Some((round, how)) => t.fail(
            name,
            format_args!(
                "round trip {round} of {ROUND_TRIPS}: {} (set {PROGRESS_TIMEOUT_MS} ms \
                 ahead at round trip {}; cpu {RECEIVER} took {pings} pings, cpu 0 took \
                 {pongs} pongs)",
                match how {
                    RoundTrip::Late => "pong taken only once the deadline woke cpu 0",
                    _ => "no pong by the deadline",
                },
                (round - 1) / DEADLINE_EVERY * DEADLINE_EVERY + 1
            ),
        ),
        None if pings != ROUND_TRIPS || pongs != ROUND_TRIPS => t.fail(
            name,
            format_args!("{ROUND_TRIPS} round trips, but {pings} pings and {pongs} pongs taken"),
        ),
        None if !back => t.fail(name, format_args!("cpu {RECEIVER} did not stop spinning")),
        None => {
            let us = timer::ticks_to_us(elapsed);
            println!(
                "INFO ipi_ping_pong: {ROUND_TRIPS} round trips in {} ms, {} ns each",
                us / 1000,
                us * 1000 / ROUND_TRIPS
            );
            t.pass(name)
        }
    }
    true
}

fn sgi_source(t: &mut Tally, cpus: usize, ping_pong_ran: bool) {
    let name = "gicv2_sgi_source";
    if !is_v2() {
        return t.skip(name, format_args!("GICv3: IAR has no source"));
    }
    if cpus < 2 {
        return t.skip(name, format_args!("needs two vCPUs"));
    }
    for cpu in 1..cpus {
        SOURCE_IAR.store(0, Ordering::SeqCst);
        if !command(cpu, CMD_SOURCE) {
            return t.fail(name, format_args!("cpu {cpu} did not take its command"));
        }
        if !wait_until(PROGRESS_TIMEOUT_MS, || {
            SOURCE_IAR.load(Ordering::SeqCst) != 0
        }) {
            return t.fail(
                name,
                format_args!("SGI {SGI_SOURCE} from cpu {cpu} never arrived"),
            );
        }
        let iar = SOURCE_IAR.load(Ordering::SeqCst) as u32;
        if gic::sgi_source(iar) != cpu as u32 {
            return t.fail(
                name,
                format_args!(
                    "SGI {SGI_SOURCE} from cpu {cpu}: GICC_IAR = {iar:#x}, source {} (bits 12:10)",
                    gic::sgi_source(iar)
                ),
            );
        }
    }
    let wrong = WRONG_SOURCE.load(Ordering::SeqCst);
    if ping_pong_ran && wrong != 0 {
        let first = WRONG_SOURCE_FIRST.load(Ordering::SeqCst);
        return t.fail(
            name,
            format_args!(
                "{wrong} ping-pong SGIs named the wrong source, the first on cpu {}: IAR {:#x}",
                (first >> 32) & 0xff,
                first as u32
            ),
        );
    }
    t.pass(name)
}

fn sgi_pending_merge(t: &mut Tally, cpus: usize) {
    let name = "sgi_pending_merge";
    MERGE_COUNT.store(0, Ordering::SeqCst);
    MERGE_SOURCES.store(0, Ordering::SeqCst);
    let silent = rt::without_irqs(|| {
        gic::send_sgi(SGI_MERGE, 0);
        gic::send_sgi(SGI_MERGE, 0);
        let silent = (1..cpus).find(|&cpu| !command(cpu, CMD_MERGE));
        // Let every SGI reach the GIC before it may be taken.
        timer::delay_ms(10);
        silent
    });
    if let Some(cpu) = silent {
        return t.fail(name, format_args!("cpu {cpu} did not take its command"));
    }
    let (expected, sources) = if is_v2() {
        (cpus as u32, (1u32 << cpus) - 1)
    } else {
        (1, 1)
    };
    wait_until(PROGRESS_TIMEOUT_MS, || {
        MERGE_COUNT.load(Ordering::SeqCst) >= expected
    });
    // Any extra delivery would come right after the expected ones.
    timer::delay_ms(50);
    let (count, seen) = (
        MERGE_COUNT.load(Ordering::SeqCst),
        MERGE_SOURCES.load(Ordering::SeqCst),
    );
    // GICv3 IARs have no source field: every delivery counts as "source 0".
    if count == expected && seen == sources {
        t.pass(name)
    } else if is_v2() {
        t.fail(
            name,
            format_args!(
                "each of {cpus} vCPU(s) sent SGI {SGI_MERGE} twice while masked: {count} deliveries \
                 from sources {seen:#b}, expected {expected} (one per source) from {sources:#b}"
            ),
        )
    } else {
        t.fail(
            name,
            format_args!(
                "each of {cpus} vCPU(s) sent SGI {SGI_MERGE} twice while masked: {count} deliveries, \
                 expected 1 (one pending bit)"
            ),
        )
    }
}
