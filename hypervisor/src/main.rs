//! blink: an EL2 hypervisor for maintenance without downtime.
//!
//! `arch` is the AArch64 EL2 layer (boot, vectors, MMU, GIC, contexts),
//! `core` the hypervisor proper (VMs, vCPUs, run loop, exits, console),
//! `drivers` the few devices the hypervisor drives itself. Portable logic
//! (decoding, emulation models, configuration) lives in the `vmm` crate.
#![no_std]
#![no_main]

extern crate alloc;

/// Print a hypervisor line on the console: `[hv] ` + text.
macro_rules! hvprintln {
    ($($arg:tt)*) => {
        $crate::core::console::write_fmt(format_args!("[hv] {}\n", format_args!($($arg)*)))
    };
}

mod core;
mod arch;
mod drivers;

use ::core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    use ::core::fmt::Write;
    let _ = write!(
        crate::core::console::EmergencyWriter,
        "\r\n[hv] PANIC on cpu {}: {}\r\n",
        arch::aarch64::sysreg::cpu_index(),
        info
    );
    crate::core::boot::halt()
}
