//! Access to system registers the `aarch64-cpu` crate does not model (or
//! that we read in bulk), by name.

/// Read a system register: `read_sysreg!(esr_el2)` or by encoding,
/// `read_sysreg!("s3_4_c12_c11_1")`.
#[macro_export]
macro_rules! read_sysreg {
    ($reg:tt) => {{
        let v: u64;
        // SAFETY: reading a system register has no memory effects; the
        // caller only names registers readable at EL2.
        unsafe {
            core::arch::asm!(concat!("mrs {}, ", $crate::sysreg_name!($reg)), out(reg) v,
                options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// Write a system register (see `read_sysreg!`).
#[macro_export]
macro_rules! write_sysreg {
    ($reg:tt, $val:expr) => {{
        let v: u64 = $val;
        // SAFETY: the caller is responsible for the architectural effect of
        // the write; it has no effect on memory Rust knows about.
        unsafe {
            core::arch::asm!(concat!("msr ", $crate::sysreg_name!($reg), ", {}"), in(reg) v,
                options(nostack, preserves_flags))
        };
    }};
}

#[macro_export]
macro_rules! sysreg_name {
    ($reg:ident) => {
        stringify!($reg)
    };
    ($reg:literal) => {
        $reg
    };
}

#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Logical index of the running physical CPU (set up by boot.S).
#[inline(always)]
pub fn cpu_index() -> usize {
    read_sysreg!(tpidr_el2) as usize
}

/// Physical counter value.
#[inline(always)]
pub fn counter() -> u64 {
    isb();
    read_sysreg!(cntpct_el0)
}

#[inline(always)]
pub fn counter_freq() -> u64 {
    read_sysreg!(cntfrq_el0)
}

/// Wait for an event (SEV from another CPU, or the EL2 event stream that
/// `boot` enables, so a wait never outlives its deadline check by long).
/// Under QEMU's round-robin TCG this also lets the other CPUs run.
pub fn wfe() {
    // SAFETY: waits for an event; no memory or register effects.
    unsafe { core::arch::asm!("wfe", options(nostack, preserves_flags)) };
}

/// Wake every CPU waiting in WFE (after the store it waits for is visible).
pub fn sev() {
    // SAFETY: signals an event; the DSB orders earlier stores before it.
    unsafe { core::arch::asm!("dsb ish", "sev", options(nostack, preserves_flags)) };
}

/// Wake every CPU waiting in WFE after every earlier memory access and
/// cache maintenance, in any shareability domain, has completed (CPUs with
/// their caches off read what was written).
pub fn dsb_sy_sev() {
    // SAFETY: a barrier and an event; no memory effects of their own.
    unsafe { core::arch::asm!("dsb sy", "sev", options(nostack, preserves_flags)) };
}

pub fn wfi() {
    // SAFETY: waits for an interrupt (masked interrupts still wake it).
    unsafe { core::arch::asm!("wfi", options(nostack, preserves_flags)) };
}
