//! Boards are data.
//!
//! The hypervisor learns almost everything from the device tree it is given
//! (memory, CPUs, GIC, UART, PSCI). A board file (`src/boards/*.rs`, one per
//! board, its memory map drawn in its header) holds only what is needed
//! before a device tree has been parsed, or what a device tree does not say:
//! where the early console is (so a missing or malformed tree can still be
//! reported), where the image is loaded and what memory the hypervisor keeps
//! for itself, how secondary CPUs are started and the machine is reset.
//!
//! Every board is compiled into every image ([`BOARDS`]); the image picks
//! its board at boot: first from where it was loaded (before anything can
//! be read, so that a FATAL line still reaches a console), then checked
//! against the device tree's root `compatible`, as Linux and Xen do.
//! `docs/boards.md` says how to add one.
#![no_std]

pub mod boards;

/// How this board starts secondary CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuStart {
    /// PSCI CPU_ON through the conduit named in the device tree.
    Psci,
    /// Spin table: write the entry point to a per-CPU release address
    /// (each CPU's `cpu-release-addr` in the device tree) and wake the
    /// CPUs waiting there with SEV. A CPU so released cannot be stopped or
    /// started again: warm reloads park it in the holding pen.
    SpinTable,
}

/// How the whole machine is reset (the `reboot` verb).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// PSCI SYSTEM_RESET through the conduit named in the device tree.
    Psci,
    /// The BCM2835-family power management block's watchdog (PM_RSTC,
    /// PM_WDOG at `base` + 0x1c, + 0x24): armed with a short timeout and a
    /// full reset as its action, as Linux's bcm2835_wdt restarts the Pi.
    Bcm2835Watchdog { base: usize },
}

impl Reset {
    /// The MMIO window the reset driver needs mapped, if any.
    pub const fn mmio(&self) -> Option<(u64, u64)> {
        match self {
            Reset::Psci => None,
            Reset::Bcm2835Watchdog { base } => Some((*base as u64, 0x1000)),
        }
    }
}

/// Which driver a UART needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    Pl011,
}

/// A UART the hypervisor drives itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    pub kind: UartKind,
    pub base: usize,
}

/// Static description of a board.
#[derive(Debug)]
pub struct Board {
    pub name: &'static str,
    /// Root `compatible` strings of the device trees this board's firmware
    /// passes (any one of them selects the board).
    pub compatible: &'static [&'static str],
    /// Physical CPUs the hypervisor brings up at most on this board.
    pub max_cpus: usize,
    /// The console: used before the device tree is parsed (and for fatal
    /// errors); the device tree's `stdout-path` UART must be this one.
    pub console: Uart,
    /// A second UART for the maintenance link, if the board has one free.
    pub maintenance: Option<Uart>,
    /// Physical region the hypervisor keeps for itself: its image, stacks,
    /// heap and page tables. Guests never get memory from here.
    pub hyp_region: (u64, u64),
    /// Where the boot loader loads the raw image. The image runs wherever
    /// it is loaded; this address is how it recognises the board.
    pub load_address: u64,
    /// Inside `hyp_region`, never touched by the heap, kept across warm
    /// reloads: three image slots (slot 0 gets a pristine copy of the image
    /// booted cold; at any time one slot holds the running image, one the
    /// image it was upgraded from, and the third is the staging slot an
    /// upgrade starts; see `vmm::image_slot`), the upload area the
    /// maintenance link writes an upload into before it is verified and
    /// copied into the staging slot, the handoff block describing suspended
    /// VMs, and the page the copy-and-jump trampoline runs from while the
    /// image itself is overwritten (the holding pen lives 64 KiB above it).
    pub image_slots: [(u64, u64); 3],
    pub upload: (u64, u64),
    pub handoff: (u64, u64),
    pub trampoline: u64,
    pub cpu_start: CpuStart,
    pub reset: Reset,
}

impl Board {
    /// End of the heap: everything from here to the end of `hyp_region`
    /// survives a warm reload (slots, handoff block, trampoline, pen).
    pub const fn heap_end(&self) -> u64 {
        let mut end = self.trampoline;
        if self.handoff.0 < end {
            end = self.handoff.0;
        }
        if self.upload.0 < end {
            end = self.upload.0;
        }
        let mut i = 0;
        while i < self.image_slots.len() {
            if self.image_slots[i].0 < end {
                end = self.image_slots[i].0;
            }
            i += 1;
        }
        end
    }

