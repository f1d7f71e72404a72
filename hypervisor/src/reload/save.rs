//! Step 2 of the old image's side: every VM's complete state (vCPU
//! registers and EL1 context, vGIC, UART, console line) into the handoff
//! block (`vmm::handoff`), written to the board's handoff region.
use super::{slots, state, HANDOFF_MINOR};
use crate::arch::aarch64::sysreg::{counter, counter_freq};
use crate::board::board;
use crate::vcpu::vm::VmState;
use crate::vcpu::{machine, Machine};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use vmm::handoff::{
    self, FpState, Handoff, PassthroughState, VcpuState as HoVcpu, VmState as HoVm,
};
use vmm::memory::Region;

/// Write the block for the VMs as they are now (every vCPU saved); returns
/// its length, or why it could not be written.
pub fn write_block(
    t_quiesced: u64,
    console_pending: &dyn Fn(usize) -> Vec<u8>,
    upload: Option<vmm::maint::receiver::ResumeState>,
) -> Result<u64, String> {
    let mut ho = snapshot(machine(), t_quiesced, console_pending);
    ho.upload = upload;
    let bytes = handoff::encode(&ho, HANDOFF_MINOR)
        .map_err(|e| alloc::format!("handoff block not written: {e}"))?;
    // The region's last page holds the trial record (`trial`).
    if bytes.len() as u64 > board().handoff.1 - super::trial::RECORD_PAGE {
        return Err("handoff block larger than its region".into());
    }
    // SAFETY: the handoff region is reserved for this and outside the heap.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), board().handoff.0 as *mut u8, bytes.len())
    };
    if state().corrupt.swap(false, Ordering::AcqRel) {
        hvprintln!("rejuvenate: debug: flipping one byte in the middle of the handoff block");
        // SAFETY: inside the block just written.
        unsafe { *((board().handoff.0 + bytes.len() as u64 / 2) as *mut u8) ^= 0x40 };
    }
    Ok(bytes.len() as u64)
}

fn snapshot(h: &Machine, t_quiesced: u64, console_pending: &dyn Fn(usize) -> Vec<u8>) -> Handoff {
    let vms = h
        .vms
        .iter()
        .map(|vm| HoVm {
            id: vm.id as u32,
            name: vm.name.clone(),
            ram: Region::new(vm.ram_pa, vm.ram_size),
            cntvoff: vm.cntvoff,
            stopped: vm.state() == VmState::Stopped,
            passthrough: vm
                .passthrough
                .iter()
                .map(|p| PassthroughState {
                    path: p.path.clone(),
                    regions: p.regions.clone(),
                    intids: p.intids.clone(),
                })
                .collect(),
            vcpus: vm
                .vcpus
                .iter()
                .map(|v| {
                    let st = v.state.lock();
                    let (boot_entry, boot_context) = v.boot_request();
                    HoVcpu {
                        index: v.index as u32,
                        power: v.power_state(),
                        waiting: st.waiting,
                        boot_entry,
                        boot_context,
                        x: st.regs.x,
                        pc: st.regs.pc,
                        pstate: st.regs.pstate,
                        sysregs: {
                            // The EL1 context, and the emulated physical
                            // timer (not a live register: optional entries
                            // an older image ignores).
                            let mut r = st.el1.named();
                            r.push((super::resume::PTIMER_CTL.into(), st.ptimer.ctl));
                            r.push((super::resume::PTIMER_CVAL.into(), st.ptimer.cval));
                            r.extend(st.debug.named());
                            r.extend(st.pauth.named());
                            r
                        },
                        fp: FpState {
                            q: st.fp.q,
                            fpcr: st.fp.fpcr,
                            fpsr: st.fp.fpsr,
                        },
                        vif: handoff::VifState {
                            vmcr: st.vif.vmcr,
                            apr: st.vif.apr,
                            lrs: st.vif.lrs,
                        },
                    }
                })
                .collect(),
            vgic: (&*vm.vgic.lock()).into(),
            uart: vm.uart.lock().snapshot(),
            // A line being written goes on after the reload, not split.
            console_pending: console_pending(vm.id),
        })
        .collect();
    Handoff {
        generation: state().generation.load(Ordering::Relaxed),
        timestamps: alloc::vec![
            (
                "request".to_string(),
                state().t_request.load(Ordering::Acquire)
            ),
            ("quiesced".to_string(), t_quiesced),
            ("state_saved".to_string(), counter()),
        ],
        counter_freq: counter_freq(),
        prev_image: slots::previous_after(state().target_slot.load(Ordering::Acquire))
            .map(|i| Region::new(board().image_slots[i].0, board().image_slots[i].1)),
        writer: Some(crate::VERSION.to_string()),
        upload: None,
        vms,
    }
}
