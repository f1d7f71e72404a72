//! An emulated Arm PL011 UART, the console every VM gets (at
//! [`crate::layout::UART_BASE`], SPI [`crate::layout::UART_SPI`]).
//!
//! The model implements what Linux's `amba-pl011` driver and a simple
//! polling guest use, and nothing that would only add timing behaviour:
//!
//! - **Transmit is instant.** A byte written to DR goes straight to the
//!   caller's `tx` sink (the console multiplexer), so the transmit FIFO is
//!   always empty: FR.TXFE = 1, FR.TXFF = 0, FR.BUSY = 0. Bytes are sent
//!   even if the guest has not set UARTEN/TXE, because early consoles
//!   (Linux `earlycon`, our test guests) write DR without initialising
//!   the UART, trusting the firmware to have done so.
//! - **Receive** has a real FIFO filled by [`Pl011::push_rx`]: 16 entries
//!   with LCR_H.FEN set, 1 without (PeriphID2 says revision 1, for which
//!   Linux assumes a 16-byte FIFO). When it is full `push_rx` refuses the
//!   byte, so the caller keeps it and nothing is lost or overrun.
//! - **Interrupts are levels computed from the state**, not latched events:
//!   - RX: the FIFO holds at least the IFLS trigger level (1 byte without
//!     FIFO).
//!   - RT (receive timeout): the FIFO is not empty. Real hardware waits 32
//!     bit-times of line silence first. Input reaches the model only
//!     between guest accesses, at typing speed, so the line is effectively
//!     always idle by the time the guest could look; raising RT at once
//!     gives the same observable behaviour with no delay, and Linux's
//!     handler treats RX and RT alike (it drains the FIFO).
//!   - TX: the transmitter is enabled (CR.UARTEN and CR.TXE) and its FIFO
//!     is empty, which it always is. Linux enables TXIM only while it has
//!     pending characters and clears it when its buffer runs dry, so this
//!     level drives its interrupt-driven TX path without a storm.
//!
//!   Because each condition is re-evaluated from the state, writing ICR has
//!   no lasting effect (a cleared condition that still holds is raised
//!   again at once, as a level-sensitive device would re-raise it).
//! - Baud rate, line control, DMA and IrDA registers are stored and read
//!   back but have no effect. There are no modem-status or error
//!   interrupts (no line, so no errors).
//!
//! Reads of write-only, reserved or unaligned offsets return 0 and writes
//! to them are ignored; no offset or value can make the model panic.

use alloc::vec::Vec;

/// Register offsets (PL011 TRM, table 3-1).
pub mod reg {
    pub const DR: u64 = 0x000;
    pub const RSR_ECR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const ILPR: u64 = 0x020;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
    pub const PERIPH_ID0: u64 = 0xfe0;
    pub const PCELL_ID0: u64 = 0xff0;
}

/// Flag register bits.
pub mod fr {
    pub const BUSY: u32 = 1 << 3;
    pub const RXFE: u32 = 1 << 4;
    pub const TXFF: u32 = 1 << 5;
    pub const RXFF: u32 = 1 << 6;
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits (IMSC, RIS, MIS, ICR).
pub mod int {
    pub const RX: u32 = 1 << 4;
    pub const TX: u32 = 1 << 5;
    pub const RT: u32 = 1 << 6;
    /// All 11 defined interrupt bits.
    pub const ALL: u32 = 0x7ff;
}

/// Control register bits.
pub mod cr {
    pub const UARTEN: u32 = 1 << 0;
    pub const TXE: u32 = 1 << 8;
    pub const RXE: u32 = 1 << 9;
}

/// Line control: FIFO enable and 8-bit words.
pub mod lcr_h {
    pub const FEN: u32 = 1 << 4;
    pub const WLEN_8: u32 = 3 << 5;
}

/// PeriphID0-3 then PCellID0-3: part 0x011 (PL011), designer 0x41 (Arm),
/// revision 1; Linux's AMBA bus matches the driver on these.
const ID_REGS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// Receive FIFO depth with FEN set (revision 1 PL011).
pub const FIFO_DEPTH: usize = 16;

/// Everything an emulated PL011 holds, as plain data: what the warm-reboot
/// handoff saves ([`Pl011::snapshot`]) and the next image rebuilds the
/// UART from ([`Pl011::restore`]). Registers hold their values as the
/// guest reads them back (already masked to their defined bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pl011State {
    pub ilpr: u32,
    pub ibrd: u32,
    pub fbrd: u32,
    pub lcr_h: u32,
    pub cr: u32,
    pub ifls: u32,
    pub imsc: u32,
    pub dmacr: u32,
    /// Receive FIFO contents, oldest byte first (at most [`FIFO_DEPTH`],
    /// and at most 1 without LCR_H.FEN).
    pub rx: Vec<u8>,
}

