//! What xtask knows about each QEMU machine the project targets, one file
//! per machine.
//!
//! A machine file holds the facts that come from QEMU rather than from the
//! hypervisor: the `-M` option and the GIC versions it accepts, where RAM
//! starts, where QEMU loads the raw `-kernel` image and the device tree, and
//! where the guest modules go. Everything the hypervisor itself knows about
//! the board (load address, image slots, hypervisor region) is read from its
//! `platform` board ([`virt::BOARD`]), never repeated here.
//!
//! Only [`virt`] exists today, and [`crate::Scenario`] always runs on it. A
//! second machine (`raspi4b` next) gets a file beside it with the same items
//! (`BOARD`, `QEMU_MACHINE`, `GIC_VERSIONS`, `RAM_BASE`, `LOAD_ADDRESS`,
//! `DTB_ADDRESS`, `MODULE_BASE`, `machine_option`), and the scenario a
//! field choosing between them.

pub mod virt;
