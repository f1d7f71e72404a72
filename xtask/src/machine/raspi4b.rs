//! QEMU `raspi4b` (QEMU >= 9.0): 4 Cortex-A72, 2 GiB, GIC-400; the board
//! in `platform` is the Raspberry Pi 4's, whose firmware loads the image
//! at the same address. QEMU's own boot stub puts the secondaries on the
//! spin table (0xd8 + 8n) and enters a raw `-kernel` image at EL2, with
//! x0 = the `-dtb` it was given (the machine makes no tree of its own:
//! Debian's `bcm2711-rpi-4-b.dtb` is used, see [`crate::rpi4_dtb`]).
//!
//! Measured on QEMU 10.0.2 (`info roms`, the tree it passes): the raw
//! image at 0x8_0000, the tree at 0x0800_0000, `/memory` = 0..0x3c00_0000
//! (the VideoCore's share above is not RAM to the ARM), a `/memreserve/`
//! of the stub's page 0..0x1000; the pcie, rng200, thermal and genet nodes
//! disabled.

use platform::Board;

/// The `platform` board this machine is.
pub const BOARD: &Board = &platform::boards::rpi4::BOARD;

/// QEMU's name of the machine (`-M raspi4b`).
pub const QEMU_MACHINE: &str = "raspi4b";

/// The GIC-400 is a GICv2.
pub const GIC_VERSIONS: [u32; 1] = [2];

/// The model has 4 CPUs and 2 GiB, neither can be changed.
pub const CPUS: u32 = 4;
pub const MEM_MIB: u64 = 2048;

/// Start of RAM; RAM the device tree describes ends at [`RAM_END`].
pub const RAM_BASE: u64 = 0;
pub const RAM_END: u64 = 0x3c00_0000;

/// Where QEMU loads the raw `-kernel` image: the board's load address.
pub const LOAD_ADDRESS: u64 = BOARD.load_address;

/// Where QEMU places the device tree (RAM base + 128 MiB, as on `virt`).
pub const DTB_ADDRESS: u64 = 0x0800_0000;

/// First module address: 16 MiB above the device tree.
pub const MODULE_BASE: u64 = 0x0900_0000;

const _: () = {
    assert!(LOAD_ADDRESS == RAM_BASE + 0x8_0000);
    assert!(DTB_ADDRESS >= BOARD.hyp_region.0 + BOARD.hyp_region.1);
    assert!(MODULE_BASE > DTB_ADDRESS);
    assert!(BOARD.max_cpus as u32 == CPUS);
};

/// The `-M` option (the machine has no `virtualization=` or GIC option:
/// it always starts a raw image at EL2).
pub fn machine_option() -> String {
    QEMU_MACHINE.to_string()
}
