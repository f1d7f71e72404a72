//! The hypervisor's own UART: the driver, and the last-resort writer for
//! fatal paths.
pub mod pl011;

pub use pl011::Pl011;

/// Last-resort output for fatal paths: never blocks on the console lock
/// (the CPU that faulted may hold it).
pub struct EmergencyWriter;

impl core::fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: the board's console UART address is valid; concurrent
        // writers can at worst interleave characters, which is acceptable
        // when dying.
        let mut uart = unsafe { Pl011::new(crate::board::board().console.base) };
        // Callers write explicit "\r\n" line ends.
        uart.write_raw(s.as_bytes());
        Ok(())
    }
}
