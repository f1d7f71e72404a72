//! The run loop of each physical CPU: pick a runnable vCPU of the ones
//! pinned to this CPU, run it until it blocks, yields or its time slice
//! ends, and handle physical interrupts.
//!
//! vCPUs are pinned (assigned round-robin at VM creation), so a vCPU's
//! context is only ever touched by one physical CPU. When a CPU hosts a
//! single vCPU, its context stays loaded and WFI is handled by waiting at
//! EL2 with the guest's timer armed: no context switch at all.
use super::exit::{handle_sync, Next};
use super::exit_stats::{self, Kind};
use super::vcpu::Vcpu;
use super::vm::{Vm, VmState};
use super::{console, hyp, rejuvenate};
use crate::arch::aarch64::gic::{gic, PPI_HYP_TIMER, PPI_MAINTENANCE, PPI_VTIMER, SGI_KICK, SPURIOUS};
use crate::arch::aarch64::regs::{run_guest, ExitKind};
use crate::arch::aarch64::sysreg::{counter, counter_freq, isb, wfi};
use crate::{read_sysreg, write_sysreg};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use log::warn;
use vmm::vgic::LrState;

/// HCR_EL2 while a guest runs: VM, SWIO, FMO, IMO, AMO, FB, BSU=IS, TWI,
/// TSC, RW, APK, API.
const HCR_GUEST: u64 =
    1 | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 9) | (1 << 10) | (1 << 13) | (1 << 19) | (1 << 31) | (1 << 40) | (1 << 41);
/// Time slice when vCPUs share a physical CPU.
const SLICE_MS: u64 = 10;

struct Cpu {
    index: usize,
    mine: Vec<(&'static Vm, &'static Vcpu)>,
    next: usize,
    slice_over: bool,
}

pub fn cpu_loop(index: usize) -> ! {
    let h = hyp();
    let mine: Vec<_> = h
        .vms
        .iter()
        .flat_map(|vm| vm.vcpus.iter().filter(|v| v.pcpu == index).map(move |v| (vm, v)))
        .collect();
    let mut cpu = Cpu { index, mine, next: 0, slice_over: false };
    h.online.fetch_or(1 << index, core::sync::atomic::Ordering::AcqRel);
    loop {
        if index == 0 {
            rejuvenate::check_periodic();
        }
        if rejuvenate::requested() {
            // Every vCPU of this CPU is unloaded (saved) at this point.
            if index == 0 {
                rejuvenate::perform(h.dtb);
            } else {
                rejuvenate::park();
            }
            continue;
        }
        match cpu.pick() {
            Some(i) => {
                cpu.next = i + 1;
                let (vm, v) = cpu.mine[i];
                cpu.run(vm, v);
            }
            None => cpu.idle(),
        }
    }
}

impl Cpu {
    fn runnable(&self, vm: &Vm, v: &Vcpu, now: u64) -> bool {
        if vm.state() != VmState::Running {
            return false;
        }
        v.complete_power_on();
        if v.power_state() != vmm::psci::PowerState::On {
            return false;
        }
        let waiting = v.state.lock().waiting;
        !waiting || now >= v.wake_at.load(core::sync::atomic::Ordering::Acquire) || vm.vgic.lock().has_pending(v.index)
    }

    fn pick(&self) -> Option<usize> {
        let n = self.mine.len();
        let now = counter();
        (0..n).map(|k| (self.next + k) % n).find(|&i| {
            let (vm, v) = self.mine[i];
            self.runnable(vm, v, now)
        })
    }

    fn others_runnable(&self, me: &Vcpu) -> bool {
        let now = counter();
        self.mine.iter().any(|&(vm, v)| !core::ptr::eq(v, me) && self.runnable(vm, v, now))
    }

    /// Nothing to run: sleep until an interrupt, waking for the earliest
    /// virtual-timer deadline of a waiting vCPU.
    fn idle(&mut self) {
        let mut wake = self.mine.iter().map(|(_, v)| v.wake_at.load(core::sync::atomic::Ordering::Acquire)).min();
        if self.index == 0 {
            // A periodic reload must not wait for some unrelated interrupt.
            wake = Some(wake.unwrap_or(u64::MAX).min(rejuvenate::periodic_due()));
        }
        match wake {
            Some(t) if t != u64::MAX => arm_hyp_timer(t),
            _ => disarm_hyp_timer(),
        }
        wfi();
        self.handle_irqs(None);
    }

