//! spinner: a guest that never gives its CPU back.
//!
//! Prints `spinner: masking interrupts and spinning`, sets every PSTATE mask
//! bit (D, A, I, F) and then loops forever without an exit of its own: no
//! WFI, no HVC, no MMIO, no system register the hypervisor traps. Only the
//! hypervisor's own physical interrupts (its slice timer, kicks, the UART)
//! can take the CPU back, which they do because HCR_EL2.IMO/FMO route them
//! to EL2 whatever the guest's PSTATE says.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::arch::asm;

    use guests::println;

    pub fn main(_dtb: usize) -> ! {
        println!("spinner: masking interrupts and spinning");
        // SAFETY: only sets the PSTATE mask bits; this vCPU takes no
        // exception of its own from here on, which is the point.
        unsafe { asm!("msr daifset, #0xf", options(nomem, nostack)) };
        loop {
            core::hint::spin_loop();
        }
    }
}
