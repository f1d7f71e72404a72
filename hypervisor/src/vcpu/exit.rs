//! Handling of one guest exit: decode the syndrome and emulate, forward or
//! contain what the guest did.
use super::irq::line_still_asserted;
use super::lifecycle::{kick, kick_all, stop_vm};
use super::mmio::data_abort;
use super::stats::{self, Kind};
use super::vcpu::{Vcpu, VcpuState};
use super::vm::Vm;
use crate::arch::aarch64::gic::{gic, SGI_KICK};
use crate::arch::aarch64::guest;
use crate::arch::aarch64::regs::GuestRegs;
use crate::arch::aarch64::sysreg::{counter, cpu_index};
use crate::arch::aarch64::traps;
use log::warn;
use vmm::esr::{ec_name, fsc_name, sysreg_id, Esr, Exit};
use vmm::inject::{inject, Injected};
use vmm::psci::{self, Action};
use vmm::ptimer::PTimer;

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

pub fn handle_sync(vm: &Vm, vcpu: &Vcpu, st: &mut VcpuState) -> Next {
    let VcpuState {
        regs,
        ptimer,
        trap_ack,
        ..
    } = st;
    let esr = Esr(guest::exit_syndrome());
    match esr.decode() {
        Exit::Hvc(_) => {
            stats::count(if stats::is_psci(regs.x[0]) {
                Kind::HvcPsci
            } else {
                Kind::HvcOther
            });
            psci_call(vm, vcpu, regs)
        }
        Exit::Smc(_) => {
            stats::count(Kind::Smc);
            // A trapped SMC returns to the SMC itself; step over it.
            regs.pc += 4;
            psci_call(vm, vcpu, regs)
        }
        Exit::Wfi => {
            stats::count(Kind::Wfi);
            regs.pc += 4;
            Next::Wfi
        }
        Exit::Wfe => {
            stats::count(Kind::Wfe);
            regs.pc += 4;
            Next::Continue
        }
        Exit::DataAbort(d) => data_abort(vm, vcpu, regs, d),
        Exit::SysReg(s) => {
            if s.id() == ICC_SGI1R_EL1 && !s.read {
                stats::count(Kind::SysregSgi);
                let v = if s.reg == 31 {
                    0
                } else {
                    regs.x[s.reg as usize]
                };
                let e = vm.vgic.lock().sgi1r_write(vcpu.index, v);
                kick(vm, e);
                regs.pc += 4;
            } else if *trap_ack && s.op0 == 3 && s.op1 == 0 && s.crn == 12 {
                // The Group 1 ICC access the run loop asked to trap (most
                // likely the acknowledge): first withdraw linked SPI copies
                // whose line dropped since they went in, then let the
                // access run again, untrapped, on what is left.
                stats::count(Kind::SysregOther);
                let cpu = cpu_index();
                let g = gic();
                let stale = vm
                    .vgic
                    .lock()
                    .withdraw_dropped_lrs(vcpu.index, &mut |p| line_still_asserted(cpu, p));
                for slot in stale {
                    g.write_lr(slot, vmm::vgic::Lr::default());
                }
                *trap_ack = false;
            } else if PTimer::handles(s.id()) {
                // The emulated physical timer; the run loop signals its
                // line and arms for its deadline before the next entry.
                stats::count(Kind::SysregOther);
                let now = counter();
                if s.read {
                    if s.reg != 31 {
                        regs.x[s.reg as usize] = ptimer.read(s.id(), now);
                    }
                } else {
                    let v = if s.reg == 31 {
                        0
                    } else {
                        regs.x[s.reg as usize]
                    };
                    ptimer.write(s.id(), v, now);
                }
                regs.pc += 4;
            } else if s.read && vmm::idregs::is_feature_id(s.op0, s.op1, s.crn, s.crm) {
                // TID3: the hardware's value minus what the VM is not given.
                stats::count(Kind::SysregOther);
                let v = vmm::idregs::guest_view(s.id(), traps::read_feature_id(s.crm, s.op2));
                if s.reg != 31 {
                    regs.x[s.reg as usize] = v;
                }
                regs.pc += 4;
            } else {
                stats::count(Kind::SysregOther);
                warn!(
                    "vm {} '{}': trapped {} of system register op0={} op1={} CRn={} CRm={} op2={} at pc {:#x}: undefined injected",
                    vm.id, vm.name, if s.read { "read" } else { "write" }, s.op0, s.op1, s.crn, s.crm, s.op2, regs.pc
                );
                inject_into(regs, Injected::Undefined);
            }
            Next::Continue
        }
        Exit::InstructionAbort { fsc, .. } => {
            stats::count(Kind::InstrAbort);
            let (far, ipa) = guest::fault_address();
            let pc = regs.pc;
            // As for a data access there: a synchronous external abort on
            // the fetch, which the guest's handler may recover from.
            inject_into(regs, Injected::InstructionAbort { far });
            if regs.pc == pc {
                // The fetch that faulted was the abort vector itself: the
                // guest would fault here forever.
                warn!(
                    "vm {} '{}': instruction fetch at IPA {:#x} ({}), pc {:#x}, is its own abort vector: VM stopped",
                    vm.id,
                    vm.name,
                    ipa,
                    fsc_name(fsc),
                    pc
                );
                stop_vm(vm);
                return Next::Leave;
            }
            warn!(
                "vm {} '{}': instruction fetch outside its memory at IPA {:#x} ({}), pc {:#x}: abort injected",
                vm.id,
                vm.name,
                ipa,
                fsc_name(fsc),
                pc
            );
            Next::Continue
        }
        Exit::Other { ec, iss } => {
            stats::count(Kind::Other);
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
        Action::CpuOn {
            vcpu: target,
            entry,
            context,
        } => {
            let t = &vm.vcpus[target];
            regs.x[0] = if t.request_on(entry, context) {
                0
            } else {
                smccc::psci::error::ALREADY_ON as i64 as u64
            };
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
                // CPU (run.rs), at the latest when this one does.
                kick_all(vm);
            }
            Next::Leave
        }
    }
}

/// Make the guest take a synchronous exception at its EL1 vector. The EL1
/// registers are live in the hardware while the vCPU is loaded.
pub fn inject_into(regs: &mut GuestRegs, what: Injected) {
    let before = guest::el1_exception_state(regs.pc, regs.pstate);
    let after = inject(&before, what);
    guest::set_el1_exception_state(&after);
    regs.pc = after.pc;
    regs.pstate = after.pstate;
}
