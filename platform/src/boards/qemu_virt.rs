//! QEMU `virt` with `virtualization=on`: entered at EL2 with x0 = DTB, the
//! raw image loaded at RAM base + 0x80000, PSCI (conduit SMC) provided by
//! QEMU, GICv2 or GICv3 as `-machine gic-version=` says.
//!
//! ```text
//!  0x0900_0000  PL011 UART0: console          (device tree: /pl011@9000000)
//!  0x0904_0000  PL011 UART1: maintenance link (a second `-serial`)
//!  0x4000_0000  RAM base
//!  ┌─────────── hypervisor region, 64 MiB ─────────────────────────────┐
//!  │ 0x4000_0000  QEMU's boot stub (free once the image runs)          │
//!  │ 0x4008_0000  the image: code, data, bss, stacks (2 MiB aligned)   │
//!  │              heap, up to 0x4280_0000                              │
//!  │ 0x4280_0000  upload area (4 MiB): an upload before it is verified │
//!  │ 0x42c0_0000  image slot 2 (4 MiB)                                 │
//!  │ 0x4300_0000  image slot 0 (4 MiB): pristine copy of this image    │
//!  │ 0x4340_0000  image slot 1 (4 MiB): staged at a cold boot         │
//!  │ 0x4380_0000  handoff block (4 MiB)                                │
//!  │ 0x43c0_0000  reload trampoline; holding pen at +64 KiB            │
//!  └─────────── 0x4400_0000 ───────────────────────────────────────────┘
//!               guest RAM, modules, the device tree (from the DT)
//! ```
use crate::{Board, CpuStart, Reset, Uart, UartKind};

pub const BOARD: Board = Board {
    name: "qemu-virt",
    compatible: &["linux,dummy-virt"],
    max_cpus: 8,
    console: Uart {
        kind: UartKind::Pl011,
        base: 0x0900_0000,
    },
    maintenance: Some(Uart {
        kind: UartKind::Pl011,
        base: 0x0904_0000,
    }),
    hyp_region: (0x4000_0000, 0x0400_0000),
    load_address: 0x4008_0000,
    // Slot 1 is where `cargo xtask run --next-image` has QEMU place a
    // second build.
    image_slots: [
        (0x4300_0000, 0x0040_0000),
        (0x4340_0000, 0x0040_0000),
        (0x42c0_0000, 0x0040_0000),
    ],
    upload: (0x4280_0000, 0x0040_0000),
    handoff: (0x4380_0000, 0x0040_0000),
    trampoline: 0x43c0_0000,
    cpu_start: CpuStart::Psci,
    reset: Reset::Psci,
};