    fn run(&mut self, vm: &'static Vm, v: &'static Vcpu) {
        // Counted as loaded before checking that the VM still runs: a reset
        // (begin_reset, then waiting for `loaded` to drop to zero) either
        // sees this vCPU loaded or this check sees the reset.
        vm.loaded.fetch_add(1, Ordering::SeqCst);
        if vm.state() != VmState::Running || v.power_state() != vmm::psci::PowerState::On {
            unloaded(vm);
            return;
        }
        let shared = self.mine.len() > 1;
        let mut st = v.state.lock();
        st.waiting = false;
        v.wake_at.store(u64::MAX, core::sync::atomic::Ordering::Release);
        // Load the vCPU onto this CPU.
        write_sysreg!(vttbr_el2, vm.vttbr);
        write_sysreg!(cntvoff_el2, vm.cntvoff);
        write_sysreg!(hcr_el2, HCR_GUEST);
        st.el1.restore();
        st.fp.restore();
        gic().restore_vif(&st.vif);
        isb();
        if shared {
            arm_hyp_timer(counter() + counter_freq() * SLICE_MS / 1000);
            self.slice_over = false;
        } else if self.index == 0 && rejuvenate::periodic_due() != u64::MAX {
            // Alone on CPU 0, the vCPU may not exit for a long time; make
            // sure it does when the next periodic reload is due.
            arm_hyp_timer(rejuvenate::periodic_due());
        }
        let g = gic();
        let nr_lrs = g.nr_lrs();
        let mut writes = Vec::with_capacity(nr_lrs);
        loop {
            // Deliver what is pending into free list registers.
            writes.clear();
            let overflow = vm.vgic.lock().fill_lrs(v.index, &mut writes);
            for &(slot, lr) in &writes {
                g.write_lr(slot, lr);
            }
            g.set_vif_control(overflow);
            let kind = run_guest(&mut st.regs);
            // Read back what the guest did with them; free finished slots.
            {
                let mut vg = vm.vgic.lock();
                vg.sync_lrs(v.index, &mut |slot| {
                    let lr = g.read_lr(slot);
                    if lr.state == LrState::Invalid {
                        g.write_lr(slot, vmm::vgic::Lr::default());
                    }
                    lr
                });
            }
            let next = match kind {
                ExitKind::Sync => handle_sync(vm, v, &mut st.regs),
                ExitKind::Irq | ExitKind::Fiq => {
                    exit_stats::count(Kind::Irq);
                    self.handle_irqs(Some((vm, v)));
                    Next::Continue
                }
                ExitKind::SError => {
                    exit_stats::count(Kind::SError);
                    warn!("vm {} '{}': SError at pc {:#x}: VM stopped", vm.id, vm.name, st.regs.pc);
                    super::exit::stop_vm(vm);
                    Next::Leave
                }
            };
            if self.index == 0 {
                rejuvenate::check_periodic();
            }
            if vm.state() != VmState::Running || v.power_state() != vmm::psci::PowerState::On || rejuvenate::requested() {
                break;
            }
            match next {
                Next::Leave => break,
                Next::Continue => {}
                Next::Wfi => {
                    console::vm_idle(vm.id);
                    if vm.vgic.lock().has_pending(v.index) {
                        continue;
                    }
                    if shared && self.others_runnable(v) {
                        st.waiting = true;
                        v.wake_at.store(timer_deadline(vm), core::sync::atomic::Ordering::Release);
                        break;
                    }
                    // Alone on this CPU: wait right here, guest context
                    // loaded, its virtual timer armed in the hardware.
                    // Its PPI normally ends the WFI; a hypervisor timer
                    // 1 ms after the guest's own deadline is the safety
                    // net: under QEMU with a GICv2 the PPI now and then
                    // did not wake a WFI at EL2 (Linux, alone on its CPU,
                    // slept 20+ s until an unrelated interrupt came).
                    // Shared CPUs have their slice timer instead.
                    let periodic = if self.index == 0 { rejuvenate::periodic_due() } else { u64::MAX };
                    if !shared {
                        let net = timer_deadline(vm).saturating_add(counter_freq() / 1000);
                        if net.min(periodic) != u64::MAX {
                            arm_hyp_timer(net.min(periodic));
                        }
                    }
                    wfi();
                    self.handle_irqs(Some((vm, v)));
                    if !shared {
                        // Back to what run() armed: the periodic reload's
                        // timer, or none.
                        if periodic != u64::MAX {
                            arm_hyp_timer(periodic);
                        } else {
                            disarm_hyp_timer();
                        }
                    }
                    if self.index == 0 {
                        // The wake-up may be the periodic reload's timer.
                        rejuvenate::check_periodic();
                    }
                    if rejuvenate::requested() || vm.state() != VmState::Running || v.power_state() != vmm::psci::PowerState::On {
                        // Leave as if the WFI completed: the guest resumes
                        // after it, which WFI semantics allow (a stopped or
                        // resetting VM does not resume at all).
                        break;
                    }
                }
            }
            if shared && self.slice_over {
                if self.others_runnable(v) {
                    break;
                }
                arm_hyp_timer(counter() + counter_freq() * SLICE_MS / 1000);
                self.slice_over = false;
            }
        }
        // Unload: keep the context where the vCPU can be resumed from.
        st.el1.save();
        st.fp.save();
        g.save_vif(&mut st.vif);
        // A timer interrupt handed to the guest as a hardware interrupt
        // keeps the physical PPI active until the guest deactivates it; this
        // vCPU is leaving the CPU, so finish it here and keep it pending/
        // active for the guest as a purely virtual interrupt.
        let mut linked_in_lr = 0u32;
        for lr in st.vif.lrs.iter_mut().take(nr_lrs) {
            let mut d = g.decode_saved_lr(*lr);
            if let Some(p) = d.hw {
                if d.state != LrState::Invalid {
                    g.deactivate(p);
                    if d.intid < 32 {
                        linked_in_lr |= 1 << d.intid;
                    }
                }
                d.hw = None;
                *lr = g.encode_saved_lr(d);
            }
        }
        // The same for one acknowledged here but in no list register (the
        // vCPU left right after it arrived: its slice ended, its VM is
        // resetting, or an earlier copy still occupies the list register):
        // once the link is dropped nothing else would deactivate it: PPI 27
        // would stay active on this CPU and no virtual timer here would
        // fire again (a VM restart used to hit this: Linux hung).
        vm.vgic.lock().unlink_hw(v.index, linked_in_lr, &mut |p| g.deactivate(p));
        // Silence this vCPU's timer while it is not on the CPU.
        write_sysreg!(cntv_ctl_el0, 0);
        write_sysreg!(hcr_el2, 0);
        isb();
        drop(st);
        unloaded(vm);
    }

