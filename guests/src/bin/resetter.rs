//! resetter: restarts its own VM with PSCI SYSTEM_RESET.
//!
//! Prints `resetter: boot fresh=<yes|no> cpus=<n>`: `fresh=yes` when a value
//! in its initialised data still has the value of the image (the hypervisor
//! reloaded the image; each boot changes it before resetting), `cpus` the
//! vCPUs online (the boot vCPU starts vCPU 1, if there is one, which spins
//! without ever exiting on its own so the reset has to fetch it off its
//! CPU). After 0.5 s of counter time it prints `resetter: resetting` and
//! calls SYSTEM_RESET; if that returns it prints `resetter: SYSTEM_RESET
//! returned <err>` and halts.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use guests::println;
    use guests::rt::{self, psci, timer};

    /// In .data: the image's value until this boot overwrites it.
    static IMAGE_VALUE: AtomicU64 = AtomicU64::new(0x5eed_1234_abcd_0001);
    const IMAGE: u64 = 0x5eed_1234_abcd_0001;
    static ONLINE: AtomicUsize = AtomicUsize::new(1);

    fn secondary(_context: u64) -> ! {
        ONLINE.fetch_add(1, Ordering::SeqCst);
        loop {
            core::hint::spin_loop();
        }
    }

    pub fn main(_dtb: usize) -> ! {
        let fresh = IMAGE_VALUE.swap(0xdead, Ordering::SeqCst) == IMAGE;
        if psci::start_secondary(1, secondary, 1) == psci::SUCCESS {
            let start = timer::counter();
            while ONLINE.load(Ordering::SeqCst) < 2
                && timer::counter() - start < timer::ms_to_ticks(2000)
            {
                timer::delay_ms(1);
            }
        }
        let cpus = ONLINE.load(Ordering::SeqCst);
        println!(
            "resetter: boot fresh={} cpus={cpus}",
            if fresh { "yes" } else { "no" }
        );
        timer::delay_ms(500);
        println!("resetter: resetting");
        let err = psci::hvc(psci::SYSTEM_RESET, 0, 0, 0);
        println!("resetter: SYSTEM_RESET returned {err}");
        rt::halt()
    }
}
