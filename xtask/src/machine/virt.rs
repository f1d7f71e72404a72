//! QEMU `virt`: the `-M` option, its GIC versions, where RAM starts, where
//! QEMU loads the raw image and the device tree, where the guest modules
//! go; the board in `platform` it is.

use platform::Board;

/// The `platform` board this machine is: image slots, load address and
/// hypervisor region come from there.
pub const BOARD: &Board = &platform::boards::qemu_virt::BOARD;

/// QEMU's name of the machine (`-M virt,...`).
pub const QEMU_MACHINE: &str = "virt";

/// GIC versions `-M virt,gic-version=` is given.
pub const GIC_VERSIONS: [u32; 2] = [2, 3];

/// Start of RAM on QEMU `virt`.
pub const RAM_BASE: u64 = 0x4000_0000;

/// Where QEMU loads the raw `-kernel` image: RAM base + 0x80000, the
/// board's load address (how the image recognises the board).
pub const LOAD_ADDRESS: u64 = BOARD.load_address;

/// Where QEMU places the device tree it passes in x0.
pub const DTB_ADDRESS: u64 = 0x4800_0000;

/// First module address: above the hypervisor region (up to 0x4400_0000) and
/// the DTB QEMU places at 0x4800_0000.
pub const MODULE_BASE: u64 = 0x4900_0000;

// The board and the QEMU facts above must agree.
const _: () = {
    assert!(LOAD_ADDRESS == RAM_BASE + 0x8_0000);
    assert!(BOARD.hyp_region.0 >= RAM_BASE);
    assert!(DTB_ADDRESS >= BOARD.hyp_region.0 + BOARD.hyp_region.1);
    assert!(MODULE_BASE > DTB_ADDRESS);
};

/// The `-M` option: `virt,virtualization=on,gic-version=<gic>` with EL2
/// (to boot the hypervisor), `virt,gic-version=<gic>` without (a guest
/// booted bare at EL1).
pub fn machine_option(gic: u32, el2: bool) -> String {
    if el2 {
        format!("{QEMU_MACHINE},virtualization=on,gic-version={gic}")
    } else {
        format!("{QEMU_MACHINE},gic-version={gic}")
    }
}
