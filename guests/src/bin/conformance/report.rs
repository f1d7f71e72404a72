//! The check results (one line each, a summary at the end) and the bounded
//! waits every check uses.

use core::fmt;

use guests::println;
use guests::rt::{self, timer};

/// A bounded wait fails after this much counter time without progress.
pub const PROGRESS_TIMEOUT_MS: u64 = 1000;

/// The first of several events, packed into one word: 1 << 63 | a << 32 | b.
pub const SEEN: u64 = 1 << 63;

#[derive(Default)]
pub struct Tally {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Tally {
    pub fn pass(&mut self, name: &str) {
        self.passed += 1;
        println!("PASS {name}");
    }

    pub fn fail(&mut self, name: &str, detail: fmt::Arguments<'_>) {
        self.failed += 1;
        println!("FAIL {name}: {detail}");
    }

    pub fn skip(&mut self, name: &str, why: fmt::Arguments<'_>) {
        self.skipped += 1;
        println!("SKIP {name}: {why}");
    }

    pub fn summary(&self) -> ! {
        println!(
            "conformance: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        rt::halt()
    }
}

/// Polls `done` until it holds or `ms` of counter time have passed.
/// The counter is read only every 1024 polls: under QEMU TCG a counter
/// read costs far more than a load.
pub fn wait_until(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = timer::counter();
    let limit = timer::ms_to_ticks(ms);
    let mut polls = 0u32;
    while !done() {
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) && timer::counter().wrapping_sub(start) > limit {
            return done();
        }
        core::hint::spin_loop();
    }
    true
}
