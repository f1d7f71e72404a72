//! Minimal GIC driver for GICv2 and GICv3: enough to route one PPI (the
//! virtual timer) to the calling vCPU as a Group 1 IRQ, and to acknowledge
//! and end interrupts.
//!
//! Layout (same as QEMU `virt`): GICD 0x0800_0000; GICv2 CPU interface
//! 0x0801_0000; GICv3 redistributor of vCPU n at 0x080A_0000 + n * 0x20000.
//! The version comes from GICD_PIDR2.ArchRev, which sits at offset 0xFFE8 of
//! the 64 KiB GICv3 distributor frame but at 0xFE8 of the 4 KiB GICv2
//! distributor (QEMU's GICv2 aborts at 0xFFE8), so both are tried.

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

use super::{cpu_id, exception, mmio, timer};

pub const GICD_BASE: usize = 0x0800_0000;
pub const GICC_BASE: usize = 0x0801_0000;
pub const GICR_BASE: usize = 0x080a_0000;
pub const GICR_STRIDE: usize = 0x2_0000;

pub const GICD_CTLR: usize = 0x000;
pub const GICD_TYPER: usize = 0x004;
pub const GICD_ISENABLER: usize = 0x100;
pub const GICD_ICENABLER: usize = 0x180;
pub const GICD_IPRIORITYR: usize = 0x400;
pub const GICD_ITARGETSR: usize = 0x800;
pub const GICD_PIDR2: usize = 0xffe8;
pub const GICD_PIDR2_V2: usize = 0x0fe8;

const GICD_CTLR_RWP: u32 = 1 << 31;

const GICC_CTLR: usize = 0x00;
const GICC_PMR: usize = 0x04;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;

const GICR_WAKER: usize = 0x14;
const GICR_SGI_OFFSET: usize = 0x1_0000;
const GICR_IGROUPR0: usize = GICR_SGI_OFFSET + 0x080;
const GICR_ISENABLER0: usize = GICR_SGI_OFFSET + 0x100;
const GICR_ICENABLER0: usize = GICR_SGI_OFFSET + 0x180;
const GICR_ISPENDR0: usize = GICR_SGI_OFFSET + 0x200;
const GICR_ICPENDR0: usize = GICR_SGI_OFFSET + 0x280;
const GICD_ISPENDR: usize = 0x200;
const GICD_ICPENDR: usize = 0x280;
const GICR_IPRIORITYR: usize = GICR_SGI_OFFSET + 0x400;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

/// Priority given to enabled interrupts (anything below the 0xff mask works).
const PRIORITY: u8 = 0x80;
/// INTIDs 1020..1023 are special (spurious).
pub const SPURIOUS_FIRST: u32 = 1020;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u32 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// Why the GIC could not be set up.
#[derive(Clone, Copy, Debug)]
pub enum Error {
    /// GICD_PIDR2.ArchRev is neither 2 nor 3.
    UnknownVersion(u32),
    /// A register did not change state in time (name of the register).
    Timeout(&'static str),
    /// ICC_SRE_EL1.SRE stays 0: no system register interface.
    NoSystemRegisters,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::UnknownVersion(rev) => {
                write!(f, "unknown GIC architecture revision {rev} (GICD_PIDR2)")
            }
            Error::Timeout(reg) => write!(f, "timeout waiting for {reg}"),
            Error::NoSystemRegisters => write!(f, "ICC_SRE_EL1.SRE cannot be set"),
        }
    }
}

/// 0 = not initialised, otherwise the version number; read by ack/eoi.
static VERSION: AtomicU8 = AtomicU8::new(0);

/// Reads the GIC architecture version from GICD_PIDR2 bits [7:4].
pub fn detect() -> Result<Version, Error> {
    let arch_rev = |offset: usize| {
        // An abort here just means "not at this offset".
        exception::catch(|| mmio::read32(GICD_BASE + offset)).map_or(0, |pidr2| (pidr2 >> 4) & 0xf)
    };
    let rev = match arch_rev(GICD_PIDR2) {
        0 => arch_rev(GICD_PIDR2_V2),
        rev => rev,
    };
    match rev {
        2 => Ok(Version::V2),
        3 => Ok(Version::V3),
        rev => Err(Error::UnknownVersion(rev)),
    }
}

