//! Handling of one guest exit: decode the syndrome and emulate, forward or
//! contain what the guest did.
use super::vcpu::Vcpu;
use super::vm::Vm;
use super::console;
use super::exit_stats::{self, Kind};
use crate::arch::aarch64::gic::{gic, SGI_KICK};
use crate::arch::aarch64::regs::GuestRegs;
use crate::arch::aarch64::sysreg::cpu_index;
use crate::{read_sysreg, write_sysreg};
use log::warn;
use vmm::esr::{ec_name, fault_ipa, fsc_name, sysreg_id, DataAbort, Esr, Exit};
use vmm::inject::{inject, El1ExceptionState, Injected};
use vmm::layout;
use vmm::psci::{self, Action};
use vmm::vgic::Effects;

/// What the run loop does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// The vCPU executed WFI.
    Wfi,
    /// The vCPU is off or the VM stopped: leave it.
    Leave,
}

const ICC_SGI1R_EL1: u32 = sysreg_id(3, 0, 12, 11, 5);

pub fn handle_sync(vm: &Vm, vcpu: &Vcpu, regs: &mut GuestRegs) -> Next {
    let esr = Esr(read_sysreg!(esr_el2));
    match esr.decode() {
        Exit::Hvc(_) => {
            exit_stats::count(if exit_stats::is_psci(regs.x[0]) { Kind::HvcPsci } else { Kind::HvcOther });
            psci_call(vm, vcpu, regs)
        }
        Exit::Smc(_) => {
            exit_stats::count(Kind::Smc);
            // A trapped SMC returns to the SMC itself; step over it.
            regs.pc += 4;
            psci_call(vm, vcpu, regs)
        }
        Exit::Wfi => {
            exit_stats::count(Kind::Wfi);
            regs.pc += 4;
            Next::Wfi
        }
        Exit::Wfe => {
            exit_stats::count(Kind::Wfe);
            regs.pc += 4;
            Next::Continue
        }
        Exit::DataAbort(d) => data_abort(vm, vcpu, regs, d),
        Exit::SysReg(s) => {
            if s.id() == ICC_SGI1R_EL1 && !s.read {
                exit_stats::count(Kind::SysregSgi);
                let v = if s.reg == 31 { 0 } else { regs.x[s.reg as usize] };
                let e = vm.vgic.lock().sgi1r_write(vcpu.index, v);
                kick(vm, e);
                regs.pc += 4;
            } else {
                exit_stats::count(Kind::SysregOther);
                warn!(
                    "vm {} '{}': trapped {} of system register op0={} op1={} CRn={} CRm={} op2={} at pc {:#x}: undefined injected",
                    vm.id, vm.name, if s.read { "read" } else { "write" }, s.op0, s.op1, s.crn, s.crm, s.op2, regs.pc
                );
                inject_into(regs, Injected::Undefined);
            }
            Next::Continue
        }
        Exit::InstructionAbort { fsc, .. } => {
            exit_stats::count(Kind::InstrAbort);
            let ipa = fault_ipa(read_sysreg!(hpfar_el2), read_sysreg!(far_el2));
            warn!(
                "vm {} '{}': instruction fetch outside its memory at IPA {:#x} ({}), pc {:#x}: VM stopped",
                vm.id, vm.name, ipa, fsc_name(fsc), regs.pc
            );
            vm.stop();
            Next::Leave
        }
        Exit::Other { ec, iss } => {
            exit_stats::count(Kind::Other);
            warn!(
                "vm {} '{}': unhandled exit EC {:#x} ({}) ISS {:#x} at pc {:#x}: undefined injected",
                vm.id, vm.name, ec, ec_name(ec), iss, regs.pc
            );
            inject_into(regs, Injected::Undefined);
            Next::Continue
        }
    }
}

fn psci_call(vm: &Vm, vcpu: &Vcpu, regs: &mut GuestRegs) -> Next {
    let fid = regs.x[0];
    match psci::dispatch(vm, fid, [regs.x[1], regs.x[2], regs.x[3]]) {
        Action::Return(v) => {
            regs.x[0] = v;
            Next::Continue
        }
        Action::CpuOn { vcpu: target, entry, context } => {
            let t = &vm.vcpus[target];
            regs.x[0] = if t.request_on(entry, context) { 0 } else { smccc::psci::error::ALREADY_ON as i64 as u64 };
            if t.pcpu != cpu_index() {
                gic().send_sgi(t.pcpu, SGI_KICK);
            }
            Next::Continue
        }
        Action::CpuOff => {
            vcpu.set_off();
            Next::Leave
        }
        Action::Suspend => {
            regs.x[0] = 0;
            Next::Wfi
        }
        Action::SystemOff => {
            hvprintln!("vm {} '{}': powered off", vm.id, vm.name);
            stop_vm(vm);
            Next::Leave
        }
        Action::SystemReset => {
            if vm.config().is_none() {
                hvprintln!(
                    "vm {} '{}': reset requested, but the host device tree no longer describes it (warm reload): cannot restart, VM stopped",
                    vm.id, vm.name
                );
                stop_vm(vm);
            } else if vm.begin_reset() {
                hvprintln!("vm {} '{}': reset requested, restarting", vm.id, vm.name);
                // The restart itself happens once every vCPU has left its
                // CPU (sched.rs), at the latest when this one does.
                kick_all(vm);
            }
            Next::Leave
        }
    }
}

