//! The physical PL011 UART the hypervisor owns (polled transmit, interrupt-
//! or poll-driven receive).
use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
const FR: usize = 0x18;
const LCR_H: usize = 0x2c;
const CR: usize = 0x30;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFE: u32 = 1 << 4;
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;
/// LCR_H: 8 data bits, FIFOs on (no parity, one stop bit).
const LCR_H_8N1_FIFO: u32 = (0b11 << 5) | (1 << 4);
/// CR: UART, transmitter and receiver enabled.
const CR_ENABLED: u32 = (1 << 0) | (1 << 8) | (1 << 9);

pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be the address of a PL011 mapped as device memory (or the
    /// MMU must be off), and nothing else may drive it concurrently without
    /// the console lock.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn reg(&self, off: usize) -> *mut u32 {
        (self.base + off) as *mut u32
    }

    pub fn put(&mut self, byte: u8) {
        // SAFETY: the constructor's contract makes these MMIO addresses valid.
        unsafe {
            while read_volatile(self.reg(FR)) & FR_TXFF != 0 {}
            write_volatile(self.reg(DR), byte as u32);
        }
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }

    pub fn get(&mut self) -> Option<u8> {
        // SAFETY: as in `put`.
        unsafe {
            if read_volatile(self.reg(FR)) & FR_RXFE != 0 {
                None
            } else {
                Some(read_volatile(self.reg(DR)) as u8)
            }
        }
    }

    /// Take over a UART nobody set up (the maintenance link's): 8N1 with
    /// FIFOs, transmitter and receiver on. Received data is kept (after a
    /// warm reload it may be a command sent during the reload). The baud
    /// rate is left as the firmware set it (QEMU ignores it; a real board's
    /// firmware configures it from its config file).
    pub fn init_8n1(&mut self) {
        // SAFETY: as in `put`.
        unsafe {
            write_volatile(self.reg(CR), 0);
            write_volatile(self.reg(LCR_H), LCR_H_8N1_FIFO);
            write_volatile(self.reg(CR), CR_ENABLED);
        }
    }

    /// Raise no interrupt (received data stays in the FIFO).
    pub fn disable_rx_interrupt(&mut self) {
        // SAFETY: as in `put`.
        unsafe { write_volatile(self.reg(IMSC), 0) };
    }

    /// Raise the UART's interrupt when received data is waiting.
    pub fn enable_rx_interrupt(&mut self) {
        // SAFETY: as in `put`.
        unsafe {
            write_volatile(self.reg(ICR), 0x7ff);
            write_volatile(self.reg(IMSC), INT_RX | INT_RT);
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Pl011 {
    /// Write bytes exactly as given (the console multiplexer already
    /// produces CR/LF pairs).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}