/// Polls `done` for up to 100 ms of counter time.
fn wait_for(what: &'static str, mut done: impl FnMut() -> bool) -> Result<(), Error> {
    let start = timer::counter();
    let limit = timer::ms_to_ticks(100).max(1);
    while !done() {
        if timer::counter().wrapping_sub(start) > limit {
            return Err(Error::Timeout(what));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Enables the distributor and the calling vCPU's CPU interface (all
/// priorities unmasked). Call once, on the vCPU that takes the interrupts.
pub fn init() -> Result<Version, Error> {
    let version = detect()?;
    match version {
        Version::V2 => {
            // EnableGrp0 | EnableGrp1 (both names exist with and without
            // security extensions).
            mmio::write32(GICD_BASE + GICD_CTLR, 0b11);
            mmio::write32(GICC_BASE + GICC_PMR, 0xff);
            // EnableGrp0 | EnableGrp1 | AckCtl, FIQEn = 0: both groups are
            // signalled as IRQ and acknowledged through GICC_IAR, whichever
            // group the hypervisor puts virtual interrupts in.
            mmio::write32(GICC_BASE + GICC_CTLR, 0b111);
        }
        Version::V3 => {
            // EnableGrp0/Grp1NS (bit 0), EnableGrp1(A) (bit 1), ARE (bit 4).
            mmio::write32(GICD_BASE + GICD_CTLR, 0b1_0011);
            wait_for("GICD_CTLR.RWP", || {
                mmio::read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP == 0
            })?;
            let rd = redistributor();
            let waker = mmio::read32(rd + GICR_WAKER);
            mmio::write32(rd + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
            wait_for("GICR_WAKER.ChildrenAsleep", || {
                mmio::read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0
            })?;
            // SAFETY: enables the ICC_* system register interface of this
            // vCPU and unmasks all priorities; no memory is involved.
            unsafe {
                asm!("msr icc_sre_el1, {}", "isb", in(reg) 0b111u64, options(nomem, nostack))
            };
            let sre: u64;
            // SAFETY: reading ICC_SRE_EL1 has no side effects.
            unsafe { asm!("mrs {}, icc_sre_el1", out(reg) sre, options(nomem, nostack)) };
            if sre & 1 == 0 {
                return Err(Error::NoSystemRegisters);
            }
            // SAFETY: priority mask and Group 1 enable of this vCPU only.
            unsafe {
                asm!("msr icc_pmr_el1, {}", "msr icc_igrpen1_el1, {}", "isb",
                    in(reg) 0xffu64, in(reg) 1u64, options(nomem, nostack));
            }
        }
    }
    VERSION.store(version.number() as u8, Ordering::SeqCst);
    Ok(version)
}

fn redistributor() -> usize {
    GICR_BASE + cpu_id() * GICR_STRIDE
}

/// Sets byte `intid` of a priority register array with a 32-bit
/// read-modify-write (byte accesses may not be emulated).
fn set_priority(array: usize, intid: u32) {
    let reg = array + (intid as usize / 4) * 4;
    let shift = (intid % 4) * 8;
    let value = mmio::read32(reg) & !(0xff << shift) | (u32::from(PRIORITY) << shift);
    mmio::write32(reg, value);
}

/// Enables private interrupt `intid` (< 32) for the calling vCPU as a Group 1
/// interrupt. Call after [`init`].
pub fn enable_ppi(intid: u32) {
    debug_assert!(intid < 32);
    if VERSION.load(Ordering::SeqCst) == 3 {
        let rd = redistributor();
        // Group 1: with ICC_IGRPEN1_EL1 only Group 1 is enabled, and in a
        // single-security-state GIC Group 0 would be signalled as FIQ.
        mmio::write32(
            rd + GICR_IGROUPR0,
            mmio::read32(rd + GICR_IGROUPR0) | (1 << intid),
        );
        set_priority(rd + GICR_IPRIORITYR, intid);
        mmio::write32(rd + GICR_ISENABLER0, 1 << intid);
    } else {
        set_priority(GICD_BASE + GICD_IPRIORITYR, intid);
        mmio::write32(GICD_BASE + GICD_ISENABLER, 1 << intid);
    }
}

/// Disables private interrupt `intid` (< 32) for the calling vCPU (it can
/// still become pending, but is not signalled).
pub fn disable_ppi(intid: u32) {
    debug_assert!(intid < 32);
    if VERSION.load(Ordering::SeqCst) == 3 {
        mmio::write32(redistributor() + GICR_ICENABLER0, 1 << intid);
    } else {
        mmio::write32(GICD_BASE + GICD_ICENABLER, 1 << intid);
    }
}

/// Whether private interrupt `intid` (< 32) of the calling vCPU is pending
/// (GICD/GICR_ISPENDR0; for a level-sensitive interrupt the GIC reports the
/// line's level or'ed with the pending latch).
pub fn ppi_pending(intid: u32) -> bool {
    debug_assert!(intid < 32);
    let reg = if VERSION.load(Ordering::SeqCst) == 3 {
        redistributor() + GICR_ISPENDR0
    } else {
        GICD_BASE + GICD_ISPENDR
    };
    mmio::read32(reg) & (1 << intid) != 0
}

/// Clears the pending latch of private interrupt `intid` (< 32).
pub fn clear_ppi_pending(intid: u32) {
    debug_assert!(intid < 32);
    let reg = if VERSION.load(Ordering::SeqCst) == 3 {
        redistributor() + GICR_ICPENDR0
    } else {
        GICD_BASE + GICD_ICPENDR
    };
    mmio::write32(reg, 1 << intid);
}

/// Acknowledges the highest-priority pending interrupt; returns the raw IAR
/// value (INTID in bits [9:0] — pass the whole value to [`eoi`]).
pub fn ack() -> u32 {
    if VERSION.load(Ordering::Relaxed) == 3 {
        let iar: u64;
        // SAFETY: acknowledging changes only GIC state, which is the intent.
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nomem, nostack)) };
        iar as u32
    } else {
        mmio::read32(GICC_BASE + GICC_IAR)
    }
}

/// INTID part of an IAR value.
pub fn intid(iar: u32) -> u32 {
    iar & 0x3ff
}

/// Ends (priority drop + deactivate) the interrupt `iar` returned by [`ack`].
pub fn eoi(iar: u32) {
    if VERSION.load(Ordering::Relaxed) == 3 {
        // SAFETY: completes the interrupt in the GIC only.
        unsafe {
            asm!("msr icc_eoir1_el1, {}", "isb", in(reg) u64::from(iar), options(nomem, nostack))
        };
    } else {
        mmio::write32(GICC_BASE + GICC_EOIR, iar);
    }
}

/// Sends SGI `intid` (< 16) to the calling vCPU itself. On GICv3 this is a
/// write of ICC_SGI1R_EL1 (which a hypervisor traps); on GICv2 a write of
/// GICD_SGIR (an emulated distributor access).
pub fn send_sgi_to_self(intid: u32) {
    debug_assert!(intid < 16);
    if VERSION.load(Ordering::Relaxed) == 3 {
        // Target list bit 0 = Aff0 0 within Aff1..3 = 0; vCPU ids are Aff0.
        let aff0 = crate::rt::cpu_id() as u64 & 0xf;
        let v = (u64::from(intid) << 24) | (1 << aff0);
        // SAFETY: generates an interrupt for this vCPU only.
        unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nomem, nostack)) };
    } else {
        // TargetListFilter = 0b10: this CPU only.
        mmio::write32(GICD_BASE + 0xf00, (2 << 24) | intid);
    }
}