    /// Whether the device tree's root `compatible` list names this board.
    pub fn matches<'a>(&self, mut compatible: impl Iterator<Item = &'a str>) -> bool {
        compatible.any(|c| self.compatible.contains(&c))
    }
}

/// Every board this image supports.
pub const BOARDS: &[&Board] = &[&boards::qemu_virt::BOARD, &boards::rpi4::BOARD];

/// The most CPUs any board has: per-CPU stacks and tables are sized for it.
pub const MAX_CPUS: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < BOARDS.len() {
        if BOARDS[i].max_cpus > max {
            max = BOARDS[i].max_cpus;
        }
        i += 1;
    }
    max
};

/// The board whose boot loader loads the image at `addr`.
pub fn by_load_address(addr: u64) -> Option<&'static Board> {
    BOARDS.iter().copied().find(|b| b.load_address == addr)
}

/// The board a device tree's root `compatible` list names.
pub fn by_compatible<'a>(
    compatible: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'static Board> {
    BOARDS
        .iter()
        .copied()
        .find(|b| b.matches(compatible.clone()))
}

/// The board called `name` (image slot headers and host tools name boards).
pub fn by_name(name: &str) -> Option<&'static Board> {
    BOARDS.iter().copied().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_are_consistent() {
        for b in BOARDS {
            let (base, size) = b.hyp_region;
            let inside = |a: u64, len: u64| a >= base && a + len <= base + size;
            assert!(
                inside(b.load_address, 0x20_0000),
                "{}: image outside its region",
                b.name
            );
            for s in b.image_slots {
                assert!(inside(s.0, s.1), "{}: slot outside the region", b.name);
            }
            assert!(
                inside(b.handoff.0, b.handoff.1),
                "{}: handoff outside the region",
                b.name
            );
            assert!(
                inside(b.upload.0, b.upload.1),
                "{}: upload area outside the region",
                b.name
            );
            // Slots, upload area, handoff and trampoline+pen never overlap.
            let s = b.image_slots;
            let mut areas = [
                s[0],
                s[1],
                s[2],
                b.upload,
                b.handoff,
                (b.trampoline, 0x1_1000),
            ];
            areas.sort();
            for w in areas.windows(2) {
                assert!(w[0].0 + w[0].1 <= w[1].0, "{}: {:x?} overlap", b.name, w);
            }
            // Trampoline page + holding pen (64 KiB above it, 4 KiB).
            assert!(
                inside(b.trampoline, 0x1_1000),
                "{}: trampoline/pen outside the region",
                b.name
            );
            // The image's footprint (2 MiB from the load address, more for
            // a bigger build; hypervisor/src/heap.rs checks the real one at
            // boot) must leave at least 8 MiB of heap.
            assert!(
                b.heap_end() >= b.load_address + 0x20_0000 + 0x80_0000,
                "{}: no room for a heap",
                b.name
            );
            // Load addresses must tell the boards apart.
            assert_eq!(
                by_load_address(b.load_address).map(|x| x.name),
                Some(b.name),
                "{}: load address shared with another board",
                b.name
            );
            assert!(b.max_cpus >= 1 && b.max_cpus <= MAX_CPUS);
            assert!(!b.compatible.is_empty(), "{}: no compatible", b.name);
            assert_eq!(by_name(b.name).map(|x| x.name), Some(b.name));
        }
    }

    #[test]
    fn chosen_by_load_address_and_compatible() {
        let virt = by_load_address(0x4008_0000).expect("qemu-virt");
        assert_eq!(virt.name, "qemu-virt");
        assert_eq!(virt.heap_end(), 0x4280_0000);
        assert!(by_load_address(0x1234_0000).is_none());
        let c = ["linux,dummy-virt"];
        assert_eq!(
            by_compatible(c.iter().copied()).map(|b| b.name),
            Some("qemu-virt")
        );
        assert!(by_compatible(["acme,unknown"].iter().copied()).is_none());
        let pi = by_load_address(0x8_0000).expect("rpi4");
        assert_eq!(pi.name, "rpi4");
        assert_eq!(pi.cpu_start, CpuStart::SpinTable);
        // Linux's bcm2711-rpi-4-b.dts: "raspberrypi,4-model-b", "brcm,bcm2711".
        let c = ["raspberrypi,4-model-b", "brcm,bcm2711"];
        assert_eq!(
            by_compatible(c.iter().copied()).map(|b| b.name),
            Some("rpi4")
        );
    }
}
