//! The hypervisor's console: one physical UART shared by the hypervisor's
//! own log and every VM's emulated PL011 (see `vmm::console` for the
//! multiplexing rules), plus the `log` backend.
use crate::drivers::pl011::Pl011;
use core::fmt::Write;
use spin::Mutex;

pub struct Console {
    pub uart: Pl011,
}

pub static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// Address of the early UART, also read by boot.S when not entered at EL2.
#[no_mangle]
pub static mut __early_uart: usize = platform::BOARD.early_uart;

pub fn init_early(base: usize) {
    // SAFETY: the board description names the UART that is present; the MMU
    // is off or maps it as device memory.
    let uart = unsafe { Pl011::new(base) };
    *CONSOLE.lock() = Some(Console { uart });
}

/// Write hypervisor output (already formatted, with its `[hv]` prefix).
pub fn write_fmt(args: core::fmt::Arguments) {
    let mut guard = CONSOLE.lock();
    if let Some(c) = guard.as_mut() {
        let _ = c.uart.write_fmt(args);
    }
}

/// Last-resort output for fatal paths: never blocks on the console lock
/// (the CPU that faulted may hold it).
pub struct EmergencyWriter;

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: the board's UART address is valid; concurrent writers can
        // at worst interleave characters, which is acceptable when dying.
        let mut uart = unsafe { Pl011::new(platform::BOARD.early_uart) };
        uart.write_bytes(s.as_bytes());
        Ok(())
    }
}

#[macro_export]
macro_rules! hvprintln {
    ($($arg:tt)*) => {
        $crate::core::console::write_fmt(format_args!("[hv] {}\n", format_args!($($arg)*)))
    };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        use log::Level::*;
        let tag = match r.level() {
            Error => "ERROR: ",
            Warn => "WARN: ",
            Info => "",
            Debug => "debug: ",
            Trace => "trace: ",
        };
        write_fmt(format_args!("[hv] {}{}\n", tag, r.args()));
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if option_env!("BLINK_DEBUG").is_some() {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}
