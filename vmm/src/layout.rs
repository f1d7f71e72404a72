//! The machine every VM sees (guest-physical addresses, "IPA").
//!
//! It mirrors QEMU's `virt` board so that an unmodified Linux kernel and the
//! test guests find their devices where they expect them. The hypervisor
//! generates each guest's device tree from these constants.

/// Emulated GIC distributor (trapped: never mapped in stage 2).
pub const GICD_BASE: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
/// GICv2 CPU interface: the physical GICV page(s) are mapped here.
pub const GICC_BASE: u64 = 0x0801_0000;
pub const GICC_SIZE: u64 = 0x2000;
/// GICv3 redistributors (emulated): one 128 KiB frame pair per vCPU.
pub const GICR_BASE: u64 = 0x080A_0000;
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Emulated PL011 console.
pub const UART_BASE: u64 = 0x0900_0000;
pub const UART_SIZE: u64 = 0x1000;
/// SPI number of the console UART (INTID = 32 + 1).
pub const UART_SPI: u32 = 1;
/// Guest RAM starts here.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Virtual timer PPI (INTID 27) and non-secure physical timer PPI (INTID 30).
pub const VTIMER_INTID: u32 = 27;
pub const PTIMER_INTID: u32 = 30;
/// Most vCPUs one VM may have (bounded by the redistributor window).
pub const MAX_VCPUS: usize = 8;