/// Stop a VM and make the CPUs running its other vCPUs notice.
pub fn stop_vm(vm: &Vm) {
    vm.stop();
    console::drop_input(vm.id);
    kick_all(vm);
}

fn kick_all(vm: &Vm) {
    for v in &vm.vcpus {
        if v.pcpu != cpu_index() {
            gic().send_sgi(v.pcpu, SGI_KICK);
        }
    }
}

/// Second half of SYSTEM_RESET, run by the CPU that unloaded the VM's last
/// vCPU (so nothing of the VM runs or is loaded anywhere): fresh devices,
/// images copied again from their modules, vCPU 0 started at the entry.
/// No lock is held across the copy.
pub fn restart_vm(vm: &Vm) {
    let g = gic();
    let Some(cfg) = vm.config() else {
        // begin_reset is only called with a configuration; stay safe anyway.
        vm.stop();
        return;
    };
    console::drop_input(vm.id);
    // Whatever the old vGIC held is dropped with it (no heap kept).
    *vm.vgic.lock() = vmm::vgic::Vgic::new(g.version(), vm.vcpus.len(), g.nr_lrs());
    *vm.uart.lock() = vmm::vpl011::Pl011::new();
    for v in &vm.vcpus {
        // A CPU_ON that raced with the reset must not survive it.
        v.reset_off();
    }
    let (entry, dtb) = match vm.load_images(cfg, g.version()) {
        Ok(start) => start,
        Err(e) => {
            hvprintln!("vm {} '{}': restart failed: {}; VM stopped", vm.id, vm.name, e);
            vm.stop();
            return;
        }
    };
    // The guest's stage-1 translations of its previous life are gone with
    // it; a real reset leaves no TLB entries behind either. Rare: invalidate
    // every EL1&0 entry rather than switch to this VM's VMID.
    // SAFETY: TLB maintenance only.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle1is", "dsb ish", "isb") };
    if !vm.finish_reload() {
        return;
    }
    // A passthrough interrupt forwarded to the old vGIC (linked to the
    // physical one) stays active until the guest deactivates it, which the
    // new guest never will; a line that fired during the reset was
    // disabled (sched::handle_irqs). Finish and re-enable both.
    for &intid in &vm.passthrough_intids {
        g.clear_active_spi(intid);
        g.enable(vm.vcpus[0].pcpu, intid, true);
    }
    let n = vm.boots.fetch_add(1, core::sync::atomic::Ordering::AcqRel) + 1;
    vm.vcpus[0].request_on(entry, dtb);
    hvprintln!("vm {} '{}': restarted (boot {})", vm.id, vm.name, n);
    if vm.vcpus[0].pcpu != cpu_index() {
        g.send_sgi(vm.vcpus[0].pcpu, SGI_KICK);
    }
}

/// Let the physical CPUs of vCPUs with new pending interrupts know.
pub fn kick(vm: &Vm, e: Effects) {
    for v in &vm.vcpus {
        if e.kick & (1 << v.index) != 0 && v.pcpu != cpu_index() {
            gic().send_sgi(v.pcpu, SGI_KICK);
        }
    }
}

