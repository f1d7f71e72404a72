//! Generic timer: virtual counter and virtual timer (PPI INTID 27).

use core::arch::asm;

/// INTID of the EL1 virtual timer (PPI 11).
pub const VIRTUAL_TIMER_INTID: u32 = 27;

/// Counter frequency in Hz (CNTFRQ_EL0).
pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack, preserves_flags)) };
    f
}

/// Current virtual count (CNTVCT_EL0). The ISB keeps the read from being
/// performed early (out of order) relative to preceding instructions.
pub fn counter() -> u64 {
    let c: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) c, options(nomem, nostack, preserves_flags))
    };
    c
}

/// Converts counter ticks to microseconds (0 if the frequency is unknown).
pub fn ticks_to_us(ticks: u64) -> u64 {
    match frequency() {
        0 => 0,
        f => (u128::from(ticks) * 1_000_000 / u128::from(f)) as u64,
    }
}

/// Converts milliseconds to counter ticks.
pub fn ms_to_ticks(ms: u64) -> u64 {
    (u128::from(frequency()) * u128::from(ms) / 1000) as u64
}

/// Busy-waits for `ticks` of virtual-counter time.
pub fn delay_ticks(ticks: u64) {
    let start = counter();
    while counter().wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Busy-waits for `ms` milliseconds of virtual-counter time.
pub fn delay_ms(ms: u64) {
    delay_ticks(ms_to_ticks(ms));
}

/// Programs the virtual timer to fire `ticks` from now (CNTV_TVAL_EL0).
pub fn set_virtual_timer_in(ticks: u64) {
    // SAFETY: writes only the EL1 virtual timer.
    unsafe {
        asm!("msr cntv_tval_el0, {}", "isb", in(reg) ticks, options(nomem, nostack, preserves_flags))
    };
}

/// Compare value of the virtual timer (CNTV_CVAL_EL0).
pub fn virtual_timer_compare() -> u64 {
    let v: u64;
    // SAFETY: reading the compare register has no side effects.
    unsafe { asm!("mrs {}, cntv_cval_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Programs the virtual timer to fire when the virtual count reaches `value`.
pub fn set_virtual_timer_compare(value: u64) {
    // SAFETY: writes only the EL1 virtual timer.
    unsafe {
        asm!("msr cntv_cval_el0, {}", "isb", in(reg) value, options(nomem, nostack, preserves_flags))
    };
}

/// Enables (unmasked) or disables the virtual timer (CNTV_CTL_EL0).
pub fn enable_virtual_timer(enable: bool) {
    let ctl: u64 = if enable { 1 } else { 0 }; // ENABLE=1, IMASK=0
                                               // SAFETY: writes only the EL1 virtual timer.
    unsafe {
        asm!("msr cntv_ctl_el0, {}", "isb", in(reg) ctl, options(nomem, nostack, preserves_flags))
    };
}
