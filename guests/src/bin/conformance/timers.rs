//! The two EL1 timers a guest may rely on: the virtual one (PPI 27) and
//! the physical one (PPI 30), each a level-sensitive interrupt whose
//! pending state follows the timer's output (the line), as on hardware.
//!
//! Both run on vCPU 0 while the secondaries idle; the GIC checks' IRQ
//! handler hands the two timer INTIDs to [`on_irq`] while a check here
//! runs.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guests::println;
use guests::rt::gic;
use guests::rt::timer::{self, Timer, CTL_ENABLE, CTL_IMASK, CTL_ISTATUS};

use crate::report::{wait_until, Tally, PROGRESS_TIMEOUT_MS};

/// What [`on_irq`] does with a timer interrupt.
const PHASE_OFF: u32 = 0;
/// Count it and mask the timer (IMASK), so it fires once.
const PHASE_ONCE: u32 = 1;
/// Periodic: count it, then move the compare value one period on.
const PHASE_PERIODIC: u32 = 2;
static PHASE: AtomicU32 = AtomicU32::new(PHASE_OFF);

/// Per-timer bookkeeping of [`on_irq`], indexed like [`Timer::BOTH`].
struct Record {
    fired: AtomicU32,
    /// Interrupts taken while the timer's counter was below its compare
    /// value: a copy that should have been withdrawn when the line dropped.
    early: AtomicU32,
    /// Largest delay from a deadline to its handler, in counter ticks.
    max_late: AtomicU64,
    period: AtomicU64,
    /// PHASE_PERIODIC stops the timer after this many interrupts.
    limit: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)] // only initialises the array
const RECORD: Record = Record {
    fired: AtomicU32::new(0),
    early: AtomicU32::new(0),
    max_late: AtomicU64::new(0),
    period: AtomicU64::new(0),
    limit: AtomicU32::new(0),
};
static RECORDS: [Record; 2] = [RECORD; 2];

fn record(t: Timer) -> &'static Record {
    &RECORDS[t as usize]
}

fn reset_records() {
    for r in &RECORDS {
        r.fired.store(0, Ordering::SeqCst);
        r.early.store(0, Ordering::SeqCst);
        r.max_late.store(0, Ordering::SeqCst);
    }
}

/// Called by the IRQ handler for every interrupt; takes the timer INTIDs on
/// vCPU 0 while a check of this module runs (returns whether it did).
pub fn on_irq(intid: u32, cpu: usize) -> bool {
    let phase = PHASE.load(Ordering::SeqCst);
    if phase == PHASE_OFF || cpu != 0 {
        return false;
    }
    let Some(t) = Timer::BOTH.into_iter().find(|t| t.intid() == intid) else {
        return false;
    };
    let r = record(t);
    let (now, deadline, ctl) = (t.count(), t.compare(), t.ctl());
    if ctl & CTL_ENABLE == 0 || ctl & CTL_IMASK != 0 || now < deadline {
        // The timer's output is low: the GIC should not have signalled it.
        r.early.fetch_add(1, Ordering::SeqCst);
        return true;
    }
    r.max_late.fetch_max(now - deadline, Ordering::SeqCst);
    let fired = r.fired.fetch_add(1, Ordering::SeqCst) + 1;
    if phase == PHASE_PERIODIC && fired < r.limit.load(Ordering::SeqCst) {
        t.set_compare(deadline + r.period.load(Ordering::SeqCst));
    } else {
        t.set_ctl(CTL_ENABLE | CTL_IMASK);
    }
    true
}

/// `timer_level_resampled`: for each timer, with its PPI disabled at the
/// GIC, the timer fires (the PPI reads pending), is then turned off (the
/// line drops: the PPI reads not pending) and the PPI is enabled again: no
/// interrupt may come. Then, as a control, the timer fires with the PPI
/// enabled and its interrupt must come.
pub fn level_resampled(t: &mut Tally) {
    let name = "timer_level_resampled";
    reset_records();
    PHASE.store(PHASE_ONCE, Ordering::SeqCst);
    let outcome = Timer::BOTH.into_iter().try_for_each(level_sequence);
    PHASE.store(PHASE_OFF, Ordering::SeqCst);
    match outcome {
        Ok(()) => t.pass(name),
        Err((timer, why)) => t.fail(name, format_args!("{} timer: {why}", timer.name())),
    }
}

fn level_sequence(t: Timer) -> Result<(), (Timer, &'static str)> {
    let fail = |why| Err((t, why));
    let r = record(t);
    let intid = t.intid();
    t.set_ctl(0);
    gic::disable_ppi(intid);
    gic::clear_ppi_pending(intid);
    // Fire at once, unmasked at the timer, masked at the GIC.
    t.set_compare(t.count());
    t.set_ctl(CTL_ENABLE);
    if !wait_until(PROGRESS_TIMEOUT_MS, || t.ctl() & CTL_ISTATUS != 0) {
        return fail("ISTATUS never set with the compare value in the past");
    }
    if !wait_until(PROGRESS_TIMEOUT_MS, || gic::ppi_pending(intid)) {
        return fail("fired while disabled at the GIC, but its PPI never read pending");
    }
    // The line drops: the pending state must follow it.
    t.set_ctl(0);
    if !wait_until(PROGRESS_TIMEOUT_MS, || !gic::ppi_pending(intid)) {
        return fail("turned off (CTL = 0), but its PPI still reads pending");
    }
    gic::enable_ppi(intid);
    timer::delay_ms(20);
    if r.fired.load(Ordering::SeqCst) != 0 || r.early.load(Ordering::SeqCst) != 0 {
        return fail("turned off while disabled at the GIC, yet delivered once enabled");
    }
    // Control: with the PPI enabled, the same timer's interrupt comes.
    t.set_compare(t.count());
    t.set_ctl(CTL_ENABLE);
    let came = wait_until(PROGRESS_TIMEOUT_MS, || r.fired.load(Ordering::SeqCst) == 1);
    t.set_ctl(0);
    if !came {
        return fail("fired with its PPI enabled, but no interrupt came");
    }
    Ok(())
}

