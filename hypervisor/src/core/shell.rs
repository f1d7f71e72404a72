//! The hypervisor's own shell on the console (input focus `Ctrl-] h`).
use super::{heap, hyp};
use crate::arch::aarch64::sysreg::{counter, counter_freq};
use alloc::string::String;
use spin::Mutex;

static LINE: Mutex<String> = Mutex::new(String::new());

pub fn input(byte: u8) {
    let mut line = LINE.lock();
    match byte {
        b'\r' | b'\n' => {
            let cmd = core::mem::take(&mut *line);
            drop(line);
            run(cmd.trim());
        }
        0x7f | 0x08 => {
            line.pop();
        }
        b if (0x20..0x7f).contains(&b) && line.len() < 128 => line.push(b as char),
        _ => {}
    }
}

fn run(cmd: &str) {
    match cmd {
        "" => {}
        "help" => hvprintln!(
            "commands: help, status, rejuvenate (warm reload: VMs keep running), debug-fault (test the EL2 fault report: stops this CPU)"
        ),
        "rejuvenate" => super::rejuvenate::request(),
        "debug-rejuvenate-corrupt" => super::rejuvenate::request_corrupted(),
        "status" => status(),
        "debug-fault" => debug_fault(),
        other => hvprintln!("unknown command '{}' (try 'help')", other),
    }
}

pub fn status() {
    let h = hyp();
    let (used, total) = heap::usage();
    let secs = counter() / counter_freq();
    hvprintln!(
        "uptime {} s, generation {}, heap {} KiB used of {} KiB, {} CPUs",
        secs,
        super::rejuvenate::GENERATION.load(core::sync::atomic::Ordering::Relaxed),
        used / 1024,
        total / 1024,
        h.ncpus
    );
    for vm in &h.vms {
        hvprintln!("vm {} '{}': {:?}, {} MiB at {:#x}, {} vCPUs", vm.id, vm.name, vm.state(), vm.ram_size >> 20, vm.ram_pa, vm.vcpus.len());
    }
}

/// Deliberately take a data abort at EL2, to check that an unexpected
/// exception is reported (decoded syndrome, registers) and stops only the
/// CPU it happened on.
fn debug_fault() {
    hvprintln!("debug-fault: reading an unmapped address at EL2 on cpu {}", crate::arch::aarch64::sysreg::cpu_index());
    // SAFETY: not sound on purpose: the address is unmapped in the EL2 page
    // tables, so the load faults and the fault handler stops this CPU.
    unsafe { core::ptr::read_volatile(0xdead_0000_0000 as *const u64) };
}
