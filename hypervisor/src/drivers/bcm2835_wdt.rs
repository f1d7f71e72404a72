//! Resetting a BCM2835-family SoC (the Raspberry Pi 4's BCM2711 included)
//! through the watchdog of its power management block: a short timeout in
//! PM_WDOG, "full reset" as the watchdog's action in PM_RSTC. Every write
//! to the block carries its password in bits 31:24. The offsets and values
//! are those of Linux's bcm2835_wdt driver (its restart handler); QEMU's
//! bcm2835_powermgt model resets the machine on the same write.
const PM_RSTC: usize = 0x1c;
const PM_WDOG: usize = 0x24;
const PM_PASSWORD: u32 = 0x5a00_0000;
/// PM_WDOG's timeout field (ticks of about 16 us).
const PM_WDOG_TIME_SET: u32 = 0x000f_ffff;
/// PM_RSTC without its WRCFG field (bits 5:4), and WRCFG = full reset.
const PM_RSTC_WRCFG_CLR: u32 = 0xffff_ffcf;
const PM_RSTC_WRCFG_FULL_RESET: u32 = 0x0000_0020;
/// Ticks until the reset: short, long enough for the writes to land.
const TIMEOUT_TICKS: u32 = 10;

/// The two writes that reset the machine, as (address, value), for code
/// that runs with the MMU off and cannot call this driver (the holding
/// pen's watch, reload.S). PM_RSTC's other bits are read now and kept.
///
/// # Safety
/// `base` must be the PM block, mapped as device memory.
pub unsafe fn reset_writes(base: usize) -> [(u64, u32); 2] {
    // SAFETY: the caller guarantees the block is mapped; reading PM_RSTC
    // has no side effect.
    let rstc = unsafe { core::ptr::read_volatile((base + PM_RSTC) as *const u32) };
    [
        (
            (base + PM_WDOG) as u64,
            PM_PASSWORD | (TIMEOUT_TICKS & PM_WDOG_TIME_SET),
        ),
        (
            (base + PM_RSTC) as u64,
            PM_PASSWORD | (rstc & PM_RSTC_WRCFG_CLR) | PM_RSTC_WRCFG_FULL_RESET,
        ),
    ]
}

/// Arm the watchdog to reset the machine within a few hundred microseconds
/// and wait for it. Returns only if nothing happened (then the caller says
/// so): after about a second.
///
/// # Safety
/// `base` must be the PM block, mapped as device memory.
pub unsafe fn restart(base: usize, mut spin_a_while: impl FnMut() -> bool) {
    let reg = |off: usize| (base + off) as *mut u32;
    // SAFETY: the caller guarantees the block is mapped; these are the
    // block's documented registers, written with its password.
    unsafe {
        core::ptr::write_volatile(
            reg(PM_WDOG),
            PM_PASSWORD | (TIMEOUT_TICKS & PM_WDOG_TIME_SET),
        );
        let rstc = core::ptr::read_volatile(reg(PM_RSTC));
        core::ptr::write_volatile(
            reg(PM_RSTC),
            PM_PASSWORD | (rstc & PM_RSTC_WRCFG_CLR) | PM_RSTC_WRCFG_FULL_RESET,
        );
    }
    while spin_a_while() {
        core::hint::spin_loop();
    }
}
