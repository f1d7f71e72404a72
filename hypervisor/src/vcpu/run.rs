//! The run loop of each physical CPU: pick a runnable vCPU of the ones
//! pinned to this CPU, run it until it blocks, yields or its time slice
//! ends, and handle physical interrupts.
//!
//! vCPUs are pinned (assigned round-robin at VM creation), so a vCPU's
//! context is only ever touched by one physical CPU. When a CPU hosts a
//! single vCPU, its context stays loaded and WFI is handled by waiting at
//! EL2 with the guest's timer armed: no context switch at all.
use super::exit::{handle_sync, Next};
use super::stats::{self, Kind};
use super::vcpu::Vcpu;
use super::vm::{Vm, VmState};
use super::{irq, machine, quiesce};
use crate::arch::aarch64::gic::gic;
use crate::arch::aarch64::guest;
use crate::arch::aarch64::regs::{run_guest, ExitKind};
use crate::arch::aarch64::sysreg::{counter, counter_freq, isb, wfi};
use crate::arch::aarch64::timer::{arm_hyp_timer, disarm_hyp_timer, vtimer_deadline, vtimer_off};
use crate::arch::aarch64::traps::TrapPolicy;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use log::warn;
use vmm::vgic::LrState;

/// Time slice when vCPUs share a physical CPU.
const SLICE_MS: u64 = 10;

struct Cpu {
    index: usize,
    mine: Vec<(&'static Vm, &'static Vcpu)>,
    next: usize,
    slice_over: bool,
    /// End of the running vCPU's time slice (shared CPUs only).
    slice_end: u64,
    /// What the EL2 timer is armed for while a vCPU runs (`u64::MAX`: not
    /// armed): the earliest of the slice's end (shared CPUs) or the next
    /// periodic work (a CPU alone), and the vCPU's emulated physical timer.
    armed: u64,
}

