//! The hypervisor's own shell on the console (input focus `Ctrl-] h`): a
//! text front end to the control verbs (`control`), plus debug commands
//! (development images only). On a production image it changes no state:
//! those verbs need an operator session on the maintenance link
//! (`access::console_refusal`).
use super::{access, control};
use alloc::string::String;
use log::error;
use spin::Mutex;
use vmm::maint::command::{self, Command, DebugCommand};

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

fn run(line: &str) {
    if let Some(why) = access::console_refusal(line) {
        hvprintln!("refused: {}", why);
        return;
    }
    // The same parser as the maintenance link's: one spelling of every
    // command and its options.
    let cmd = match command::parse(line.as_bytes()) {
        Ok(Some(cmd)) => cmd,
        Ok(None) => return,
        Err(e) => {
            hvprintln!("{}", e);
            return;
        }
    };
    match cmd {
        Command::Help => help(),
        Command::Rejuvenate => refused(control::rejuvenate()),
        Command::Upgrade {
            confirm_after_s,
            timeout_s,
        } => refused(control::upgrade(confirm_after_s, timeout_s)),
        Command::Confirm => match control::confirm() {
            Ok(text) => hvprintln!("{}", text.trim_end()),
            Err(why) => error!("{}", why),
        },
        Command::Rollback => refused(control::rollback()),
        Command::Images => images(),
        Command::Reboot => reboot(),
        Command::Status { json: false } => status(),
        Command::Status { json: true } => {
            hvprintln!("status --json: served by the maintenance link (blinkctl status --json)")
        }
        Command::Exits => crate::vcpu::stats::print(),
        Command::Log => {
            for l in super::console::recent_log(20).lines() {
                hvprintln!("{}", l);
            }
        }
        Command::Upload => {
            hvprintln!(
                "upload: the image comes as frames on the maintenance link (blinkctl upload IMAGE)"
            )
        }
        Command::Debug(DebugCommand::Vm) => debug_vm(),
        #[cfg(blink_debug_commands)]
        Command::Debug(DebugCommand::RejuvenateCorrupt) => refused(control::rejuvenate_corrupted()),
        #[cfg(blink_debug_commands)]
        Command::Debug(DebugCommand::Fault) => debug_fault(),
        #[cfg(blink_debug_commands)]
        Command::Debug(DebugCommand::Leak { kib }) => debug_leak(kib),
        // Not compiled into a production image: as if unknown.
        #[cfg(not(blink_debug_commands))]
        Command::Debug(_) => hvprintln!("unknown command '{}' (try 'help')", line),
    }
}

fn help() {
    hvprintln!("commands: help, status (VMs and aging indicators), exits (guest exits by kind since this image started, summed over CPUs), images (the image slots), log (the hypervisor's last log lines)");
    hvprintln!("  rejuvenate (warm reload into a fresh copy of this image: VMs keep running), upgrade [--confirm-after N] [--timeout S] (warm reload into the staged image, on trial: 'confirm' within S s, default 300, or it reverts), confirm, rollback (warm reload into the image this one was upgraded from)");
    hvprintln!("  reboot (cold reset of the machine: VMs start afresh), debug-vm (each VM's interrupt and UART state, this CPU's list registers and virtual timer: why does a guest wait?)");
    #[cfg(blink_debug_commands)]
    hvprintln!("  debug-leak <KiB> (leak hypervisor heap, to see a reload clear it), debug-fault (test the EL2 fault report: stops this CPU), debug-rejuvenate-corrupt (development images only)");
    hvprintln!("  {}", access::describe());
}

/// Print a refusal (nothing else to say on success: the verb reports its
/// own progress).
fn refused(r: Result<(), control::Refusal>) {
    if let Err(why) = r {
        error!("{}", why);
    }
}

