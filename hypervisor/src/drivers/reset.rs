//! Resetting the whole machine the board's way (`platform::Reset`): PSCI
//! SYSTEM_RESET, or the BCM2835 watchdog on the Raspberry Pi.
use super::{bcm2835_wdt, psci};
use alloc::string::String;
use platform::Reset;

/// Reset the machine. Returns only if it did not happen, with why (a full
/// sentence); `waiting` is polled while a watchdog reset is under way and
/// says whether to keep waiting.
pub fn system_reset(how: Reset, waiting: impl FnMut() -> bool) -> String {
    match how {
        Reset::Psci => match psci::conduit() {
            Some(c) => {
                let r = psci::system_reset(c);
                alloc::format!("reboot: PSCI SYSTEM_RESET failed: {:?}", r)
            }
            None => {
                String::from("reboot: no PSCI conduit in the device tree; cannot reset the machine")
            }
        },
        Reset::Bcm2835Watchdog { base } => {
            // SAFETY: the board names its PM block; boot maps the window
            // `Reset::mmio` gives as device memory.
            unsafe { bcm2835_wdt::restart(base, waiting) };
            alloc::format!(
                "reboot: the watchdog at {:#x} was armed for a full reset, but the machine is still running",
                base
            )
        }
    }
}
