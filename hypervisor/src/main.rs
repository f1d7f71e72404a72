//! blink: an EL2 hypervisor for maintenance without downtime.
//!
//! The folders are layers; each imports only the ones below it (see
//! docs/architecture.md, and `../shared/tools/check-layers` to check it):
//!
//! - `arch` (AArch64 EL2: vectors, MMU, GIC, timers, contexts) and `drivers`
//!   (the devices the hypervisor drives itself: UART, PSCI firmware);
//! - `vcpu`: the mechanism: VMs, vCPUs and their lifecycle, the run loop,
//!   exit and interrupt dispatch;
//! - `services` (console, shell, the control verbs) and `reload` (the warm
//!   reload, old image's side and new image's side).
//!
//! This file and the others at the top (`boot`, `upcalls`, `heap`) are the
//! composition root: the init order, the wiring of the layers, the panic
//! handler. Portable logic (decoding, emulation models, configuration,
//! handoff format) lives in the host-tested `vmm` crate.
#![no_std]
#![no_main]

extern crate alloc;

/// Print a hypervisor line on the console: `[hv] ` + text. It goes through
/// the `log` facade (level Info prints without a tag), so that every layer
/// can print without importing the console above it.
macro_rules! hvprintln {
    ($($arg:tt)*) => {
        ::log::info!($($arg)*)
    };
}

mod arch;
mod board;
mod boot;
mod drivers;
mod heap;
mod reload;
mod services;
mod upcalls;
mod vcpu;

/// This build's version string, as written into image slot headers and the
/// handoff block (`BLINK_BUILD_TAG` at build time adds a suffix).
pub const VERSION: &str = concat!("blink ", env!("BLINK_VERSION"));

use ::core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    use ::core::fmt::Write;
    let _ = write!(
        drivers::uart::EmergencyWriter,
        "\r\n[hv] PANIC on cpu {}: {}\r\n",
        arch::aarch64::sysreg::cpu_index(),
        info
    );
    // A trial image panicking in its warm entry hands the VMs back to the
    // previous image (returns only if it is not one, or with why not).
    if let Some(why) = reload::revert::on_panic() {
        let _ = write!(
            drivers::uart::EmergencyWriter,
            "[hv] trial: cannot hand the VMs back: {}\r\n",
            why
        );
    }
    boot::halt()
}
