//! The hypervisor's own shell on the console (input focus `Ctrl-] h`).
use super::image_slots::Target;
use super::{heap, hyp};
use crate::arch::aarch64::firmware;
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
        "help" => {
            hvprintln!("commands: help, status (VMs and aging indicators), exits (guest exits by kind since this image started, summed over CPUs), images (the image slots)");
            hvprintln!("  rejuvenate (warm reload into a fresh copy of this image: VMs keep running), upgrade (warm reload into the image in the other slot; after an upgrade that is the previous image, i.e. a rollback)");
            hvprintln!("  reboot (cold reset of the machine: VMs start afresh), debug-leak <KiB> (leak hypervisor heap, to see a reload clear it), debug-fault (test the EL2 fault report: stops this CPU)");
            hvprintln!("  debug-vm (each VM's interrupt and UART state, this CPU's list registers and virtual timer: why does a guest wait?)");
        }
        "rejuvenate" => {
            super::rejuvenate::request(Target::Current);
        }
        "upgrade" => {
            super::rejuvenate::request(Target::Other);
        }
        "images" => super::image_slots::list(),
        "debug-rejuvenate-corrupt" => super::rejuvenate::request_corrupted(),
        "reboot" => reboot(),
        "status" => status(),
        "exits" => super::exit_stats::print(),
        "debug-fault" => debug_fault(),
        "debug-vm" => debug_vm(),
        other => match other.strip_prefix("debug-leak ") {
            Some(arg) => debug_leak(arg.trim()),
            None => hvprintln!("unknown command '{}' (try 'help')", other),
        },
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
    let gen = super::rejuvenate::GENERATION.load(core::sync::atomic::Ordering::Relaxed);
    hvprintln!(
        "aging: image up {} s, generation {} ({} warm reloads since the cold boot), heap {} bytes in use ({} bytes requested), largest free block {} KiB",
        counter().saturating_sub(super::boot::image_entered()) / counter_freq(),
        gen,
        gen,
        used,
        heap::user_bytes(),
        heap::largest_free_block() / 1024
    );
    for vm in &h.vms {
        hvprintln!("vm {} '{}': {:?}, {} MiB at {:#x}, {} vCPUs", vm.id, vm.name, vm.state(), vm.ram_size >> 20, vm.ram_pa, vm.vcpus.len());
    }
}

/// The cold-reboot baseline a warm reload is measured against: reset the
/// whole machine through PSCI, so that the firmware (QEMU) reloads every
/// image and the hypervisor and its VMs boot from scratch. The counter value
/// is printed because the system counter keeps counting across the reset on
/// QEMU `virt`, so the next boot's counter readings give the cold path's
/// length in the same units as the warm reload's figures.
fn reboot() {
    hvprintln!("reboot: resetting the machine (cold reboot) at counter {}", counter());
    super::console::flush_all();
    match super::rejuvenate::CONDUIT.get() {
        Some(Some(c)) => {
            let r = firmware::system_reset(*c);
            // Only reached if the firmware refused.
            hvprintln!("reboot: PSCI SYSTEM_RESET failed: {:?}", r);
        }
        _ => hvprintln!("reboot: no PSCI conduit in the device tree; cannot reset the machine"),
    }
}

/// Leak `arg` KiB of hypervisor heap in 64 KiB pieces: the aging a warm
/// reload is meant to clear (`status` shows it before and after).
fn debug_leak(arg: &str) {
    let Ok(kib) = arg.parse::<usize>() else {
        hvprintln!("debug-leak: expected a size in KiB, got '{}'", arg);
        return;
    };
    let (used, total) = heap::usage();
    // Leave the heap at least half free: the point is to age it, not to
    // starve the VMs' own bookkeeping.
    if kib.saturating_mul(1024) > (total / 2).saturating_sub(used) {
        hvprintln!("debug-leak: {} KiB refused: at most {} KiB may be leaked", kib, (total / 2).saturating_sub(used) / 1024);
        return;
    }
    let mut left = kib * 1024;
    while left > 0 {
        let n = left.min(64 * 1024);
        core::mem::forget(alloc::vec![0xa5u8; n]);
        left -= n;
    }
    hvprintln!("debug-leak: leaked {} KiB of hypervisor heap", kib);
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

/// `debug-vm`: what each VM's interrupt controller and UART hold, and this
/// CPU's list registers and virtual timer (those of the vCPU loaded here,
/// if any): for finding out why a guest waits forever.
fn debug_vm() {
    use crate::arch::aarch64::gic::gic;
    use crate::read_sysreg;
    for vm in &super::hyp().vms {
        let v: vmm::handoff::VgicState = (&*vm.vgic.lock()).into();
        let u = vm.uart.lock();
        hvprintln!("debug-vm {} '{}': uart imsc {:#x} ris {:#x} cr {:#x}, vgic ctlr {:#x}", vm.id, vm.name, u.snapshot().imsc, u.ris(), u.snapshot().cr, v.ctlr);
        drop(u);
        let busy = |i: &vmm::handoff::IrqState| i.pending || i.active || i.in_lr || i.hw.is_some();
        for (c, cpu) in v.cpus.iter().enumerate() {
            let vc = &vm.vcpus[c];
            hvprintln!("  vcpu {}: {:?}, wake_at {}, lrs {:?}", c, vc.power_state(), vc.wake_at.load(core::sync::atomic::Ordering::Relaxed), cpu.lrs);
            for (i, irq) in cpu.private.iter().enumerate().filter(|(i, irq)| busy(irq) || *i == 27) {
                hvprintln!("    intid {}: {:?}", i, irq);
            }
        }
        for (n, irq) in v.spis.iter().enumerate().filter(|(_, irq)| busy(irq)) {
            hvprintln!("    intid {}: {:?}", n + 32, irq);
        }
    }
    let g = gic();
    for n in 0..g.nr_lrs() {
        hvprintln!("  this cpu lr{}: {:?}", n, g.read_lr(n));
    }
    hvprintln!(
        "  this cpu cntv_ctl {:#x} cntv_cval {} cntvct {} cntvoff {}",
        read_sysreg!(cntv_ctl_el0),
        read_sysreg!(cntv_cval_el0),
        read_sysreg!(cntvct_el0),
        read_sysreg!(cntvoff_el2)
    );
}
