//! mempattern: fills free RAM with an address-dependent pattern and keeps
//! verifying it (catches a hypervisor that loses or aliases guest memory).
//!
//! The region is from the end of the image (incl. BSS and stacks, rounded up
//! to 2 MiB) to the DTB (x0), or to the end of RAM if the DTB lies below the
//! image. Prints `mempattern: filled <n> MiB`, then every ~2 s of counter time
//! `mempattern: pass <k>: <n> MiB ok`, or, for a pass that finds corruption,
//! the first bad word as `mempattern: MISMATCH at 0x<addr>: expected 0x<e> got 0x<g>`
//! followed by `mempattern: pass <k>: <m> mismatches`.
#![cfg_attr(target_os = "none", no_std, no_main)]

guests::entry!(guest::main);

#[cfg(target_os = "none")]
mod guest {
    use guests::println;
    use guests::rt::{self, dtb, timer};

    const MIB: u64 = 1 << 20;
    const ALIGN: u64 = 2 * MIB;
    const PASS_INTERVAL_MS: u64 = 2000;

    /// Word stored at `addr`: unique per address (odd multiplier = bijection),
    /// never 0 or a copy of a neighbour, and the same in every pass.
    fn pattern(addr: u64) -> u64 {
        addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_5a5a_5a5a_5a5a
    }

    fn words(start: u64, end: u64) -> impl Iterator<Item = u64> {
        (start..end).step_by(8)
    }

    pub fn main(dtb_addr: usize) -> ! {
        let info = match dtb::parse(dtb_addr) {
            Ok(info) => info,
            Err(e) => {
                println!("mempattern: ERROR: device tree at {dtb_addr:#x}: {e}");
                rt::halt();
            }
        };
        let start = (rt::image_end() as u64).next_multiple_of(ALIGN);
        let end = if info.dtb_addr >= start {
            info.dtb_addr & !7
        } else {
            info.ram_end()
        };
        if end <= start {
            println!("mempattern: ERROR: no free RAM between {start:#x} and {end:#x}");
            rt::halt();
        }
        let mib = (end - start) / MIB;

        for addr in words(start, end) {
            // SAFETY: [start, end) is RAM of this VM used by nothing else: it
            // lies after the image (incl. stacks) and before the DTB/RAM end
            // (checked against the DTB's memory node), and the identity map
            // covers it.
            unsafe { core::ptr::write_volatile(addr as *mut u64, pattern(addr)) };
        }
        println!("mempattern: filled {mib} MiB");

        for pass in 1u64.. {
            let mut mismatches = 0u64;
            for addr in words(start, end) {
                // SAFETY: as above; volatile so every pass really reads memory.
                let got = unsafe { core::ptr::read_volatile(addr as *const u64) };
                let expected = pattern(addr);
                if got != expected {
                    if mismatches == 0 {
                        println!("mempattern: MISMATCH at {addr:#x}: expected {expected:#x} got {got:#x}");
                    }
                    mismatches += 1;
                }
            }
            if mismatches == 0 {
                println!("mempattern: pass {pass}: {mib} MiB ok");
            } else {
                println!("mempattern: pass {pass}: {mismatches} mismatches");
            }
            timer::delay_ms(PASS_INTERVAL_MS);
        }
        rt::halt()
    }
}
