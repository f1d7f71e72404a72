//! Cache maintenance by address range.

/// The cache writeback granule in bytes, from CTR_EL0.CWG (2 KiB, the
/// architectural maximum, when the CPU does not say).
pub fn writeback_granule() -> u64 {
    let cwg = (crate::read_sysreg!(ctr_el0) >> 24) & 0xf;
    if cwg == 0 {
        2048
    } else {
        4u64 << cwg
    }
}

/// Smallest data cache line, from CTR_EL0.DminLine.
fn dcache_line() -> u64 {
    4 << ((crate::read_sysreg!(ctr_el0) >> 16) & 0xf)
}

/// Clean `[base, base+len)` to the point of coherency, so that an observer
/// with caches off (a guest starting with its MMU off, a new image) sees
/// what was written through the cache.
pub fn clean_to_poc(base: u64, len: u64) {
    let line = dcache_line();
    let mut a = base & !(line - 1);
    while a < base + len {
        // SAFETY: cleaning a line does not change memory contents.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    super::sysreg::dsb_sy();
}

/// Clean and invalidate `[base, base+len)` to the point of coherency.
pub fn clean_invalidate_to_poc(base: u64, len: u64) {
    let line = dcache_line();
    let mut a = base & !(line - 1);
    while a < base + len {
        // SAFETY: clean+invalidate writes dirty data back; contents unchanged.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    super::sysreg::dsb_sy();
}

pub fn invalidate_icache() {
    // SAFETY: invalidating the instruction cache has no effect on data.
    unsafe {
        core::arch::asm!(
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
