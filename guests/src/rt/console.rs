//! PL011 polling console and the `print!`/`println!` macros.
//!
//! The UART is used as the firmware/hypervisor left it (no baud setup): under
//! the hypervisor it is emulated, on QEMU it works without initialisation.
//! A whole `println!` is written under one lock so lines of different vCPUs do
//! not interleave; the lock is re-entrant per vCPU so that an exception or a
//! panic while printing can still print instead of deadlocking.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{cpu_id, mmio};

const UART_BASE: usize = 0x0900_0000;
const UARTDR: usize = UART_BASE;
const UARTFR: usize = UART_BASE + 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Owner of the console lock: 0 = free, otherwise cpu id + 1.
static OWNER: AtomicUsize = AtomicUsize::new(0);

struct Guard {
    /// False when this vCPU already held the lock (re-entry): don't release.
    release: bool,
}

fn lock() -> Guard {
    let me = cpu_id() + 1;
    if OWNER.load(Ordering::Relaxed) == me {
        return Guard { release: false };
    }
    while OWNER
        .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    Guard { release: true }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.release {
            OWNER.store(0, Ordering::Release);
        }
    }
}

fn putc(byte: u8) {
    while mmio::read32(UARTFR) & FR_TXFF != 0 {
        core::hint::spin_loop();
    }
    mmio::write32(UARTDR, u32::from(byte));
}

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(putc);
        Ok(())
    }
}

/// Prints `args` followed by `\n` as one uninterrupted line.
pub fn print_line(args: fmt::Arguments<'_>) {
    let _guard = lock();
    let _ = Uart.write_fmt(args);
    putc(b'\n');
}

/// Prints `args` without a newline (still atomically with respect to other vCPUs).
pub fn print(args: fmt::Arguments<'_>) {
    let _guard = lock();
    let _ = Uart.write_fmt(args);
}

/// Like `std::println!`, on the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::rt::console::print_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::rt::console::print_line(format_args!($($arg)*)) };
}

/// Like `std::print!`, on the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::rt::console::print(format_args!($($arg)*)) };
}