/// Why a [`Pl011State`] cannot be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pl011StateError(pub &'static str);

impl core::fmt::Display for Pl011StateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// State of one emulated PL011.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pl011 {
    rx: [u8; FIFO_DEPTH],
    rx_head: usize,
    rx_count: usize,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A UART in the state boot firmware leaves it: enabled for transmit
    /// and receive, 8 bits with FIFOs, 115200 baud from a 24 MHz clock,
    /// all interrupts masked. Linux reprograms everything anyway; polling
    /// guests that never touch the control registers get a working UART
    /// with a 16-byte receive FIFO.
    pub const fn new() -> Self {
        Self {
            rx: [0; FIFO_DEPTH],
            rx_head: 0,
            rx_count: 0,
            ilpr: 0,
            ibrd: 13,
            fbrd: 1,
            lcr_h: lcr_h::WLEN_8 | lcr_h::FEN,
            cr: cr::UARTEN | cr::TXE | cr::RXE,
            ifls: 0x12, // 1/2 full for both directions (hardware reset value)
            imsc: 0,
            dmacr: 0,
        }
    }

    /// The complete state, for the warm-reboot handoff.
    pub fn snapshot(&self) -> Pl011State {
        Pl011State {
            ilpr: self.ilpr,
            ibrd: self.ibrd,
            fbrd: self.fbrd,
            lcr_h: self.lcr_h,
            cr: self.cr,
            ifls: self.ifls,
            imsc: self.imsc,
            dmacr: self.dmacr,
            rx: (0..self.rx_count)
                .map(|i| self.rx[(self.rx_head + i) % FIFO_DEPTH])
                .collect(),
        }
    }

    /// A UART in the state `s` describes. Refuses values a guest could not
    /// have written (bits outside a register's defined ones) and a receive
    /// FIFO fuller than its depth, so a restored UART behaves exactly like
    /// one that got there by register writes.
    pub fn restore(s: &Pl011State) -> Result<Pl011, Pl011StateError> {
        let fields: [(u32, u32, &'static str); 8] = [
            (s.ilpr, 0xff, "ILPR has undefined bits set"),
            (s.ibrd, 0xffff, "IBRD has undefined bits set"),
            (s.fbrd, 0x3f, "FBRD has undefined bits set"),
            (s.lcr_h, 0xff, "LCR_H has undefined bits set"),
            (s.cr, 0xff87, "CR has undefined bits set"),
            (s.ifls, 0x3f, "IFLS has undefined bits set"),
            (s.imsc, int::ALL, "IMSC has undefined bits set"),
            (s.dmacr, 7, "DMACR has undefined bits set"),
        ];
        for (v, mask, what) in fields {
            if v & !mask != 0 {
                return Err(Pl011StateError(what));
            }
        }
        let mut u = Pl011 {
            rx: [0; FIFO_DEPTH],
            rx_head: 0,
            rx_count: 0,
            ilpr: s.ilpr,
            ibrd: s.ibrd,
            fbrd: s.fbrd,
            lcr_h: s.lcr_h,
            cr: s.cr,
            ifls: s.ifls,
            imsc: s.imsc,
            dmacr: s.dmacr,
        };
        if s.rx.len() > u.depth() {
            return Err(Pl011StateError(
                "receive FIFO holds more bytes than its depth",
            ));
        }
        u.rx[..s.rx.len()].copy_from_slice(&s.rx);
        u.rx_count = s.rx.len();
        Ok(u)
    }

    fn depth(&self) -> usize {
        if self.lcr_h & lcr_h::FEN != 0 {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// Free receive FIFO entries.
    pub fn rx_space(&self) -> usize {
        self.depth().saturating_sub(self.rx_count)
    }

    /// Queues a received byte; `false` (byte not taken) when the FIFO is
    /// full.
    pub fn push_rx(&mut self, byte: u8) -> bool {
        if self.rx_space() == 0 {
            return false;
        }
        let tail = (self.rx_head + self.rx_count) % FIFO_DEPTH;
        self.rx[tail] = byte;
        self.rx_count += 1;
        true
    }

    fn pop_rx(&mut self) -> Option<u8> {
        if self.rx_count == 0 {
            return None;
        }
        let b = self.rx[self.rx_head];
        self.rx_head = (self.rx_head + 1) % FIFO_DEPTH;
        self.rx_count -= 1;
        Some(b)
    }

    /// Receive interrupt trigger level in bytes (IFLS.RXIFLSEL).
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & lcr_h::FEN == 0 {
            return 1;
        }
        match (self.ifls >> 3) & 7 {
            0 => 2,  // 1/8
            1 => 4,  // 1/4
            3 => 12, // 3/4
            4 => 14, // 7/8
            _ => 8,  // 1/2 (and the reserved encodings)
        }
    }

    /// Raw interrupt status, computed from the state (see module docs).
    pub fn ris(&self) -> u32 {
        let mut ris = 0;
        if self.rx_count >= self.rx_trigger() {
            ris |= int::RX;
        }
        if self.rx_count > 0 {
            ris |= int::RT;
        }
        if self.cr & (cr::UARTEN | cr::TXE) == cr::UARTEN | cr::TXE {
            ris |= int::TX;
        }
        ris
    }

    /// Level of the interrupt line to the (virtual) GIC.
    pub fn irq_level(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    fn flags(&self) -> u32 {
        let mut f = fr::TXFE;
        if self.rx_count == 0 {
            f |= fr::RXFE;
        }
        if self.rx_count >= self.depth() {
            f |= fr::RXFF;
        }
        f
    }

    /// A 32-bit register read at `offset` from the UART base. Reading DR
    /// consumes a received byte.
    pub fn read(&mut self, offset: u64) -> u32 {
        match offset {
            reg::DR => self.pop_rx().map_or(0, u32::from),
            reg::RSR_ECR => 0, // never any receive errors
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.ris() & self.imsc,
            reg::DMACR => self.dmacr,
            0xfe0..=0xffc if offset.is_multiple_of(4) => {
                let i = ((offset - reg::PERIPH_ID0) / 4) as usize;
                ID_REGS.get(i).copied().unwrap_or(0)
            }
            _ => 0, // ICR (write-only), reserved, test and unaligned offsets
        }
    }

    /// A register write at `offset`; bytes written to DR go to `tx`.
    pub fn write(&mut self, offset: u64, value: u32, tx: &mut dyn FnMut(u8)) {
        match offset {
            reg::DR => tx(value as u8),
            reg::RSR_ECR => {} // clears error flags; there are none
            reg::ILPR => self.ilpr = value & 0xff,
            reg::IBRD => self.ibrd = value & 0xffff,
            reg::FBRD => self.fbrd = value & 0x3f,
            reg::LCR_H => {
                // Switching the FIFO on or off resets it, as in QEMU's model;
                // guests only do this during initialisation.
                if (self.lcr_h ^ value) & lcr_h::FEN != 0 {
                    self.rx_head = 0;
                    self.rx_count = 0;
                }
                self.lcr_h = value & 0xff;
            }
            reg::CR => self.cr = value & 0xff87, // defined bits only
            reg::IFLS => self.ifls = value & 0x3f,
            reg::IMSC => self.imsc = value & int::ALL,
            reg::ICR => {} // level model: conditions are recomputed, see module docs
            reg::DMACR => self.dmacr = value & 7,
            _ => {} // read-only (FR, RIS, MIS, IDs), reserved, unaligned
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn no_tx(_: u8) {
        panic!("unexpected transmit");
    }

    #[test]
    fn identification_registers() {
        let mut u = Pl011::new();
        let ids: Vec<u32> = (0..8).map(|i| u.read(0xfe0 + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    }

    #[test]
    fn transmit_is_instant() {
        let mut u = Pl011::new();
        let mut out = Vec::new();
        for &b in b"hi\n" {
            u.write(reg::DR, 0xf00 | u32::from(b), &mut |c| out.push(c));
        }
        assert_eq!(out, b"hi\n");
        let f = u.read(reg::FR);
        assert_eq!(f & (fr::TXFF | fr::BUSY), 0);
        assert_ne!(f & fr::TXFE, 0);
        // Even with the UART disabled (earlycon before any init).
        u.write(reg::CR, 0, &mut |_| {});
        u.write(reg::DR, u32::from(b'x'), &mut |c| out.push(c));
        assert_eq!(out.last(), Some(&b'x'));
    }

    #[test]
    fn receive_fifo_depth_follows_fen() {
        let mut u = Pl011::new();
        assert_eq!(u.rx_space(), 16);
        assert_ne!(u.read(reg::FR) & fr::RXFE, 0);
        for i in 0..16u8 {
            assert!(u.push_rx(b'a' + i));
        }
        assert!(!u.push_rx(b'!'));
        assert_eq!(u.rx_space(), 0);
        assert_ne!(u.read(reg::FR) & fr::RXFF, 0);
        let got: Vec<u8> = (0..16).map(|_| u.read(reg::DR) as u8).collect();
        assert_eq!(got, b"abcdefghijklmnop");
        assert_eq!(u.read(reg::DR), 0); // empty
        assert_ne!(u.read(reg::FR) & fr::RXFE, 0);

        // Wrap-around of the ring.
        for round in 0..40u8 {
            assert!(u.push_rx(round));
            assert!(u.push_rx(round.wrapping_add(100)));
            assert_eq!(u.read(reg::DR), u32::from(round));
            assert_eq!(u.read(reg::DR), u32::from(round.wrapping_add(100)));
        }

        // Without FEN the FIFO is one byte deep; toggling FEN flushes.
        u.push_rx(1);
        u.write(reg::LCR_H, lcr_h::WLEN_8, &mut no_tx);
        assert_eq!(u.rx_space(), 1);
        assert_ne!(u.read(reg::FR) & fr::RXFE, 0);
        assert!(u.push_rx(7));
        assert!(!u.push_rx(8));
        assert_ne!(u.read(reg::FR) & fr::RXFF, 0);
        assert_eq!(u.read(reg::DR), 7);
        // Rewriting LCR_H without changing FEN keeps the data.
        u.push_rx(9);
        u.write(reg::LCR_H, lcr_h::WLEN_8 | 1, &mut no_tx);
        assert_eq!(u.read(reg::DR), 9);
    }

    #[test]
    fn rx_interrupt_levels() {
        let mut u = Pl011::new();
        u.write(reg::IMSC, int::RX, &mut no_tx);
        // Default IFLS: 1/2 -> 8 bytes for RX; RT as soon as data is present.
        for i in 0..7 {
            u.push_rx(i);
        }
        assert_eq!(u.ris() & (int::RX | int::RT), int::RT);
        assert!(!u.irq_level()); // RT masked
        u.push_rx(7);
        assert_ne!(u.ris() & int::RX, 0);
        assert!(u.irq_level());
        assert_eq!(u.read(reg::MIS), int::RX);
        // ICR cannot clear a condition that still holds.
        u.write(reg::ICR, int::ALL, &mut no_tx);
        assert!(u.irq_level());
        u.read(reg::DR);
        assert!(!u.irq_level());

        // Trigger levels.
        let mut u = Pl011::new();
        for (sel, level) in [(0, 2), (1, 4), (2, 8), (3, 12), (4, 14), (7, 8)] {
            u.write(reg::IFLS, sel << 3, &mut no_tx);
            while u.read(reg::FR) & fr::RXFE == 0 {
                u.read(reg::DR);
            }
            for i in 0..level {
                assert_eq!(u.ris() & int::RX, 0, "sel {sel} at {i}");
                u.push_rx(0);
            }
            assert_ne!(u.ris() & int::RX, 0, "sel {sel}");
        }
        // Without FIFO, one byte triggers RX.
        let mut u = Pl011::new();
        u.write(reg::LCR_H, 0, &mut no_tx);
        u.push_rx(1);
        assert_eq!(u.ris() & (int::RX | int::RT), int::RX | int::RT);
    }

    #[test]
    fn tx_interrupt_follows_enable() {
        let mut u = Pl011::new();
        assert_ne!(u.ris() & int::TX, 0);
        assert!(!u.irq_level()); // masked at reset
        u.write(reg::IMSC, int::TX, &mut no_tx);
        assert!(u.irq_level());
        u.write(reg::CR, cr::UARTEN | cr::RXE, &mut no_tx);
        assert!(!u.irq_level());
        u.write(reg::CR, cr::TXE, &mut no_tx);
        assert!(!u.irq_level());
        u.write(reg::CR, cr::UARTEN | cr::TXE, &mut no_tx);
        assert!(u.irq_level());
        u.write(reg::IMSC, 0, &mut no_tx);
        assert!(!u.irq_level());
    }

    /// The sequence Linux's amba-pl011 driver performs, in outline.
    #[test]
    fn linux_driver_flow() {
        let mut u = Pl011::new();
        let mut out = Vec::new();
        let mut tx = |b: u8| out.push(b);
        // Probe: identify, then startup.
        assert_eq!(
            u.read(0xfe0) | (u.read(0xfe4) << 8) | (u.read(0xfe8) << 16),
            0x14_1011
        );
        u.write(reg::CR, 0, &mut tx);
        u.write(reg::ICR, 0x7ff, &mut tx);
        u.write(reg::IFLS, 0x12, &mut tx);
        u.write(reg::IBRD, 13, &mut tx);
        u.write(reg::FBRD, 1, &mut tx);
        u.write(reg::LCR_H, lcr_h::WLEN_8 | lcr_h::FEN, &mut tx);
        u.write(reg::CR, cr::UARTEN | cr::TXE | cr::RXE, &mut tx);
        u.write(reg::IMSC, int::RX | int::RT, &mut tx);
        assert!(!u.irq_level());

        // Someone types: RT fires for a single byte.
        assert!(u.push_rx(b'l'));
        assert!(u.irq_level());
        // Handler: ack, drain until RXFE.
        let status = u.read(reg::MIS);
        assert_eq!(status, int::RT);
        u.write(reg::ICR, status & !(int::TX | int::RT | int::RX), &mut tx);
        let mut got = Vec::new();
        while u.read(reg::FR) & fr::RXFE == 0 {
            got.push(u.read(reg::DR) as u8);
        }
        assert_eq!(got, b"l");
        assert!(!u.irq_level());

        // TX path: write until TXFF (never), enable TXIM only while pending;
        // the interrupt fires, the handler finds nothing and masks TXIM.
        for &b in b"ok\r\n" {
            assert_eq!(u.read(reg::FR) & fr::TXFF, 0);
            u.write(reg::DR, u32::from(b), &mut tx);
        }
        u.write(reg::IMSC, int::RX | int::RT | int::TX, &mut tx);
        assert!(u.irq_level());
        assert_eq!(u.read(reg::MIS), int::TX);
        u.write(reg::IMSC, int::RX | int::RT, &mut tx);
        assert!(!u.irq_level());
        assert_eq!(out, b"ok\r\n");
    }

    #[test]
    fn registers_read_back_masked() {
        let mut u = Pl011::new();
        let regs = [
            (reg::ILPR, 0xff),
            (reg::IBRD, 0xffff),
            (reg::FBRD, 0x3f),
            (reg::LCR_H, 0xff),
            (reg::CR, 0xff87),
            (reg::IFLS, 0x3f),
            (reg::IMSC, 0x7ff),
            (reg::DMACR, 0x7),
        ];
        for (off, mask) in regs {
            u.write(off, 0xffff_ffff, &mut no_tx);
            assert_eq!(u.read(off), mask, "offset {off:#x}");
            u.write(off, 0, &mut no_tx);
            assert_eq!(u.read(off), 0, "offset {off:#x}");
        }
        // Read-only registers ignore writes; write-only read as 0.
        u.write(reg::FR, 0, &mut no_tx);
        assert_ne!(u.read(reg::FR) & fr::TXFE, 0);
        u.write(reg::RIS, 0xffff, &mut no_tx);
        u.write(0xfe0, 0, &mut no_tx);
        assert_eq!(u.read(0xfe0), 0x11);
        assert_eq!(u.read(reg::ICR), 0);
        assert_eq!(u.read(reg::RSR_ECR), 0);
    }

    #[test]
    fn snapshot_restore_round_trip() {
        let mut u = Pl011::new();
        u.write(reg::IMSC, int::RX | int::RT, &mut no_tx);
        u.write(reg::IFLS, 0x09, &mut no_tx);
        u.write(reg::IBRD, 26, &mut no_tx);
        // Wrap the ring so head != 0.
        for i in 0..12u8 {
            u.push_rx(i);
        }
        for _ in 0..10 {
            u.read(reg::DR);
        }
        for i in 100..110u8 {
            u.push_rx(i);
        }
        let s = u.snapshot();
        assert_eq!(
            s.rx,
            [10, 11, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109]
        );
        assert_eq!((s.imsc, s.ifls, s.ibrd), (int::RX | int::RT, 0x09, 26));
        let mut r = Pl011::restore(&s).unwrap();
        assert_eq!(r.snapshot(), s);
        assert_eq!(r.irq_level(), u.irq_level());
        assert_eq!(r.rx_space(), u.rx_space());
        for off in [reg::FR, reg::RIS, reg::MIS, reg::LCR_H, reg::CR] {
            assert_eq!(r.read(off), u.read(off), "offset {off:#x}");
        }
        for _ in 0..13 {
            assert_eq!(r.read(reg::DR), u.read(reg::DR));
        }
        assert_eq!(
            Pl011::restore(&Pl011::new().snapshot()).unwrap(),
            Pl011::new()
        );
    }

    #[test]
    fn restore_refuses_impossible_state() {
        let good = Pl011::new().snapshot();
        let mut s = good.clone();
        s.rx = [0; FIFO_DEPTH + 1].to_vec();
        assert!(Pl011::restore(&s).is_err());
        let mut s = good.clone();
        s.lcr_h = lcr_h::WLEN_8; // no FIFO: depth 1
        s.rx = [1, 2].to_vec();
        assert!(Pl011::restore(&s).is_err());
        s.rx = [1].to_vec();
        assert!(Pl011::restore(&s).is_ok());
        let mut s = good.clone();
        s.cr = 0x70;
        assert!(Pl011::restore(&s).is_err());
        let mut s = good;
        s.imsc = 0x800;
        assert!(Pl011::restore(&s).is_err());
    }

    #[test]
    fn any_offset_any_value_is_safe() {
        let mut u = Pl011::new();
        let mut sent = 0usize;
        let values = [0, 1, 0x10, 0x7ff, 0xffff, 0x8000_0000, 0xffff_ffff];
        for off in (0..0x1100u64).chain([u64::MAX, u64::MAX - 3, 1 << 40]) {
            for &v in &values {
                u.push_rx(v as u8);
                u.write(off, v, &mut |_| sent += 1);
                let r = u.read(off);
                if !off.is_multiple_of(4) || (0x04c..0xfe0).contains(&off) || off >= 0x1000 {
                    assert_eq!(r, 0, "offset {off:#x}");
                }
                let _ = (u.irq_level(), u.rx_space());
            }
        }
        assert_eq!(sent, values.len()); // only offset 0 (DR) transmits
    }
}
