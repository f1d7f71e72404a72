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
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use guests::rt::timer;
    use guests::{print, println};

    pub fn main(_dtb: usize) -> ! {
        let freq = timer::frequency();
        let start = timer::counter();
        // The virtual counter starts near zero when the VM is created, so
        // `counter` is how long the VM took from creation to its workload
        // (used by `cargo xtask bench reload` for the cold path).
        println!("heartbeat: start cntfrq={freq} counter={start}");
        let freq = freq.max(1);
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
}
