//! Portable logic of the hypervisor.
//!
//! Everything here is `no_std` + `alloc` and builds for the host, so it is
//! unit tested there; the `hypervisor` crate supplies the hardware glue
//! (system registers, MMIO, exception entry). No unsafe code, but for the
//! CRC32 instructions in `crc32` (allowed there alone).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod console;
pub mod crc32;
pub mod dtb;
pub mod esr;
pub mod fdt_writer;
pub mod guest_fdt;
pub mod handoff;
pub mod idregs;
pub mod image_slot;
pub mod inject;
pub mod layout;
pub mod log_ring;
pub mod maint;
pub mod memory;
pub mod psci;
pub mod ptimer;
pub mod stage2;
pub mod vgic;
pub mod vpl011;