    /// Acknowledge and dispatch every pending physical interrupt.
    fn handle_irqs(&mut self, current: Option<(&'static Vm, &'static Vcpu)>) {
        let g = gic();
        loop {
            let raw = g.ack();
            let intid = raw & 0x3ff;
            if intid >= SPURIOUS {
                break;
            }
            g.eoi(raw);
            exit_stats::count(match intid {
                PPI_VTIMER => Kind::PirqVtimer,
                PPI_HYP_TIMER => Kind::PirqHypTimer,
                PPI_MAINTENANCE => Kind::PirqMaint,
                SGI_KICK => Kind::PirqKick,
                i if Some(i) == hyp().uart_intid => Kind::PirqUart,
                i if hyp().vms.iter().any(|vm| vm.passthrough_intids.contains(&i)) => Kind::PirqPassthrough,
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
                        write_sysreg!(cntv_ctl_el0, 0);
                        g.deactivate(raw);
                    }
                },
                PPI_HYP_TIMER => {
                    disarm_hyp_timer();
                    self.slice_over = true;
                    g.deactivate(raw);
                }
                PPI_MAINTENANCE => {
                    g.set_vif_control(false);
                    g.deactivate(raw);
                }
                SGI_KICK => g.deactivate(raw),
                i if Some(i) == hyp().uart_intid => {
                    g.deactivate(raw);
                    console::poll_input();
                }
                other => match hyp().vms.iter().find(|vm| vm.passthrough_intids.contains(&other)) {
                    // A passed-through device: hand it to its VM linked to
                    // the physical interrupt, which stays active until the
                    // guest deactivates the virtual one.
                    Some(vm) if vm.state() == VmState::Running => {
                        let e = vm.vgic.lock().inject(0, other, Some(other));
                        super::exit::kick(vm, e);
                    }
                    Some(vm) => {
                        // Its VM is stopped or restarting: keep the line
                        // quiet (a restart enables it again).
                        g.enable(self.index, other, false);
                        g.deactivate(raw);
                        if vm.state() == VmState::Stopped {
                            warn!("vm {} '{}' is stopped: physical interrupt {} disabled", vm.id, vm.name, other);
                        }
                    }
                    None => {
                        g.deactivate(raw);
                        warn!("cpu {}: unexpected physical interrupt {}", self.index, other);
                    }
                },
            }
        }
    }
}

/// A vCPU of `vm` left this CPU. The last one out of a resetting VM
/// restarts it, here, with nothing of the VM loaded anywhere.
fn unloaded(vm: &Vm) {
    if vm.loaded.fetch_sub(1, Ordering::SeqCst) == 1 && vm.state() == VmState::Resetting && vm.claim_reload() {
        super::exit::restart_vm(vm);
    }
}

/// Physical-counter time at which the loaded vCPU's virtual timer fires,
/// or u64::MAX if it is off or masked.
fn timer_deadline(vm: &Vm) -> u64 {
    let ctl = read_sysreg!(cntv_ctl_el0);
    if ctl & 1 == 0 || ctl & 2 != 0 {
        return u64::MAX;
    }
    read_sysreg!(cntv_cval_el0).wrapping_add(vm.cntvoff)
}

fn arm_hyp_timer(at: u64) {
    write_sysreg!(cnthp_cval_el2, at);
    write_sysreg!(cnthp_ctl_el2, 1);
    isb();
}

fn disarm_hyp_timer() {
    write_sysreg!(cnthp_ctl_el2, 2);
    isb();
}
