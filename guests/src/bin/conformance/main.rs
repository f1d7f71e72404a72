//! conformance: architectural checks of what a guest may rely on (the GIC,
//! the timers, the ID registers, aborts, debug and PMU state), the same on
//! blink and bare on QEMU `virt` (where the answer is the hardware's).
//!
//! Every check prints one line: `PASS <name>`, `FAIL <name>: <detail>` or,
//! where it does not apply to this GIC or CPU count, `SKIP <name>: <why>`.
//! Informational lines start with `INFO `. The run starts with
//! `conformance: start` and `conformance: gic=v<2|3> cpus=<n>` (after
//! every vCPU PSCI starts is online) and ends with
//! `conformance: <p> passed, <f> failed, <s> skipped`; the vCPUs then idle.
//!
//! The checks, in order:
//!
//! - `gicd_pidr2_archrev`: the distributor's ArchRev (bits [7:4] of
//!   GICD_ICPIDR2 at 0xFE8 on GICv2, of GICD_PIDR2 at 0xFFE8 on GICv3)
//!   names the GIC the CPU has: 3 if ID_AA64PFR0_EL1.GIC says the CPU has
//!   the GICv3 system registers, 2 if not.
//! - `gicd_typer_cpus` (GICv2): GICD_TYPER.CPUNumber = vCPUs - 1.
//! - `gicv2_itargetsr_uniprocessor` (GICv2, 1 vCPU): GICD_ITARGETSR<n> are
//!   RAZ/WI on a uniprocessor GIC: an SPI's byte reads 0 before and after a
//!   write, and so do the private interrupts' ones.
//! - `gicv2_itargetsr_spi_targets` (GICv2, 2+ vCPUs): an SPI's target byte
//!   reads back what was written (CPU 1, then CPUs 0 and 1).
//! - `gicv2_itargetsr_private` (GICv2, 2+ vCPUs): on every vCPU,
//!   ITARGETSR0..7 (SGIs and PPIs) read as that vCPU's own bit in every
//!   byte.
//! - `ipi_ping_pong` (2+ vCPUs): 100,000 round trips: vCPU 0 sends SGI
//!   PING to vCPU 1, whose handler acknowledges it, ends it and sends SGI
//!   PONG back; vCPU 0 sends the next ping only after its handler took the
//!   pong. vCPU 1 spins meanwhile (no timer, nothing that traps); vCPU 0
//!   waits for the pong in `wfi`, with its virtual timer set to a deadline
//!   1 s ahead every 16 round trips. So a lost IPI in either direction
//!   stops the game: a round trip not done by the deadline fails the check
//!   with its number (also when the pong is only taken once the deadline's
//!   timer woke vCPU 0, i.e. the pong's wake-up was lost). A progress line
//!   `INFO ipi_ping_pong: <n> of 100000 round trips` every 10,000, and
//!   `INFO ipi_ping_pong: 100000 round trips in <ms> ms, <ns> ns each`.
//! - `gicv2_sgi_source` (GICv2, 2+ vCPUs): each secondary vCPU k in turn
//!   sends an SGI to vCPU 0, whose GICC_IAR must name k in bits [12:10];
//!   also every ping (source 0) and pong (source 1) of the ping-pong.
//! - `sgi_pending_merge`: with IRQs masked on vCPU 0, every vCPU (0
//!   included) sends the same SGI to vCPU 0 twice; after unmasking, GICv2
//!   delivers it once per source (an SGI is pending per source, and twice
//!   from one source is once), GICv3 exactly once (one pending bit).
//! - `timer_level_resampled` (timers.rs): each EL1 timer fires while its
//!   PPI is disabled at the GIC (the PPI reads pending), is turned off (it
//!   reads not pending) and the PPI is enabled: no interrupt may come;
//!   then, enabled, it fires and its interrupt comes.
//! - `timers_rate` (timers.rs): the virtual timer every 7 ms and the
//!   physical one every 10 ms at once: none early, none lost, the two
//!   counters at one rate.
//! - `level_spi_after_eoi` (spi.rs, where the second PL011 is there):
//!   a level SPI ended at the GIC before the device drops it is delivered
//!   once.
//! - `id_registers_usable` (cpu.rs): every feature the ID registers
//!   advertise (SVE, SME, MTE, pointer authentication, PMU, SPE, TRBE,
//!   AMU, trace) can be used.
//! - `instruction_abort` (cpu.rs): a call past the end of RAM raises an
//!   instruction abort at EL1 that the guest handles.
//! - `debug_registers_kept`, `debug_state_isolated` (debug.rs): what one
//!   VM writes to its breakpoint, watchpoint and PMU registers stays, and
//!   neither shows nor fires in another VM on the same CPU (two VMs, roles
//!   from `bootargs`).
//! - `no_unexpected_interrupts`: no vCPU took an interrupt it was not
//!   sent (spurious INTIDs 1020..1023 aside).
//!
//! Should the GIC not come up, `FAIL gic_init` (or `FAIL gic_version` if
//! the distributor and the CPU disagree on the version) says so.
//!
//! Secondaries wait in `wfi` for a command (set in memory, then a doorbell
//! SGI), except vCPU 1 during the ping-pong, which spins.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(main);

#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod debug;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod spi;
#[cfg(target_os = "none")]
mod timers;

#[cfg(target_os = "none")]
fn main(dtb: usize) -> ! {
    guests::println!("conformance: start");
    let mut t = report::Tally::default();
    let Some(cpus) = gic::setup(&mut t) else {
        t.summary()
    };
    gic::checks(&mut t, cpus);
    timers::level_resampled(&mut t);
    timers::rates(&mut t);
    spi::level_after_eoi(&mut t);
    cpu::id_registers_usable(&mut t);
    cpu::instruction_abort(&mut t, dtb);
    let role = debug::role(dtb);
    debug::registers_kept(&mut t, role);
    debug::state_isolated(&mut t, role);
    gic::no_unexpected_interrupts(&mut t);
    t.summary()
}
