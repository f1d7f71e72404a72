//! smp: PSCI CPU_ON / CPU_OFF / AFFINITY_INFO.
//!
//! Prints `smp: boot cpu online`, starts vCPUs with Aff0 = 1..7 one at a time
//! (stopping at the first INVALID_PARAMETERS, i.e. no such vCPU); each prints
//! `smp: cpu <n> online`. Then `smp: <n> cpus online`. The highest secondary
//! turns itself off with CPU_OFF; the boot vCPU polls AFFINITY_INFO until it
//! reports OFF and prints `smp: cpu_off ok`, then `smp: done`.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use guests::println;
    use guests::rt::{self, psci, timer, MAX_CPUS};

    /// Secondaries that have reached Rust code.
    static ONLINE: AtomicUsize = AtomicUsize::new(0);
    /// Aff0 of the secondary that must call CPU_OFF; 0 = not decided yet,
    /// u64::MAX = nobody (the others then park in `wfi`).
    static OFF_TARGET: AtomicU64 = AtomicU64::new(0);
    const NOBODY: u64 = u64::MAX;

    fn secondary(context: u64) -> ! {
        let me = rt::cpu_id() as u64;
        if me != context {
            println!("smp: cpu {me} started with context {context}");
        }
        println!("smp: cpu {me} online");
        ONLINE.fetch_add(1, Ordering::SeqCst);
        loop {
            match OFF_TARGET.load(Ordering::SeqCst) {
                0 => {}
                target if target == me => {
                    let err = psci::cpu_off();
                    println!("smp: cpu {me}: CPU_OFF returned {err}");
                    rt::halt();
                }
                _ => rt::halt(),
            }
            // SAFETY: waits for an event (the boot vCPU's `sev`); no memory effects.
            unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
        }
    }

    /// Polls `done` every millisecond for up to `ms` of counter time.
    fn wait_until(ms: u64, mut done: impl FnMut() -> bool) -> bool {
        let start = timer::counter();
        let limit = timer::ms_to_ticks(ms);
        while !done() {
            if timer::counter().wrapping_sub(start) > limit {
                return false;
            }
            timer::delay_ms(1);
        }
        true
    }

    pub fn main(_dtb: usize) -> ! {
        println!("smp: boot cpu online");
        let mut highest = None;
        for cpu in 1..MAX_CPUS as u64 {
            // Read before CPU_ON: the new vCPU may be online before it returns.
            let expected = ONLINE.load(Ordering::SeqCst) + 1;
            match psci::start_secondary(cpu, secondary, cpu) {
                psci::SUCCESS => {
                    // One at a time, so the output order is deterministic.
                    if wait_until(2000, || ONLINE.load(Ordering::SeqCst) >= expected) {
                        highest = Some(cpu);
                    } else {
                        println!("smp: cpu {cpu} did not come online");
                    }
                }
                psci::INVALID_PARAMETERS => break,
                err => println!("smp: CPU_ON cpu {cpu} failed: {err}"),
            }
        }
        println!("smp: {} cpus online", 1 + ONLINE.load(Ordering::SeqCst));

        match highest {
            Some(cpu) => {
                OFF_TARGET.store(cpu, Ordering::SeqCst);
                // SAFETY: wakes vCPUs waiting in `wfe`; no memory effects.
                unsafe { core::arch::asm!("dsb ish", "sev", options(nomem, nostack)) };
                let mut state = psci::affinity_info(cpu);
                let off = wait_until(5000, || {
                    state = psci::affinity_info(cpu);
                    state == psci::AFFINITY_OFF
                });
                if off {
                    println!("smp: cpu_off ok");
                } else {
                    println!("smp: cpu_off FAILED: AFFINITY_INFO(cpu {cpu}) = {state}");
                }
            }
            None => {
                OFF_TARGET.store(NOBODY, Ordering::SeqCst);
                println!("smp: no secondary cpu to turn off");
            }
        }
        println!("smp: done");
        rt::halt()
    }
}
