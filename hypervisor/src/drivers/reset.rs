//! Resetting the whole machine the board's way (`platform::Reset`): PSCI
//! SYSTEM_RESET, or the BCM2835 watchdog on the Raspberry Pi.
use super::{bcm2835_wdt, psci};
use alloc::string::String;
use platform::Reset;
use psci::Conduit;

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

/// A reset spelled out for code that cannot call these drivers: the
/// holding pen, which runs with its MMU off in no image (reload.S).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// `smc #0` with x0 = this PSCI function.
    Smc { function: u32 },
    /// Two 32-bit writes, in order, as (physical address, value).
    Mmio32([(u64, u32); 2]),
}

/// The machine's reset as a [`Recipe`], if it can be spelled as one: PSCI
/// only through SMC (an HVC from EL2 would come back to EL2 itself).
pub fn recipe(how: Reset) -> Option<Recipe> {
    match how {
        Reset::Psci => (psci::conduit() == Some(Conduit::Smc)).then_some(Recipe::Smc {
            function: smccc::psci::PSCI_SYSTEM_RESET,
        }),
        Reset::Bcm2835Watchdog { base } => {
            // SAFETY: as in `system_reset`: the board names its PM block and
            // boot maps it as device memory.
            let writes = unsafe { bcm2835_wdt::reset_writes(base) };
            Some(Recipe::Mmio32(writes))
        }
    }
}