fn data_abort(vm: &Vm, vcpu: &Vcpu, regs: &mut GuestRegs, d: DataAbort) -> Next {
    let far = read_sysreg!(far_el2);
    let ipa = fault_ipa(read_sysreg!(hpfar_el2), far);
    let what = if d.write { "write" } else { "read" };
    if !d.isv {
        exit_stats::count(Kind::AbortInjected);
        warn!(
            "vm {} '{}': {} at IPA {:#x} without instruction syndrome (pc {:#x}): abort injected",
            vm.id, vm.name, what, ipa, regs.pc
        );
        inject_into(regs, Injected::DataAbort { far });
        return Next::Continue;
    }
    let value = if d.reg == 31 { 0 } else { regs.x[d.reg as usize] };
    let size = d.size;
    let result = if let Some(off) = window(ipa, layout::GICD_BASE, layout::GICD_SIZE) {
        exit_stats::count(Kind::MmioGicd);
        let v = vcpu.index;
        mmio_vgic(vm, d.write, |g| g.dist_read(v, off, size), |g| g.dist_write(v, off, size, value))
    } else if let Some((frame, off)) = gicr_window(vm, ipa) {
        exit_stats::count(Kind::MmioGicr);
        mmio_vgic(vm, d.write, |g| g.redist_read(frame, off, size), |g| g.redist_write(frame, off, size, value))
    } else if let Some(off) = window(ipa, layout::UART_BASE, layout::UART_SIZE) {
        exit_stats::count(Kind::MmioUart);
        Some(mmio_uart(vm, off, d.write, value))
    } else {
        None
    };
    match result {
        Some(read) => {
            if !d.write && d.reg != 31 {
                let bits = size as u32 * 8;
                let mut v = if bits == 64 { read } else { read & ((1u64 << bits) - 1) };
                if d.sign_extend && bits < 64 && v >> (bits - 1) & 1 != 0 {
                    v |= !0u64 << bits;
                }
                if !d.sixty_four {
                    v &= 0xffff_ffff;
                }
                regs.x[d.reg as usize] = v;
            }
            regs.pc += 4;
        }
        None => {
            exit_stats::count(Kind::AbortInjected);
            let kind = if vm.is_ram(ipa) { fsc_name(d.fsc) } else { "outside its memory map" };
            warn!("vm {} '{}': {} at IPA {:#x} {} (pc {:#x}): abort injected", vm.id, vm.name, what, ipa, kind, regs.pc);
            inject_into(regs, Injected::DataAbort { far });
        }
    }
    Next::Continue
}

fn window(ipa: u64, base: u64, size: u64) -> Option<u64> {
    (ipa >= base && ipa - base < size).then(|| ipa - base)
}

fn gicr_window(vm: &Vm, ipa: u64) -> Option<(usize, u64)> {
    if vm.vgic.lock().version != vmm::vgic::Version::V3 {
        return None;
    }
    let off = window(ipa, layout::GICR_BASE, layout::GICR_STRIDE * vm.vcpus.len() as u64)?;
    Some(((off / layout::GICR_STRIDE) as usize, off % layout::GICR_STRIDE))
}

/// An emulated vGIC register access: reads return the value, writes kick
/// the CPUs of vCPUs with new work (after the lock is released).
fn mmio_vgic(
    vm: &Vm,
    write: bool,
    read: impl FnOnce(&vmm::vgic::Vgic) -> u64,
    store: impl FnOnce(&mut vmm::vgic::Vgic) -> Effects,
) -> Option<u64> {
    let mut g = vm.vgic.lock();
    if write {
        let e = store(&mut g);
        drop(g);
        kick(vm, e);
        Some(0)
    } else {
        Some(read(&g))
    }
}

fn mmio_uart(vm: &Vm, off: u64, write: bool, value: u64) -> u64 {
    let mut uart = vm.uart.lock();
    let read = if write {
        uart.write(off, value as u32, &mut |b| console::vm_output(vm.id, b));
        0
    } else {
        uart.read(off) as u64
    };
    let level = uart.irq_level();
    drop(uart);
    update_uart_irq(vm, level);
    if !write && off == 0 {
        // The guest took a byte from its receive FIFO: room for held input.
        console::guest_read_rx();
    }
    read
}

/// Propagate the emulated UART's interrupt line into the virtual GIC.
pub fn update_uart_irq(vm: &Vm, level: bool) {
    let e = vm.vgic.lock().set_level(0, 32 + layout::UART_SPI, level);
    kick(vm, e);
}

/// Make the guest take a synchronous exception at its EL1 vector. The EL1
/// registers are live in the hardware while the vCPU is loaded.
fn inject_into(regs: &mut GuestRegs, what: Injected) {
    let before = El1ExceptionState {
        pc: regs.pc,
        pstate: regs.pstate,
        vbar_el1: read_sysreg!(vbar_el1),
        elr_el1: read_sysreg!(elr_el1),
        spsr_el1: read_sysreg!(spsr_el1),
        esr_el1: read_sysreg!(esr_el1),
        far_el1: read_sysreg!(far_el1),
    };
    let after = inject(&before, what);
    write_sysreg!(elr_el1, after.elr_el1);
    write_sysreg!(spsr_el1, after.spsr_el1);
    write_sysreg!(esr_el1, after.esr_el1);
    write_sysreg!(far_el1, after.far_el1);
    regs.pc = after.pc;
    regs.pstate = after.pstate;
}
