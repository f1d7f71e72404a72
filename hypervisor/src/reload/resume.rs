//! The new image's side: validate the handoff block and rebuild every VM
//! it describes around its untouched RAM; afterwards, make the block
//! unusable and report how long each phase of the reload took.
use super::{slots, state, WarmEntry, HANDOFF_MINOR};
use crate::arch::aarch64::cache;
use crate::arch::aarch64::context::{El1Context, FpContext};
use crate::arch::aarch64::debug::DebugRegs;
use crate::arch::aarch64::gic::{Gic, VifState};
use crate::arch::aarch64::pauth::PauthKeys;
use crate::arch::aarch64::regs::GuestRegs;
use crate::arch::aarch64::sysreg::counter;
use crate::board::board;
use crate::vcpu::vcpu::VcpuState;
use crate::vcpu::vm::{Vm, VmShape};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use vmm::handoff::{self, Handoff, HandoffLimits};
use vmm::maint::trial::Refusal;
use vmm::memory::Region;

/// The emulated physical timer's registers, stored with the vCPU's system
/// registers in the handoff block (optional entries, see `save`).
pub const PTIMER_CTL: &str = "cntp_ctl_el0";
pub const PTIMER_CVAL: &str = "cntp_cval_el0";

/// Why a handoff block was refused: a code for the trial record, and the
/// sentence for the log.
#[derive(Debug)]
pub struct Refused {
    pub code: Refusal,
    pub why: String,
}

/// Validate the handoff block at `addr` and rebuild the VMs it describes.
/// Returns the VMs, the block and when it had been decoded and validated.
fn rebuild(
    addr: u64,
    info: &vmm::config::HostInfo,
    g: &Gic,
    ncpus: usize,
    gicv: Option<u64>,
) -> Result<(Vec<Vm>, Handoff, u64), Refused> {
    #[cfg(blink_test_faults)]
    if super::test_fault::asked(super::test_fault::Fault::Refuse) {
        return Err(Refused {
            code: Refusal::TestFault,
            why: String::from(
                "test fault: this build refuses every block, as /chosen/blink,test-fault asks",
            ),
        });
    }
    // SAFETY: the handoff region is reserved for this, mapped, and at most
    // its size is read; the reader validates everything in it.
    let bytes =
        unsafe { core::slice::from_raw_parts(addr as *const u8, board().handoff.1 as usize) };
    let limits = HandoffLimits {
        hyp_region: Region::new(board().hyp_region.0, board().hyp_region.1),
        ram: info.ram.clone(),
        max_vms: crate::vcpu::MAX_VMS,
        max_vcpus: vmm::layout::MAX_VCPUS,
        required_sysregs: El1Context::NAMES,
    };
    let ho = handoff::decode(bytes, &limits).map_err(|e| Refused {
        code: Refusal::Block,
        why: e.to_string(),
    })?;
    let t_parsed = counter();
    let minor = handoff::peek_header(bytes).map(|h| h.minor).unwrap_or(0);
    hvprintln!(
        "handoff: format {}.{} written by '{}' (generation {}); this is '{}', format {}.{}",
        handoff::MAJOR,
        minor,
        ho.writer.as_deref().unwrap_or("unknown"),
        ho.generation,
        crate::VERSION,
        handoff::MAJOR,
        HANDOFF_MINOR
    );
    let vms = rebuild_vms(&ho, g, ncpus, gicv).map_err(|why| Refused {
        code: Refusal::Vm,
        why,
    })?;
    Ok((vms, ho, t_parsed))
}

