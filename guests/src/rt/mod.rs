//! Guest runtime: boot, exceptions, console, PSCI, timer, GIC and device tree.
//!
//! Boot flow (see `boot.rs`): `_start` enables FP/SIMD, installs the vector
//! table and turns on the MMU with a static identity map, picks this vCPU's
//! stack from MPIDR_EL1.Aff0, clears BSS and calls [`boot_main`], which calls
//! the binary's `main` registered with [`entry!`](crate::entry).

pub mod boot;
pub mod console;
pub mod dtb;
pub mod exception;
pub mod gic;
pub mod psci;
pub mod timer;

mod mmio;

use core::arch::asm;

/// Largest number of vCPUs the runtime has stacks for (index = MPIDR_EL1.Aff0);
/// must match `__max_cpus` in `link.ld`.
pub const MAX_CPUS: usize = 8;

/// Guest-physical RAM base of every VM (and of QEMU `virt`).
pub const RAM_BASE: u64 = 0x4000_0000;

extern "Rust" {
    /// Defined by the binary through [`entry!`].
    fn __guest_main(dtb: usize) -> !;
}

/// First Rust code on the boot vCPU (called from `_start` with x0 = DTB).
extern "C" fn boot_main(dtb: usize) -> ! {
    // Let injected SErrors (asynchronous aborts) reach our handler so that they
    // are printed rather than silently staying pending.
    // SAFETY: only changes PSTATE.A; the SError vector is installed.
    unsafe { asm!("msr daifclr, #4", options(nomem, nostack)) };
    // SAFETY: `entry!` defines `__guest_main` with exactly this signature.
    unsafe { __guest_main(dtb) }
}

/// This vCPU's index: MPIDR_EL1.Aff0 (the VM layout numbers vCPUs that way).
#[inline]
pub fn cpu_id() -> usize {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack, preserves_flags)) };
    (mpidr & 0xff) as usize
}

/// Stops this vCPU for good: interrupts masked, `wfi` forever.
pub fn halt() -> ! {
    // SAFETY: masking interrupts and waiting has no memory effects.
    unsafe { asm!("msr daifset, #0xf", options(nomem, nostack)) };
    loop {
        wait_for_interrupt();
    }
}

/// `wfi`: sleeps until an interrupt is pending (also when masked by PSTATE).
#[inline]
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` only waits.
    unsafe { asm!("wfi", options(nomem, nostack, preserves_flags)) };
}

/// Unmasks IRQs (PSTATE.I = 0).
pub fn enable_irqs() {
    // SAFETY: the IRQ vector is installed; the handler saves all state it uses.
    unsafe { asm!("msr daifclr, #2", options(nomem, nostack)) };
}

/// Runs `f` with IRQs masked, restoring the previous mask afterwards.
pub fn without_irqs<R>(f: impl FnOnce() -> R) -> R {
    let daif: u64;
    // SAFETY: reads DAIF and masks IRQs; acts as a compiler barrier so `f`'s
    // accesses are not moved out of the masked region.
    unsafe { asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nostack)) };
    let r = f();
    // SAFETY: restores the saved mask bits.
    unsafe { asm!("msr daif, {}", in(reg) daif, options(nostack)) };
    r
}

/// Address of the first byte after the image, including BSS and stacks.
pub fn image_end() -> usize {
    extern "C" {
        static __image_end: u8;
    }
    core::ptr::addr_of!(__image_end) as usize
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::println!("PANIC: cpu {}: {}", cpu_id(), info);
    halt()
}
