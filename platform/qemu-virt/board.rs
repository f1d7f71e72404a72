//! QEMU `virt` with `virtualization=on`: entered at EL2 with x0 = DTB,
//! raw image loaded at RAM base + 0x80000, PSCI (conduit SMC) provided by QEMU.
use crate::{Board, CpuStart};

pub const BOARD: Board = Board {
    name: "qemu-virt",
    early_uart: 0x0900_0000,
    // 64 MiB at the bottom of RAM: QEMU's boot stub (free once we run), the
    // image at +0x80000, stacks, heap and page tables.
    hyp_region: (0x4000_0000, 0x0400_0000),
    load_address: 0x4008_0000,
    // The top 16 MiB of the region; the heap ends below it (link.ld).
    // Slot 1 is where `cargo xtask run --next-image` has QEMU place a
    // second build.
    image_slots: [(0x4300_0000, 0x0040_0000), (0x4340_0000, 0x0040_0000)],
    handoff: (0x4380_0000, 0x0040_0000),
    trampoline: 0x43c0_0000,
    cpu_start: CpuStart::Psci,
};
