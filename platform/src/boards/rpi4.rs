//! Raspberry Pi 4 Model B (BCM2711: 4x Cortex-A72, GIC-400), and QEMU's
//! `raspi4b` model of it. The firmware (or QEMU's boot stub) loads the raw
//! image at 0x8_0000 and enters it at EL2 with x0 = DTB; the secondaries
//! wait in WFE on the spin table, no PSCI. Reset goes through the PM
//! block's watchdog. CNTFRQ is 54 MHz on the board and whatever the CPU
//! model says on QEMU: it is always read from CNTFRQ_EL0, never assumed.
//!
//! ```text
//!  0x0000_0000  firmware stub: spin table (release addresses 0xd8 + 8n,
//!               the DTB pointer at 0xf8); QEMU's stub has its SMP code at
//!               0x300. Only the release addresses are ever written.
//!  ┌─────────── hypervisor region, 64 MiB ─────────────────────────────┐
//!  │ 0x0000_0000  (the stub page above, kept free)                     │
//!  │ 0x0008_0000  the image: code, data, bss, stacks (2 MiB from here) │
//!  │              heap, up to 0x0280_0000                              │
//!  │ 0x0280_0000  upload area (4 MiB): an upload before it is verified │
//!  │ 0x02c0_0000  image slot 2 (4 MiB)                                 │
//!  │ 0x0300_0000  image slot 0 (4 MiB): pristine copy of this image    │
//!  │ 0x0340_0000  image slot 1 (4 MiB): staged at a cold boot         │
//!  │ 0x0380_0000  handoff block (4 MiB)                                │
//!  │ 0x03c0_0000  reload trampoline; holding pen at +64 KiB            │
//!  └─────────── 0x0400_0000 ───────────────────────────────────────────┘
//!               guest RAM (from the DT's /memory, the low 1 GiB is what
//!               DMA masters reach), the DTB (QEMU: 0x0800_0000, the real
//!               firmware: below its GPU carve-out, from x0)
//!  0xfe10_0000  PM block: watchdog PM_RSTC +0x1c, PM_WDOG +0x24 (reset)
//!  0xfe20_1000  PL011 UART0: console (INTID 153, 48 MHz clock on the board;
//!               `dtoverlay=disable-bt` gives it the header pins 14/15)
//!  0xff84_1000  GIC-400 GICD; GICC 0xff84_2000, GICH 0xff84_4000,
//!               GICV 0xff84_6000 (from the DT; maintenance PPI 9 = INTID 25)
//! ```
use crate::{Board, CpuStart, Reset, Uart, UartKind};

pub const BOARD: Board = Board {
    name: "rpi4",
    // Linux's bcm2711-rpi-4-b.dts (what the firmware and QEMU are given).
    compatible: &["raspberrypi,4-model-b", "brcm,bcm2711"],
    max_cpus: 4,
    console: Uart {
        kind: UartKind::Pl011,
        base: 0xfe20_1000,
    },
    // UART2-5 are PL011s too, but not emulated by QEMU and not page
    // aligned; the maintenance link on the Pi is for later.
    maintenance: None,
    hyp_region: (0x0, 0x0400_0000),
    load_address: 0x8_0000,
    image_slots: [
        (0x0300_0000, 0x0040_0000),
        (0x0340_0000, 0x0040_0000),
        (0x02c0_0000, 0x0040_0000),
    ],
    upload: (0x0280_0000, 0x0040_0000),
    handoff: (0x0380_0000, 0x0040_0000),
    trampoline: 0x03c0_0000,
    cpu_start: CpuStart::SpinTable,
    reset: Reset::Bcm2835Watchdog { base: 0xfe10_0000 },
};
