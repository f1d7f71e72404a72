//! Shared runtime of the test guests.
//!
//! The guests are tiny bare-metal programs that run at EL1 inside a VM of the
//! hypervisor (or directly on QEMU `virt` without `virtualization=on`, which has
//! the same guest-physical layout) and print contract lines on the PL011 that
//! integration tests assert on. Everything hardware-specific lives in [`rt`];
//! the binaries in `src/bin/` only contain the test logic.
//!
//! The runtime only exists for bare-metal aarch64; on the host only the
//! portable parts (the device tree reader, unit-tested there) are built, so
//! that workspace-wide host builds (`cargo clippy --workspace`) work.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod dtb;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod rt;

/// Defines the guest's entry point: `entry!(path::to::main)` where
/// `fn main(dtb: usize) -> !` receives the device tree address from x0
/// (the runtime, `rt`, calls it).
/// Host builds of the binary (e.g. `cargo clippy --workspace`) get an
/// empty `main` instead, as the guest code only exists for the target.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        extern "Rust" fn __guest_main(dtb: usize) -> ! {
            let main: fn(usize) -> ! = $main;
            main(dtb)
        }

        #[cfg(not(target_os = "none"))]
        fn main() {}
    };
}
