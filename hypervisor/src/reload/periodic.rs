//! Periodic reload (`/chosen/blink,rejuvenate-interval-ms`): CPU 0 starts
//! a warm reload every so many milliseconds, counted from when the image
//! started, so the period carries on across reloads.
use super::slots::Target;
use super::state;
use crate::arch::aarch64::sysreg::{counter, counter_freq};
use core::sync::atomic::Ordering;
use log::error;

/// Reload every `ms` milliseconds, the first time `ms` after `from`.
pub fn set(ms: u32, from: u64) {
    let s = state();
    s.periodic_ms.store(ms as u64, Ordering::Relaxed);
    s.periodic_due
        .store(from + counter_freq() * ms as u64 / 1000, Ordering::Release);
}

/// After an attempt that did not happen: the next one a period from now.
pub fn restart() {
    let ms = state().periodic_ms.load(Ordering::Relaxed);
    if ms != 0 {
        set(ms as u32, counter());
    }
}

/// Counter value at which the next periodic reload is due (`u64::MAX`:
/// none).
pub fn due() -> u64 {
    state().periodic_due.load(Ordering::Acquire)
}

/// CPU 0, between guest exits: start the periodic reload when it is due.
pub fn check() {
    let s = state();
    let due = s.periodic_due.load(Ordering::Acquire);
    if due != u64::MAX && counter() >= due && !crate::vcpu::quiesce::requested() {
        // One attempt per period: if it cannot start, say so and go on.
        s.periodic_due.store(u64::MAX, Ordering::Release);
        hvprintln!(
            "rejuvenate: periodic reload (every {} ms)",
            s.periodic_ms.load(Ordering::Relaxed)
        );
        if let Err(why) = super::request(Target::Current) {
            error!("{}", why);
            set(s.periodic_ms.load(Ordering::Relaxed) as u32, counter());
        }
    }
}
