//! heartbeat: a busy loop that measures how long the vCPU was not running.
//!
//! Reads the virtual counter in a tight loop and tracks the largest gap
//! between two consecutive reads (time the vCPU was descheduled, e.g. during
//! a hypervisor warm reboot). Once per second of counter time it prints
//! `heartbeat: n=<seconds> count=<loop iterations> max_gap_us=<u> max_gap_ticks=<t> max_gap_end=<c>`
//! where count and max_gap cover the last interval only, and max_gap_end is
//! the virtual counter when the largest gap ended. Runs forever.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
guests::entry!(guest::main);

/// Host builds (e.g. `cargo clippy --workspace`) get an empty program.
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod guest {
    use guests::println;
    use guests::rt::timer;

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
        loop {
            let now = timer::counter();
            if now.wrapping_sub(last) > max_gap {
                max_gap = now.wrapping_sub(last);
                max_gap_end = now;
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
                next_report = start + (n + 1) * freq;
                count = 0;
                max_gap = 0;
                // Printing is slow (the UART may trap): don't count it as a gap.
                last = timer::counter();
            }
        }
    }
}
