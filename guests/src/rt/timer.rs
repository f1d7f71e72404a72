//! Generic timer: the virtual counter and timer (PPI INTID 27), and the EL1
//! physical counter and timer (PPI INTID 30).

use core::arch::asm;

/// INTID of the EL1 virtual timer (PPI 11).
pub const VIRTUAL_TIMER_INTID: u32 = 27;

/// INTID of the EL1 physical timer (PPI 14).
pub const PHYSICAL_TIMER_INTID: u32 = 30;

/// CNTx_CTL_EL0 bits.
pub const CTL_ENABLE: u64 = 1 << 0;
pub const CTL_IMASK: u64 = 1 << 1;
pub const CTL_ISTATUS: u64 = 1 << 2;

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

/// One of the two EL1 timers, for code that treats both alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Virtual,
    Physical,
}

impl Timer {
    pub const BOTH: [Timer; 2] = [Timer::Virtual, Timer::Physical];

    pub fn name(self) -> &'static str {
        match self {
            Timer::Virtual => "virtual",
            Timer::Physical => "physical",
        }
    }

    pub fn intid(self) -> u32 {
        match self {
            Timer::Virtual => VIRTUAL_TIMER_INTID,
            Timer::Physical => PHYSICAL_TIMER_INTID,
        }
    }

    /// The counter this timer compares against (CNTVCT_EL0 or CNTPCT_EL0).
    pub fn count(self) -> u64 {
        let c: u64;
        // SAFETY: reading a counter has no side effects.
        unsafe {
            match self {
                Timer::Virtual => asm!("isb", "mrs {}, cntvct_el0", out(reg) c,
                    options(nomem, nostack, preserves_flags)),
                Timer::Physical => asm!("isb", "mrs {}, cntpct_el0", out(reg) c,
                    options(nomem, nostack, preserves_flags)),
            }
        }
        c
    }

    /// CNTx_CTL_EL0.
    pub fn ctl(self) -> u64 {
        let v: u64;
        // SAFETY: reading a timer's control register has no side effects.
        unsafe {
            match self {
                Timer::Virtual => asm!("mrs {}, cntv_ctl_el0", out(reg) v,
                    options(nomem, nostack, preserves_flags)),
                Timer::Physical => asm!("mrs {}, cntp_ctl_el0", out(reg) v,
                    options(nomem, nostack, preserves_flags)),
            }
        }
        v
    }

    /// Writes CNTx_CTL_EL0 (ENABLE, IMASK).
    pub fn set_ctl(self, value: u64) {
        // SAFETY: writes only this EL1 timer.
        unsafe {
            match self {
                Timer::Virtual => asm!("msr cntv_ctl_el0, {}", "isb", in(reg) value,
                    options(nomem, nostack, preserves_flags)),
                Timer::Physical => asm!("msr cntp_ctl_el0, {}", "isb", in(reg) value,
                    options(nomem, nostack, preserves_flags)),
            }
        }
    }

    /// CNTx_CVAL_EL0.
    pub fn compare(self) -> u64 {
        let v: u64;
        // SAFETY: reading a compare register has no side effects.
        unsafe {
            match self {
                Timer::Virtual => asm!("mrs {}, cntv_cval_el0", out(reg) v,
                    options(nomem, nostack, preserves_flags)),
                Timer::Physical => asm!("mrs {}, cntp_cval_el0", out(reg) v,
                    options(nomem, nostack, preserves_flags)),
            }
        }
        v
    }

    /// Writes CNTx_CVAL_EL0: the timer fires once its counter reaches `value`.
    pub fn set_compare(self, value: u64) {
        // SAFETY: writes only this EL1 timer.
        unsafe {
            match self {
                Timer::Virtual => asm!("msr cntv_cval_el0, {}", "isb", in(reg) value,
                    options(nomem, nostack, preserves_flags)),
                Timer::Physical => asm!("msr cntp_cval_el0, {}", "isb", in(reg) value,
                    options(nomem, nostack, preserves_flags)),
            }
        }
    }
}
