//! timer: virtual timer interrupts through the GIC at 100 Hz.
//!
//! Prints `timer: start gic=v<2|3> period_ms=10`, then every 100 ticks
//! `timer: ticks=<n> elapsed_us=<us> rate_hz=<r>` (elapsed virtual-counter
//! time since the timer was armed, rate rounded to an integer), and after 5
//! reports `timer: done`; it then stops the timer and idles in `wfi`.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU64, Ordering};

    use guests::println;
    use guests::rt::{self, exception, gic, timer};

    const PERIOD_MS: u64 = 10;
    const TICKS_PER_REPORT: u64 = 100;
    const REPORTS: u32 = 5;

    /// Timer period in counter ticks (set before the timer is enabled).
    static PERIOD: AtomicU64 = AtomicU64::new(0);
    static TICKS: AtomicU64 = AtomicU64::new(0);
    /// Tick count and counter value at the latest multiple of TICKS_PER_REPORT
    /// (written by the IRQ handler, read with IRQs masked).
    static MARK_TICKS: AtomicU64 = AtomicU64::new(0);
    static MARK_COUNTER: AtomicU64 = AtomicU64::new(0);

    fn on_irq() {
        let iar = gic::ack();
        let intid = gic::intid(iar);
        if intid >= gic::SPURIOUS_FIRST {
            return;
        }
        if intid == timer::VIRTUAL_TIMER_INTID {
            let now = timer::counter();
            // Re-arm relative to the previous deadline so the average rate is
            // exact; if we fell behind (vCPU not running), skip the missed
            // ticks instead of firing a burst.
            let period = PERIOD.load(Ordering::Relaxed);
            let mut next = timer::virtual_timer_compare().wrapping_add(period);
            if next <= now {
                next = now + period;
            }
            timer::set_virtual_timer_compare(next);
            let ticks = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
            if ticks.is_multiple_of(TICKS_PER_REPORT) {
                MARK_COUNTER.store(now, Ordering::Relaxed);
                MARK_TICKS.store(ticks, Ordering::Relaxed);
            }
        } else {
            println!("timer: unexpected interrupt {intid}");
        }
        gic::eoi(iar);
    }

    fn stop(message: core::fmt::Arguments<'_>) -> ! {
        println!("timer: ERROR: {message}");
        rt::halt()
    }

    pub fn main(_dtb: usize) -> ! {
        let version = match gic::init() {
            Ok(v) => v,
            Err(e) => stop(format_args!("GIC: {e}")),
        };
        if timer::frequency() == 0 {
            stop(format_args!("CNTFRQ_EL0 is 0"));
        }
        println!(
            "timer: start gic=v{} period_ms={PERIOD_MS}",
            version.number()
        );
        let period = timer::ms_to_ticks(PERIOD_MS);
        PERIOD.store(period, Ordering::Relaxed);
        exception::set_irq_handler(on_irq);
        gic::enable_ppi(timer::VIRTUAL_TIMER_INTID);
        let start = timer::counter();
        timer::set_virtual_timer_in(period);
        timer::enable_virtual_timer(true);
        rt::enable_irqs();

        let mut reported = 0;
        let mut last_mark = 0;
        while reported < REPORTS {
            rt::wait_for_interrupt();
            let (ticks, at) = rt::without_irqs(|| {
                (
                    MARK_TICKS.load(Ordering::Relaxed),
                    MARK_COUNTER.load(Ordering::Relaxed),
                )
            });
            if ticks == last_mark {
                continue;
            }
            last_mark = ticks;
            reported += 1;
            let elapsed_us = timer::ticks_to_us(at - start).max(1);
            let rate_hz = (ticks * 1_000_000 + elapsed_us / 2) / elapsed_us;
            println!("timer: ticks={ticks} elapsed_us={elapsed_us} rate_hz={rate_hz}");
        }
        println!("timer: done");
        timer::enable_virtual_timer(false);
        loop {
            rt::wait_for_interrupt();
        }
    }
}
