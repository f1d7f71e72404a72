//! Guest exits counted by kind, per physical CPU, for the shell's `exits`
//! command (and `cargo xtask bench linux`, which turns two readings into
//! exits per second).
//!
//! Counting sits on the exit path, so it is one relaxed `fetch_add` on a
//! counter only this CPU writes (no contention, no ordering needed: a reader
//! only wants totals that are at most a few exits stale). Each CPU's
//! counters fill their own cache lines so CPUs never share one.
use super::MAX_CPUS;
use crate::arch::aarch64::sysreg::{counter, counter_freq, cpu_index};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

/// What one count is for. The first group are guest exits (one per return
/// from the guest); the `Pirq*` group are physical interrupts the hypervisor
/// acknowledged, by source, whether they made the guest exit or woke the
/// CPU while it waited at EL2 for a vCPU's WFI or in the idle loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Kind {
    /// HVC with a PSCI function ID.
    HvcPsci,
    /// Any other HVC (SMCCC version/features queries, unknown calls).
    HvcOther,
    /// Trapped SMC (HCR_EL2.TSC), whatever the function.
    Smc,
    /// Write to ICC_SGI1R_EL1: a guest IPI on GICv3.
    SysregSgi,
    /// Any other trapped system register access (undefined injected).
    SysregOther,
    Wfi,
    Wfe,
    /// Emulated distributor access.
    MmioGicd,
    /// Emulated redistributor access (GICv3).
    MmioGicr,
    /// Emulated PL011 access.
    MmioUart,
    /// Data abort not emulated: an abort was injected into the guest.
    AbortInjected,
    /// Instruction abort (an abort injected, or the VM stopped if the
    /// fetch was its own abort vector).
    InstrAbort,
    /// A physical interrupt made the guest exit.
    Irq,
    SError,
    /// Any other exception class (undefined injected).
    Other,
    /// EL2 physical timer: the end of a time slice, or a waiting vCPU's
    /// virtual-timer deadline.
    PirqHypTimer,
    /// SGI 1: another CPU kicked this one.
    PirqKick,
    /// vGIC maintenance interrupt (list registers ran empty / EOI).
    PirqMaint,
    /// The running vCPU's virtual timer (PPI 27), forwarded to the guest.
    PirqVtimer,
    /// The console UART (input).
    PirqUart,
    /// A passed-through device's interrupt.
    PirqPassthrough,
    /// Anything else (reported as unexpected).
    PirqOther,
}

const KINDS: usize = Kind::PirqOther as usize + 1;
/// Guest exits are the kinds before this one.
const FIRST_PIRQ: usize = Kind::PirqHypTimer as usize;

/// Names in the `exits` line, in `Kind` order. Keep in step with
/// `xtask/src/bench/linux.rs` and docs/architecture.md.
const NAMES: [&str; KINDS] = [
    "hvc_psci",
    "hvc_other",
    "smc",
    "sysreg_sgi",
    "sysreg_other",
    "wfi",
    "wfe",
    "mmio_gicd",
    "mmio_gicr",
    "mmio_uart",
    "abort_injected",
    "iabt",
    "irq",
    "serror",
    "other",
    "pirq_hyptimer",
    "pirq_kick",
    "pirq_maint",
    "pirq_vtimer",
    "pirq_uart",
    "pirq_passthrough",
    "pirq_other",
];

#[repr(align(64))]
struct PerCpu([AtomicU64; KINDS]);

static COUNTS: [PerCpu; MAX_CPUS] =
    [const { PerCpu([const { AtomicU64::new(0) }; KINDS]) }; MAX_CPUS];

/// Count one `kind` on this CPU.
#[inline(always)]
pub fn count(kind: Kind) {
    if let Some(c) = COUNTS.get(cpu_index()) {
        c.0[kind as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// PSCI function IDs: SMC32 0x8400_00xx and SMC64 0xC400_00xx (PSCI
/// reserves 0x00..0x1F of both ranges).
pub fn is_psci(fid: u64) -> bool {
    let fid = fid as u32;
    (fid & !0x1f) == 0x8400_0000 || (fid & !0x1f) == 0xC400_0000
}

/// Print one line: the counter and its frequency (so two readings give a
/// rate), the total of guest exits, then every count summed over all CPUs
/// since this image started (a warm reload starts from zero).
pub fn print() {
    hvprintln!("{}", report());
}

/// The line [`print`] prints (without the `[hv] ` tag).
pub fn report() -> alloc::string::String {
    let mut sums = [0u64; KINDS];
    for cpu in &COUNTS {
        for (s, c) in sums.iter_mut().zip(cpu.0.iter()) {
            *s += c.load(Ordering::Relaxed);
        }
    }
    let total: u64 = sums[..FIRST_PIRQ].iter().sum();
    let mut line = alloc::string::String::with_capacity(400);
    let _ = write!(
        line,
        "exits at counter {} freq {}: total={}",
        counter(),
        counter_freq(),
        total
    );
    for (name, n) in NAMES.iter().zip(sums) {
        let _ = write!(line, " {}={}", name, n);
    }
    line
}
