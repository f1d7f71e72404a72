//! 32-bit device register access for the fixed VM layout.
//!
//! Only the runtime's drivers call these, and only with addresses inside the
//! device windows of the guest-physical layout (PL011, GICD, GICC, GICR), which
//! the identity map (`boot.rs`) maps as Device memory.

pub(crate) fn read32(addr: usize) -> u32 {
    // SAFETY: callers pass a 4-byte aligned register address of a device
    // window of the VM layout; reads of those registers have no memory-safety
    // effects on Rust-visible memory.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

pub(crate) fn write32(addr: usize, value: u32) {
    // SAFETY: as for `read32`; device registers are not Rust-visible memory.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}
