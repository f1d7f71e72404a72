//! Physical interrupts on a CPU: acknowledge each one and hand it to its
//! owner: the loaded vCPU (its virtual timer), the run loop (EL2 timer,
//! kicks, maintenance), the console (its UART), the maintenance link (its
//! UART) or the VM a passed-through device belongs to.
use super::lifecycle::kick;
use super::machine;
use super::stats::{self, Kind};
use super::vcpu::Vcpu;
use super::vm::{Vm, VmState};
use crate::arch::aarch64::gic::{
    gic, PPI_HYP_TIMER, PPI_MAINTENANCE, PPI_VTIMER, SGI_KICK, SPURIOUS,
};
use crate::arch::aarch64::timer::{disarm_hyp_timer, vtimer_off};
use log::warn;

/// Whether the line of physical interrupt `phys`, held active for a
/// guest's queued copy, is still asserted (true for an edge interrupt).
/// If it dropped (the timer turned off, the device cleared) the copy is
/// about to be withdrawn: the physical interrupt is finished here. For a
/// private interrupt `cpu` must be the calling CPU.
pub fn line_still_asserted(cpu: usize, phys: u32) -> bool {
    let g = gic();
    match g.line_asserted(cpu, phys) {
        Some(false) if phys < 32 => g.deactivate(phys),
        Some(false) => g.clear_active_spi(phys),
        _ => return true,
    }
    false
}

/// Acknowledge and dispatch every pending physical interrupt.
/// Returns whether the EL2 timer fired (the current time slice is over).
pub fn handle(cpu: usize, current: Option<(&'static Vm, &'static Vcpu)>) -> bool {
    let mut slice_over = false;
    let g = gic();
    loop {
        let raw = g.ack();
        let intid = raw & 0x3ff;
        if intid >= SPURIOUS {
            break;
        }
        g.eoi(raw);
        stats::count(match intid {
            PPI_VTIMER => Kind::PirqVtimer,
            PPI_HYP_TIMER => Kind::PirqHypTimer,
            PPI_MAINTENANCE => Kind::PirqMaint,
            SGI_KICK => Kind::PirqKick,
            i if Some(i) == machine().uart_intid || Some(i) == machine().maint_intid => {
                Kind::PirqUart
            }
            i if machine()
                .vms
                .iter()
                .any(|vm| vm.passthrough_intids.contains(&i)) =>
            {
                Kind::PirqPassthrough
            }
            _ => Kind::PirqOther,
        });
        match intid {
            PPI_VTIMER => match current {
                // Linked to the physical PPI: the guest's deactivation
                // completes it.
                Some((vm, v)) => {
                    vm.vgic.lock().inject(v.index, PPI_VTIMER, Some(PPI_VTIMER));
                }
                None => {
                    vtimer_off();
                    g.deactivate(raw);
                }
            },
            PPI_HYP_TIMER => {
                disarm_hyp_timer();
                slice_over = true;
                g.deactivate(raw);
            }
            PPI_MAINTENANCE => {
                g.set_vif_control(false, false);
                g.deactivate(raw);
            }
            SGI_KICK => g.deactivate(raw),
            i if Some(i) == machine().uart_intid => {
                g.deactivate(raw);
                machine().upcalls.console_irq();
            }
            i if Some(i) == machine().maint_intid => {
                g.deactivate(raw);
                machine().upcalls.maint_irq();
            }
            other => match machine()
                .vms
                .iter()
                .find(|vm| vm.passthrough_intids.contains(&other))
            {
                // A passed-through device: hand it to its VM linked to
                // the physical interrupt, which stays active until the
                // guest deactivates the virtual one.
                Some(vm) if vm.state() == VmState::Running => {
                    let e = vm.vgic.lock().inject(0, other, Some(other));
                    kick(vm, e);
                }
                Some(vm) => {
                    // Its VM is stopped or restarting: keep the line
                    // quiet (a restart enables it again).
                    g.enable(cpu, other, false);
                    g.deactivate(raw);
                    if vm.state() == VmState::Stopped {
                        warn!(
                            "vm {} '{}' is stopped: physical interrupt {} disabled",
                            vm.id, vm.name, other
                        );
                    }
                }
                None => {
                    g.deactivate(raw);
                    warn!("cpu {}: unexpected physical interrupt {}", cpu, other);
                }
            },
        }
    }
    slice_over
}