fn status() {
    let s = control::status();
    hvprintln!(
        "uptime {} s, generation {}, heap {} KiB used of {} KiB, {} CPUs",
        s.uptime_s,
        s.generation,
        s.heap_used / 1024,
        s.heap_total / 1024,
        s.ncpus
    );
    hvprintln!(
        "aging: image up {} s, generation {} ({} warm reloads since the cold boot), heap {} bytes in use ({} bytes requested), largest free block {} KiB",
        s.image_age_s,
        s.generation,
        s.generation,
        s.heap_used,
        s.heap_requested,
        s.largest_free_block / 1024
    );
    for vm in &s.vms {
        hvprintln!(
            "vm {} '{}': {:?}, {} MiB at {:#x}, {} vCPUs",
            vm.id,
            vm.name,
            vm.state,
            vm.ram_size >> 20,
            vm.ram_pa,
            vm.vcpus
        );
    }
}

fn images() {
    for r in control::images() {
        hvprintln!("{}", control::image_line(&r));
    }
}

/// The cold-reboot baseline a warm reload is measured against: reset the
/// whole machine through PSCI, so that the firmware (QEMU) reloads every
/// image and the hypervisor and its VMs boot from scratch. The counter value
/// is printed because the system counter keeps counting across the reset on
/// QEMU `virt`, so the next boot's counter readings give the cold path's
/// length in the same units as the warm reload's figures.
fn reboot() {
    hvprintln!(
        "reboot: resetting the machine (cold reboot) at counter {}",
        crate::arch::aarch64::sysreg::counter()
    );
    let why = control::reboot();
    hvprintln!("{}", why);
}

#[cfg(blink_debug_commands)]
fn debug_leak(kib: usize) {
    match control::leak(kib) {
        Ok(()) => hvprintln!("debug-leak: leaked {} KiB of hypervisor heap", kib),
        Err(why) => hvprintln!("{}", why),
    }
}

/// Deliberately take a data abort at EL2, to check that an unexpected
/// exception is reported (decoded syndrome, registers) and stops only the
/// CPU it happened on.
#[cfg(blink_debug_commands)]
fn debug_fault() {
    hvprintln!(
        "debug-fault: reading an unmapped address at EL2 on cpu {}",
        crate::arch::aarch64::sysreg::cpu_index()
    );
    // SAFETY: not sound on purpose: the address is unmapped in the EL2 page
    // tables, so the load faults and the fault handler stops this CPU.
    unsafe { core::ptr::read_volatile(0xdead_0000_0000 as *const u64) };
}

/// `debug-vm`: what each VM's interrupt controller and UART hold, and this
/// CPU's list registers and virtual timer (those of the vCPU loaded here,
/// if any): for finding out why a guest waits forever.
fn debug_vm() {
    use crate::arch::aarch64::gic::gic;
    for vm in &crate::vcpu::machine().vms {
        let v: vmm::handoff::VgicState = (&*vm.vgic.lock()).into();
        let u = vm.uart.lock();
        hvprintln!(
            "debug-vm {} '{}': uart imsc {:#x} ris {:#x} cr {:#x}, vgic ctlr {:#x}",
            vm.id,
            vm.name,
            u.snapshot().imsc,
            u.ris(),
            u.snapshot().cr,
            v.ctlr
        );
        drop(u);
        let busy = |i: &vmm::handoff::IrqState| i.pending || i.active || i.in_lr || i.hw.is_some();
        for (c, cpu) in v.cpus.iter().enumerate() {
            let vc = &vm.vcpus[c];
            hvprintln!(
                "  vcpu {}: {:?}, wake_at {}, lrs {:?}",
                c,
                vc.power_state(),
                vc.wake_at.load(core::sync::atomic::Ordering::Relaxed),
                cpu.lrs
            );
            for (i, irq) in cpu
                .private
                .iter()
                .enumerate()
                .filter(|(i, irq)| busy(irq) || *i == 27)
            {
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
    let t = crate::arch::aarch64::timer::vtimer_snapshot();
    hvprintln!(
        "  this cpu cntv_ctl {:#x} cntv_cval {} cntvct {} cntvoff {}",
        t.ctl,
        t.cval,
        t.cntvct,
        t.cntvoff
    );
}