/// Enables shared interrupt `intid` (>= 32), Group 1, delivered to vCPU 0.
pub fn enable_spi(intid: u32) {
    debug_assert!(intid >= 32);
    let word = (intid / 32) as usize * 4;
    let bit = 1 << (intid % 32);
    set_priority(GICD_BASE + GICD_IPRIORITYR, intid);
    if VERSION.load(Ordering::SeqCst) == 3 {
        mmio::write32(
            GICD_BASE + 0x080 + word,
            mmio::read32(GICD_BASE + 0x080 + word) | bit,
        );
        // GICD_IROUTER<n>: Aff0 = 0, IRM = 0.
        let router = GICD_BASE + 0x6000 + intid as usize * 8;
        mmio::write32(router, 0);
        mmio::write32(router + 4, 0);
    } else {
        // ITARGETSR: byte per interrupt; CPU interface 0. Read-modify-write
        // of the whole word, as with priorities.
        let reg = GICD_BASE + GICD_ITARGETSR + (intid as usize & !3);
        let shift = (intid % 4) * 8;
        mmio::write32(reg, mmio::read32(reg) & !(0xff << shift) | (1 << shift));
    }
    mmio::write32(GICD_BASE + GICD_ISENABLER + word, bit);
}

/// Sends SGI `intid` (< 16) to the vCPU with MPIDR_EL1.Aff0 = `cpu` (< 16;
/// Aff1..3 = 0, as in every VM layout; on GICv2 `cpu` is the CPU interface
/// number, < 8). Earlier stores are made visible first (`dsb ishst`), so
/// the target sees them once it takes the interrupt. GICv3: a write of
/// ICC_SGI1R_EL1; GICv2: of GICD_SGIR with TargetListFilter = 0.
pub fn send_sgi(intid: u32, cpu: usize) {
    debug_assert!(intid < 16 && cpu < 16);
    // SAFETY: a barrier only.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) };
    if VERSION.load(Ordering::Relaxed) == 3 {
        let v = (u64::from(intid) << 24) | (1 << (cpu & 0xf));
        // SAFETY: generates an interrupt for the target vCPU only.
        unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nomem, nostack)) };
    } else {
        mmio::write32(GICD_BASE + 0xf00, (1 << (16 + (cpu & 7))) | intid);
    }
}

/// GICv2 only: the CPUID field (bits [12:10]) of an SGI's IAR value, the
/// CPU interface that sent it. GICv3 IAR values carry no source.
pub fn sgi_source(iar: u32) -> u32 {
    (iar >> 10) & 7
}

/// Reads the 32-bit distributor register at `offset` from GICD_BASE
/// (`offset` 4-byte aligned, inside the distributor's frame).
pub fn dist_read(offset: usize) -> u32 {
    debug_assert!(offset.is_multiple_of(4) && offset < 0x1_0000);
    mmio::read32(GICD_BASE + offset)
}

/// Writes the 32-bit distributor register at `offset` from GICD_BASE.
pub fn dist_write(offset: usize, value: u32) {
    debug_assert!(offset.is_multiple_of(4) && offset < 0x1_0000);
    mmio::write32(GICD_BASE + offset, value)
}

/// Whether this CPU implements the GICv3 system register interface
/// (ID_AA64PFR0_EL1.GIC, bits [27:24], non-zero): what the CPU says, not
/// what the distributor says, so a check can compare the two.
pub fn cpu_has_gicv3_sysregs() -> bool {
    let pfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe {
        asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack, preserves_flags))
    };
    (pfr0 >> 24) & 0xf != 0
}
