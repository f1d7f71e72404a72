//! What xtask knows about each QEMU machine the project targets, one file
//! per machine.
//!
//! A machine file holds the facts that come from QEMU rather than from the
//! hypervisor: the `-M` option and the GIC versions it accepts, where RAM
//! starts, where QEMU loads the raw `-kernel` image and the device tree, and
//! where the guest modules go. Everything the hypervisor itself knows about
//! the board (load address, image slots, hypervisor region) is read from its
//! `platform` board ([`virt::BOARD`], [`raspi4b::BOARD`]), never repeated
//! here. A [`crate::Scenario`] names its machine with [`Machine`].

pub mod raspi4b;
pub mod virt;

use platform::Board;

/// The QEMU machine a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Machine {
    /// `-M virt`: the default; any GIC version, CPU model, CPU count, RAM.
    #[default]
    Virt,
    /// `-M raspi4b`: GICv2, 4 Cortex-A72, 2 GiB, the Debian Pi 4 tree.
    Raspi4b,
}

impl Machine {
    pub const ALL: [Machine; 2] = [Machine::Virt, Machine::Raspi4b];

    /// The machine whose board is called `name` (`qemu-virt`, `rpi4`).
    pub fn by_board(name: &str) -> Option<Machine> {
        Machine::ALL.into_iter().find(|m| m.board().name == name)
    }

    pub fn board(self) -> &'static Board {
        match self {
            Machine::Virt => virt::BOARD,
            Machine::Raspi4b => raspi4b::BOARD,
        }
    }

    pub fn gic_versions(self) -> &'static [u32] {
        match self {
            Machine::Virt => &virt::GIC_VERSIONS,
            Machine::Raspi4b => &raspi4b::GIC_VERSIONS,
        }
    }

    /// First address guest modules may use.
    pub fn module_base(self) -> u64 {
        match self {
            Machine::Virt => virt::MODULE_BASE,
            Machine::Raspi4b => raspi4b::MODULE_BASE,
        }
    }

    /// End of the RAM the device tree describes, for `mem_mib` of RAM.
    pub fn ram_end(self, mem_mib: u64) -> u64 {
        match self {
            Machine::Virt => virt::RAM_BASE + (mem_mib << 20),
            Machine::Raspi4b => raspi4b::RAM_END,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_by_board() {
        assert_eq!(Machine::by_board("qemu-virt"), Some(Machine::Virt));
        assert_eq!(Machine::by_board("rpi4"), Some(Machine::Raspi4b));
        assert_eq!(Machine::by_board("pdp11"), None);
        assert_eq!(Machine::Raspi4b.gic_versions(), [2]);
        // One image for both: the boards are told apart by load address.
        assert_ne!(
            Machine::Virt.board().load_address,
            Machine::Raspi4b.board().load_address
        );
    }
}