/// Every VM the (validated) block describes, around its untouched RAM.
fn rebuild_vms(ho: &Handoff, g: &Gic, ncpus: usize, gicv: Option<u64>) -> Result<Vec<Vm>, String> {
    let mut vms = Vec::new();
    let mut next_pcpu = 0;
    for s in &ho.vms {
        if s.vgic.version != g.version() {
            return Err(alloc::format!(
                "vm {} was suspended with a GICv{} vGIC, this machine has the other",
                s.id,
                if s.vgic.version == vmm::vgic::Version::V3 {
                    3
                } else {
                    2
                }
            ));
        }
        let pcpus: Vec<usize> = (0..s.vcpus.len())
            .map(|i| (next_pcpu + i) % ncpus)
            .collect();
        next_pcpu = (next_pcpu + s.vcpus.len()) % ncpus;
        let passthrough: Vec<vmm::config::Passthrough> = s
            .passthrough
            .iter()
            .map(|p| vmm::config::Passthrough {
                path: p.path.clone(),
                name: p.path.rsplit('/').next().unwrap_or("device").to_string(),
                compatible: Vec::new(),
                regions: p.regions.clone(),
                intids: p.intids.clone(),
                has_clocks: false,
            })
            .collect();
        let vgic = vmm::vgic::Vgic::try_from(&s.vgic)
            .map_err(|e| alloc::format!("vm {}: vGIC state: {e}", s.id))?;
        let uart = vmm::vpl011::Pl011::restore(&s.uart)
            .map_err(|e| alloc::format!("vm {}: UART state: {e}", s.id))?;
        let vm = Vm::build(VmShape {
            id: s.id as usize,
            name: s.name.clone(),
            ram_pa: s.ram.base,
            ram_size: s.ram.size,
            vcpus: s.vcpus.len(),
            passthrough: &passthrough,
            gicv,
            vgic,
            uart,
            cntvoff: s.cntvoff,
            pcpus: &pcpus,
        })?;
        for (v, st) in vm.vcpus.iter().zip(&s.vcpus) {
            let regs = GuestRegs {
                x: st.x,
                pc: st.pc,
                pstate: st.pstate,
            };
            v.restore(
                st.power,
                (st.boot_entry, st.boot_context),
                VcpuState {
                    regs,
                    el1: El1Context::from_named(|n| st.sysreg(n)),
                    fp: FpContext {
                        q: st.fp.q,
                        fpcr: st.fp.fpcr,
                        fpsr: st.fp.fpsr,
                    },
                    vif: VifState {
                        vmcr: st.vif.vmcr,
                        apr: st.vif.apr,
                        lrs: st.vif.lrs,
                    },
                    // Optional: only the registers in use are written.
                    debug: DebugRegs::from_entries(
                        st.sysregs.iter().map(|(n, v)| (n.as_str(), *v)),
                    ),
                    // Optional too (absent: zero, or a CPU without them).
                    pauth: PauthKeys::from_entries(
                        st.sysregs.iter().map(|(n, v)| (n.as_str(), *v)),
                    ),
                    // Optional in the block (images before the emulated
                    // physical timer wrote none): absent = off.
                    ptimer: vmm::ptimer::PTimer::restore(
                        st.sysreg(PTIMER_CTL).unwrap_or(0),
                        st.sysreg(PTIMER_CVAL).unwrap_or(0),
                    ),
                    // Wake-up deadlines are not carried over; a vCPU that
                    // waited in WFI simply resumes (a spurious wake-up,
                    // which WFI allows).
                    waiting: false,
                    trap_ack: false,
                },
            );
        }
        if s.stopped {
            vm.stop();
        }
        vms.push(vm);
    }
    Ok(vms)
}

/// VMs rebuilt from a handoff block, and what `boot` reports about them.
pub struct Resumed {
    pub vms: Vec<Vm>,
    pub handoff: Handoff,
    /// When the block had been decoded and validated, and when the VMs
    /// were rebuilt.
    pub t_parsed: u64,
    pub t_rebuilt: u64,
}

/// New image, warm entry: rebuild the VMs from the block the old image
/// left, adopt the image slots it names and take the next generation. The
/// block stays as it is (a trial image that refuses it hands it back to
/// the previous image, see `revert`): the caller consumes it ([`consume`])
/// once the VMs run, or before it cold-boots them after a refusal.
pub fn vms(
    w: &WarmEntry,
    info: &vmm::config::HostInfo,
    g: &Gic,
    ncpus: usize,
    gicv: Option<u64>,
) -> Result<Resumed, Refused> {
    hvprintln!("warm entry: handoff block at {:#x}", w.handoff);
    let result = rebuild(w.handoff, info, g, ncpus, gicv);
    slots::adopt(
        w.slot_base,
        result
            .as_ref()
            .ok()
            .and_then(|(_, ho, _)| ho.prev_image.map(|r| r.base)),
    );
    let (vms, ho, t_parsed) = result?;
    state()
        .generation
        .store(ho.generation + 1, Ordering::Relaxed);
    Ok(Resumed {
        vms,
        handoff: ho,
        t_parsed,
        t_rebuilt: counter(),
    })
}

/// Make a consumed (or refused) handoff block unusable, so that a later
/// cold reset can never resume from it.
pub fn consume(addr: u64) {
    // SAFETY: the handoff region is reserved for this and mapped.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, 64) };
    cache::clean_to_poc(addr, 64);
}

/// Print how long each phase of the reload took, from the old image's
/// timestamps and the new image's own.
pub fn report(ho: &Handoff, mine: &[(&str, u64)]) {
    let freq = ho.counter_freq.max(1);
    let mut all: Vec<(String, u64)> = ho.timestamps.clone();
    all.extend(mine.iter().map(|(n, t)| (n.to_string(), *t)));
    let us = |a: u64, b: u64| b.saturating_sub(a) * 1_000_000 / freq;
    let first = all.first().map(|t| t.1).unwrap_or(0);
    let mut line = String::new();
    for w in all.windows(2) {
        line.push_str(&alloc::format!(
            " {}->{} {} us,",
            w[0].0,
            w[1].0,
            us(w[0].1, w[1].1)
        ));
    }
    let resumed = all.last().map(|t| t.1).unwrap_or(0);
    let quiesced = all
        .iter()
        .find(|t| t.0 == "quiesced")
        .map(|t| t.1)
        .unwrap_or(first);
    hvprintln!(
        "reload: generation {}, {} VMs resumed; request to resume {} us, VMs paused for {} us;{}",
        state().generation.load(Ordering::Relaxed),
        ho.vms.len(),
        us(first, resumed),
        us(quiesced, resumed),
        line.trim_end_matches(',')
    );
    // Absolute values, so that a guest's own view of the pause (its virtual
    // counter plus its VM's offset) can be lined up with it.
    hvprintln!(
        "reload: VMs paused from counter {} to counter {}",
        quiesced,
        resumed
    );
}
