//! One file per board.
pub mod qemu_virt;
pub mod rpi4;
