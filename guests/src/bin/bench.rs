//! bench: measures, from inside a VM, what the hypervisor's exits cost.
//!
//! For each kind of exit it runs N iterations and divides the elapsed
//! virtual-counter time: an HVC round trip (PSCI_VERSION), an emulated MMIO
//! read (the console UART's flag register) and a virtual interrupt (an SGI
//! the guest sends itself, from the write until its handler runs). Under
//! QEMU's `-icount shift=0` one instruction advances virtual time by 1 ns, so
//! the same figures are then instruction counts.
//!
//! Prints `bench: start cntfrq=<hz> gic=v<n> iterations=<n>`, then one line
//! `bench: <name> ns_per_op=<x.y> ticks=<t> iterations=<n>` per measurement
//! and finally `bench: done`.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU64, Ordering};

    use guests::println;
    use guests::rt::{self, exception, gic, psci, timer};

    const ITERATIONS: u64 = 2000;
    const SGI: u32 = 3;
    const UART_FR: usize = 0x0900_0018;

    static SGIS_TAKEN: AtomicU64 = AtomicU64::new(0);

    fn on_irq() {
        let iar = gic::ack();
        if gic::intid(iar) == SGI {
            SGIS_TAKEN.fetch_add(1, Ordering::Release);
        }
        gic::eoi(iar);
    }

    fn report(name: &str, ticks: u64) {
        // ns per op with one decimal, in integer arithmetic.
        let tenths = ticks * 10_000_000_000 / timer::frequency() / ITERATIONS;
        println!(
            "bench: {name} ns_per_op={}.{} ticks={ticks} iterations={ITERATIONS}",
            tenths / 10,
            tenths % 10
        );
    }

    fn measure(mut op: impl FnMut()) -> u64 {
        op(); // warm up
        let start = timer::counter();
        for _ in 0..ITERATIONS {
            op();
        }
        timer::counter() - start
    }

    pub fn main(_dtb: usize) -> ! {
        let version = match gic::init() {
            Ok(v) => v,
            Err(e) => {
                println!("bench: ERROR: GIC: {e}");
                rt::halt()
            }
        };
        println!(
            "bench: start cntfrq={} gic=v{} iterations={ITERATIONS}",
            timer::frequency(),
            version.number()
        );
        // Baseline: the loop itself, with no exit.
        report("loop_baseline", measure(|| core::hint::black_box(())));
        report(
            "hvc_roundtrip",
            measure(|| {
                core::hint::black_box(psci::version());
            }),
        );
        report(
            "mmio_read",
            measure(|| {
                // SAFETY: the console UART's flag register; reading it has no
                // side effect.
                core::hint::black_box(unsafe { core::ptr::read_volatile(UART_FR as *const u32) });
            }),
        );
        exception::set_irq_handler(on_irq);
        gic::enable_ppi(SGI);
        rt::enable_irqs();
        report(
            "virq_injection",
            measure(|| {
                let before = SGIS_TAKEN.load(Ordering::Acquire);
                gic::send_sgi_to_self(SGI);
                while SGIS_TAKEN.load(Ordering::Acquire) == before {
                    core::hint::spin_loop();
                }
            }),
        );
        println!("bench: done");
        rt::halt()
    }
}
