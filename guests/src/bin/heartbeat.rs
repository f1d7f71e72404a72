//! heartbeat: a busy loop that measures how long the vCPU was not running.
//!
//! Reads the virtual counter in a tight loop and tracks the largest gap
//! between two consecutive reads (time the vCPU was descheduled, e.g. during
//! a hypervisor warm reboot). Once per second of counter time it prints
//! `heartbeat: n=<seconds> count=<loop iterations> max_gap_us=<u> max_gap_ticks=<t> max_gap_end=<c>`
//! where count and max_gap cover the last interval only, and max_gap_end is
//! the virtual counter when the largest gap ended. If the interval had gaps
//! longer than 200 us, a second line lists them (the 8 longest),
//! `heartbeat: long gaps (ticks@end): <t>@<c> ...` (a reload's gap can be
//! told from the guest's other pauses, e.g. a VM sharing its CPU, by lining
//! them up with the hypervisor's counter values). Runs forever.
//!
//! With `heartbeat.report=quiet` in its `bootargs` (what `cargo xtask run`
//! gives it, so that the demo's Linux shell stays readable) it prints
//! instead `heartbeat: up <s> s, longest gap <ms> ms` every 10 s and, at
//! once, `heartbeat: gap of <ms> ms at <s> s` for any gap above 50 ms. The
//! default lines above are what the tests and benches parse; the quiet
//! lines never start with `heartbeat: n=`, so they cannot be mistaken for
//! them.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use guests::rt::{dtb, timer};
    use guests::{print, println};

    /// Seconds between two reports in quiet mode.
    const QUIET_EVERY_S: u64 = 10;
    /// A gap above this is reported at once in quiet mode: well above the
    /// ordinary pauses of a vCPU sharing its CPU, well below what a person
    /// would call a hang.
    const QUIET_GAP_MS: u64 = 50;

    pub fn main(dtb_addr: usize) -> ! {
        let freq = timer::frequency();
        let start = timer::counter();
        // The virtual counter starts near zero when the VM is created, so
        // `counter` is how long the VM took from creation to its workload
        // (used by `cargo xtask bench reload` for the cold path).
        println!("heartbeat: start cntfrq={freq} counter={start}");
        let freq = freq.max(1);
        // No bootargs, or a tree that cannot be read, means the detailed
        // reports: they are what the tests rely on.
        if matches!(dtb::bootargs(dtb_addr), Ok(Some(args)) if args.split_whitespace().any(|a| a == "heartbeat.report=quiet"))
        {
            quiet(start, freq);
        }
        let mut next_report = start + freq;
        // Printing the start line is not a gap either.
        let mut last = timer::counter();
        let mut count: u64 = 0;
        let mut max_gap: u64 = 0;
        // Virtual counter at the end of the largest gap, to line it up with
        // the hypervisor's reload timestamps (system counter = virtual +
        // the VM's offset).
        let mut max_gap_end: u64 = 0;
        let long = freq / 5000;
        let mut long_gaps = [(0u64, 0u64); 8];
        let mut n_long = 0;
        loop {
            let now = timer::counter();
            let gap = now.wrapping_sub(last);
            if gap > max_gap {
                max_gap = gap;
                max_gap_end = now;
            }
            if gap > long {
                // Keep the 8 longest: a busy second cannot push a reload's
                // gap out of the list.
                if n_long < long_gaps.len() {
                    long_gaps[n_long] = (gap, now);
                    n_long += 1;
                } else if let Some(min) = long_gaps.iter_mut().min_by_key(|g| g.0) {
                    if gap > min.0 {
                        *min = (gap, now);
                    }
                }
            }
            last = now;
            count += 1;
            if now >= next_report {
                // Seconds of counter time, so a long pause shows up as a jump in n.
                let n = (now - start) / freq;
                println!(
                    "heartbeat: n={n} count={count} max_gap_us={} max_gap_ticks={max_gap} max_gap_end={max_gap_end}",
                    timer::ticks_to_us(max_gap)
                );
                if n_long > 0 {
                    print!("heartbeat: long gaps (ticks@end):");
                    for (t, end) in &long_gaps[..n_long] {
                        print!(" {t}@{end}");
                    }
                    println!();
                }
                next_report = start + (n + 1) * freq;
                count = 0;
                max_gap = 0;
                n_long = 0;
                // Printing is slow (the UART may trap): don't count it as a gap.
                last = timer::counter();
            }
        }
    }

    /// Milliseconds with one decimal, for a person: `12.3`.
    struct Ms(u64);

    impl core::fmt::Display for Ms {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "{}.{}", self.0 / 1000, self.0 % 1000 / 100)
        }
    }

    /// The quiet reports (see the module comment): the same loop, fewer
    /// and shorter lines.
    fn quiet(start: u64, freq: u64) -> ! {
        println!(
            "heartbeat: quiet: a line every {QUIET_EVERY_S} s, and at once for a gap over {QUIET_GAP_MS} ms"
        );
        let every = QUIET_EVERY_S * freq;
        let threshold = QUIET_GAP_MS * freq / 1000;
        let mut next_report = start + every;
        let mut last = timer::counter();
        let mut max_gap: u64 = 0;
        loop {
            let now = timer::counter();
            let gap = now.wrapping_sub(last);
            max_gap = max_gap.max(gap);
            if gap > threshold {
                println!(
                    "heartbeat: gap of {} ms at {} s",
                    Ms(timer::ticks_to_us(gap)),
                    (now - start) / freq
                );
                // Printing is slow (the UART may trap): don't count it as a gap.
                last = timer::counter();
                continue;
            }
            last = now;
            if now >= next_report {
                let up = (now - start) / freq;
                println!(
                    "heartbeat: up {up} s, longest gap {} ms",
                    Ms(timer::ticks_to_us(max_gap))
                );
                next_report = start + (up / QUIET_EVERY_S + 1) * every;
                max_gap = 0;
                last = timer::counter();
            }
        }
    }
}
