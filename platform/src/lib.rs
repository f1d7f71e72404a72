//! Boards are data.
//!
//! The hypervisor learns almost everything from the device tree it is given
//! (memory, CPUs, GIC, UART, PSCI). A board folder holds only what is needed
//! before a device tree has been parsed, or what a device tree does not say:
//! where the early console is (so a missing or malformed tree can still be
//! reported), where the image is linked and what memory the hypervisor keeps
//! for itself, and how secondary CPUs are started.
#![no_std]

/// How this board starts secondary CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuStart {
    /// PSCI CPU_ON through the conduit named in the device tree.
    Psci,
    /// Spin table: write the entry point to a per-CPU release address.
    SpinTable,
}

/// Static description of a board.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    pub name: &'static str,
    /// PL011 used before the device tree is parsed (and for fatal errors).
    pub early_uart: usize,
    /// Physical region the hypervisor keeps for itself: its image, stacks,
    /// heap and page tables. Guests never get memory from here.
    pub hyp_region: (u64, u64),
    /// Where the image is loaded and linked (must match `link.ld`).
    pub load_address: u64,
    /// Inside `hyp_region`, never touched by the heap, kept across warm
    /// reloads: two image slots (slot 0 gets a pristine copy of the image
    /// booted cold, the other one a different image to upgrade into; see
    /// `vmm::image_slot`), the handoff block describing suspended VMs, and
    /// the page the copy-and-jump trampoline runs from while the image
    /// itself is overwritten.
    pub image_slots: [(u64, u64); 2],
    pub handoff: (u64, u64),
    pub trampoline: u64,
    pub cpu_start: CpuStart,
}

#[cfg(feature = "qemu-virt")]
#[path = "../qemu-virt/board.rs"]
mod board;

#[cfg(feature = "qemu-virt")]
pub use board::BOARD;