/// Firings of the physical timer the rate check waits for.
const RATE_FIRINGS: u32 = 20;
const PHYSICAL_PERIOD_MS: u64 = 10;
/// Not a divisor of the physical period, so the two timers' deadlines
/// drift against each other.
const VIRTUAL_PERIOD_MS: u64 = 7;

/// `timers_rate`: both timers run at once, periodic (each handler moves
/// its compare value one period on): the virtual one every 7 ms, the
/// physical one every 10 ms, until the physical one fired 20 times. No
/// interrupt may come before its deadline (e.g. a stale copy), and the
/// virtual timer must have fired once per 7 ms that passed on its counter
/// (a lost interrupt stops its chain of deadlines). Both counters must advance at the
/// same rate (CNTFRQ_EL0's).
pub fn rates(t: &mut Tally) {
    let name = "timers_rate";
    reset_records();
    let periods = [VIRTUAL_PERIOD_MS, PHYSICAL_PERIOD_MS].map(timer::ms_to_ticks);
    for (timer, period) in Timer::BOTH.into_iter().zip(periods) {
        let r = record(timer);
        r.period.store(period, Ordering::SeqCst);
        r.limit.store(u32::MAX, Ordering::SeqCst);
        timer.set_ctl(0);
        gic::enable_ppi(timer.intid());
    }
    record(Timer::Physical)
        .limit
        .store(RATE_FIRINGS, Ordering::SeqCst);
    PHASE.store(PHASE_PERIODIC, Ordering::SeqCst);
    let offset_before = counter_offset();
    let starts = Timer::BOTH.map(|timer| {
        let start = timer.count();
        timer.set_compare(start + record(timer).period.load(Ordering::SeqCst));
        timer.set_ctl(CTL_ENABLE);
        start
    });
    let budget = PHYSICAL_PERIOD_MS * u64::from(RATE_FIRINGS) + 5 * PROGRESS_TIMEOUT_MS;
    let done = wait_until(budget, || {
        record(Timer::Physical).fired.load(Ordering::SeqCst) >= RATE_FIRINGS
    });
    let ends = Timer::BOTH.map(|timer| timer.count());
    let offset_after = counter_offset();
    // Deadlines of the virtual timer that passed by then; the last ones
    // may still be on their way (e.g. this vCPU was just rescheduled).
    let expected = ((ends[0] - starts[0]) / periods[0]) as u32;
    let caught_up = wait_until(PROGRESS_TIMEOUT_MS, || {
        record(Timer::Virtual).fired.load(Ordering::SeqCst) >= expected
    });
    let virtual_fired = record(Timer::Virtual).fired.load(Ordering::SeqCst);
    for timer in Timer::BOTH {
        timer.set_ctl(0);
    }
    PHASE.store(PHASE_OFF, Ordering::SeqCst);

    let [v, p] = Timer::BOTH.map(record);
    let elapsed = [ends[0] - starts[0], ends[1] - starts[1]];
    println!(
        "INFO timers_rate: CNTFRQ {} Hz; virtual fired {virtual_fired}x (latest {} us late), \
         physical {}x (latest {} us late) in {} ms",
        timer::frequency(),
        timer::ticks_to_us(v.max_late.load(Ordering::SeqCst)),
        p.fired.load(Ordering::SeqCst),
        timer::ticks_to_us(p.max_late.load(Ordering::SeqCst)),
        timer::ticks_to_us(elapsed[1]) / 1000
    );
    let drift = (offset_after.wrapping_sub(offset_before) as i64).unsigned_abs();
    if !done {
        t.fail(
            name,
            format_args!(
                "the physical timer fired {} of {RATE_FIRINGS} times in {budget} ms",
                p.fired.load(Ordering::SeqCst)
            ),
        )
    } else if v.early.load(Ordering::SeqCst) + p.early.load(Ordering::SeqCst) != 0 {
        t.fail(
            name,
            format_args!(
                "interrupts before their deadline: virtual {}, physical {}",
                v.early.load(Ordering::SeqCst),
                p.early.load(Ordering::SeqCst)
            ),
        )
    } else if !caught_up {
        t.fail(
            name,
            format_args!(
                "the virtual timer fired {virtual_fired} times in {} ms, expected {expected} \
                 (one per {VIRTUAL_PERIOD_MS} ms)",
                timer::ticks_to_us(elapsed[0]) / 1000
            ),
        )
    } else if drift > timer::ms_to_ticks(1) {
        t.fail(
            name,
            format_args!(
                "CNTPCT_EL0 - CNTVCT_EL0 moved by {drift} ticks in {} ms: the counters run at \
                 different rates",
                timer::ticks_to_us(elapsed[1]) / 1000
            ),
        )
    } else {
        t.pass(name)
    }
}

/// CNTPCT_EL0 - CNTVCT_EL0 (CNTVOFF_EL2, as the VM sees it), from a pair
/// of reads that nothing came between: a virtual read on either side of
/// the physical one, less than 1/16 ms apart (retried otherwise).
fn counter_offset() -> u64 {
    let close = timer::ms_to_ticks(1) / 16;
    let mut best = (u64::MAX, 0);
    for _ in 0..16 {
        let before = Timer::Virtual.count();
        let physical = Timer::Physical.count();
        let after = Timer::Virtual.count();
        let offset = physical.wrapping_sub(before);
        if after - before < best.0 {
            best = (after - before, offset);
        }
        if after - before < close {
            break;
        }
    }
    best.1
}