pub fn cpu_loop(index: usize) -> ! {
    let h = machine();
    let mine: Vec<_> = h
        .vms
        .iter()
        .flat_map(|vm| {
            vm.vcpus
                .iter()
                .filter(|v| v.pcpu == index)
                .map(move |v| (vm, v))
        })
        .collect();
    let mut cpu = Cpu {
        index,
        mine,
        next: 0,
        slice_over: false,
        slice_end: u64::MAX,
        armed: u64::MAX,
    };
    h.online
        .fetch_or(1 << index, core::sync::atomic::Ordering::AcqRel);
    loop {
        h.upcalls.poll(index);
        if quiesce::requested() {
            // Every vCPU of this CPU is unloaded (saved) at this point.
            h.upcalls.quiesced(index);
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
        !waiting
            || now >= v.wake_at.load(core::sync::atomic::Ordering::Acquire)
            || vm.vgic.lock().has_pending(v.index)
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
        self.mine
            .iter()
            .any(|&(vm, v)| !core::ptr::eq(v, me) && self.runnable(vm, v, now))
    }

    /// Nothing to run: sleep until an interrupt, waking for the earliest
    /// virtual-timer deadline of a waiting vCPU.
    fn idle(&mut self) {
        let mut wake = self
            .mine
            .iter()
            .map(|(_, v)| v.wake_at.load(core::sync::atomic::Ordering::Acquire))
            .min();
        let due = machine().upcalls.poll_deadline(self.index);
        if due != u64::MAX {
            // Periodic work (a reload) must not wait for some unrelated
            // interrupt.
            wake = Some(wake.unwrap_or(u64::MAX).min(due));
        }
        match wake {
            Some(t) if t != u64::MAX => arm_hyp_timer(t),
            _ => disarm_hyp_timer(),
        }
        wfi();
        self.timer_fired(irq::handle(self.index, None));
    }

    /// The EL2 timer fired (`fired`) and was disarmed by the interrupt
    /// handler: on a shared CPU, the slice may be over.
    fn timer_fired(&mut self, fired: bool) {
        if fired {
            self.armed = u64::MAX;
            self.slice_over |= counter() >= self.slice_end;
        }
    }

    /// Arm the EL2 timer for what the running vCPU needs next (see
    /// `Cpu::armed`), if that changed; `ptimer` is its physical timer's
    /// deadline.
    fn rearm(&mut self, shared: bool, ptimer: u64) {
        let want = if shared {
            self.slice_end
        } else {
            machine().upcalls.poll_deadline(self.index)
        }
        .min(ptimer);
        if want == self.armed {
            return;
        }
        if want == u64::MAX {
            disarm_hyp_timer();
        } else {
            arm_hyp_timer(want);
        }
        self.armed = want;
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
        let up = machine().upcalls;
        let mut st = v.state.lock();
        st.waiting = false;
        v.wake_at
            .store(u64::MAX, core::sync::atomic::Ordering::Release);
        // Load the vCPU onto this CPU.
        guest::enter_vm(vm.vttbr, vm.cntvoff, TrapPolicy::VIRTUALIZED);
        st.el1.restore();
        st.debug.restore();
        st.pauth.restore();
        st.fp.restore();
        gic().restore_vif(&st.vif);
        isb();
        self.armed = u64::MAX;
        if shared {
            self.slice_end = counter() + counter_freq() * SLICE_MS / 1000;
            self.slice_over = false;
        }
        // Alone on its CPU, the vCPU may not exit for a long time: make
        // sure it does when periodic work (a reload) is due; shared, when
        // its slice ends; either way, when its physical timer fires.
        signal_ptimer(vm, v, &mut st.ptimer);
        self.rearm(shared, st.ptimer.deadline());
        let g = gic();
        let nr_lrs = g.nr_lrs();
        let mut writes = Vec::with_capacity(nr_lrs);
        loop {
            // Deliver what is pending into free list registers.
            writes.clear();
            let cpu = self.index;
            let overflow = vm
                .vgic
                .lock()
                .fill_lrs_resampled(v.index, &mut writes, &mut |phys| {
                    // A level interrupt queued while masked whose line dropped
                    // since is not delivered.
                    irq::line_still_asserted(cpu, phys)
                });
            for &(slot, lr) in &writes {
                g.write_lr(slot, lr);
            }
            // A copy of a level SPI placed while the guest has interrupts
            // masked (typically: in the handler that ended the previous
            // one, before it clears the device) may be stale by the time
            // the guest can take it: trap the acknowledge to re-sample it
            // (exit.rs). GICv2's CPU interface has no such trap.
            if g.can_trap_ack()
                && st.regs.irqs_masked()
                && writes.iter().any(|&(_, lr)| {
                    lr.hw
                        .is_some_and(|p| p >= 32 && g.line_asserted(cpu, p).is_some())
                })
            {
                st.trap_ack = true;
            }
            g.set_vif_control(overflow, st.trap_ack);
            let kind = run_guest(&mut st.regs);
            // Read back what the guest did with them; free finished slots.
            let mut finished = false;
            {
                let mut vg = vm.vgic.lock();
                vg.sync_lrs(v.index, &mut |slot| {
                    let lr = g.read_lr(slot);
                    if lr.state == LrState::Invalid {
                        g.write_lr(slot, vmm::vgic::Lr::default());
                        finished = true;
                    }
                    lr
                });
            }
            if finished || kind == ExitKind::Sync {
                vm.note_progress(counter());
            }
            let next = match kind {
                ExitKind::Sync => handle_sync(vm, v, &mut st),
                ExitKind::Irq | ExitKind::Fiq => {
                    stats::count(Kind::Irq);
                    self.timer_fired(irq::handle(self.index, Some((vm, v))));
                    Next::Continue
                }
                ExitKind::SError => {
                    stats::count(Kind::SError);
                    warn!(
                        "vm {} '{}': SError at pc {:#x}: VM stopped",
                        vm.id, vm.name, st.regs.pc
                    );
                    super::lifecycle::stop_vm(vm);
                    Next::Leave
                }
            };
            up.poll(self.index);
            if vm.state() != VmState::Running
                || v.power_state() != vmm::psci::PowerState::On
                || quiesce::requested()
            {
                break;
            }
            match next {
                Next::Leave => break,
                Next::Continue => {}
                Next::Wfi => {
                    up.vm_idle(vm.id);
                    if vm.vgic.lock().has_pending(v.index) {
                        continue;
                    }
                    if shared && self.others_runnable(v) {
                        st.waiting = true;
                        v.wake_at.store(
                            vtimer_deadline(vm.cntvoff).min(st.ptimer.deadline()),
                            core::sync::atomic::Ordering::Release,
                        );
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
                    if !shared {
                        // The safety net, or what rearm() armed (periodic
                        // work, the physical timer) if that comes first.
                        let net = vtimer_deadline(vm.cntvoff).saturating_add(counter_freq() / 1000);
                        if net < self.armed {
                            arm_hyp_timer(net);
                            self.armed = net;
                        }
                    }
                    wfi();
                    self.timer_fired(irq::handle(self.index, Some((vm, v))));
                    if !shared {
                        // Back to what rearm() wants (below).
                        self.armed = u64::MAX;
                        disarm_hyp_timer();
                    }
                    // The wake-up may be the periodic reload's timer.
                    up.poll(self.index);
                    if quiesce::requested()
                        || vm.state() != VmState::Running
                        || v.power_state() != vmm::psci::PowerState::On
                    {
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
                self.slice_end = counter() + counter_freq() * SLICE_MS / 1000;
                self.slice_over = false;
            }
            // After a trapped timer write or the EL2 timer firing for it:
            // the line first, so that the deadline armed is the next one.
            signal_ptimer(vm, v, &mut st.ptimer);
            self.rearm(shared, st.ptimer.deadline());
        }
        // Unload: keep the context where the vCPU can be resumed from.
        st.el1.save();
        st.debug.save();
        st.pauth.save();
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
        vm.vgic
            .lock()
            .unlink_hw(v.index, linked_in_lr, &mut |p| g.deactivate(p));
        // Silence this vCPU's timer while it is not on the CPU.
        vtimer_off();
        guest::leave_vm();
        drop(st);
        unloaded(vm);
    }
}

/// The emulated physical timer's line follows the counter: tell the vGIC
/// when it changed.
fn signal_ptimer(vm: &Vm, v: &Vcpu, pt: &mut vmm::ptimer::PTimer) {
    if pt.active() {
        if let Some(level) = pt.update(counter()) {
            vm.vgic.lock().set_level(v.index, vmm::ptimer::PPI, level);
        }
    }
}

/// A vCPU of `vm` left this CPU. The last one out of a resetting VM
/// restarts it, here, with nothing of the VM loaded anywhere.
fn unloaded(vm: &Vm) {
    if vm.loaded.fetch_sub(1, Ordering::SeqCst) == 1
        && vm.state() == VmState::Resetting
        && vm.claim_restart()
    {
        super::lifecycle::restart_vm(vm);
    }
}
