//! Virtual GIC state of one VM: the emulated distributor (and, on GICv3, the
//! redistributors), plus the bookkeeping of which interrupts sit in each
//! vCPU's hardware list registers.
//!
//! The CPU interface itself is not emulated: on GICv3 the guest's ICC_*
//! accesses go to the hardware's virtual interface (ICV_*), on GICv2 the
//! GICV page is mapped at the guest's GICC address. This model decides what
//! is pending for whom, and the hypervisor copies that into list registers
//! before entry ([`Vgic::fill_lrs`]) and reads their state back on exit
//! ([`Vgic::sync_lrs`]).
//!
//! This file holds the state and that list-register bookkeeping; `lr` the
//! list-register encodings, `dist` the distributor registers (with GICv2's
//! SGI registers), `redist` the GICv3 redistributors and ICC_SGI1R_EL1.
use alloc::vec;
use alloc::vec::Vec;

/// SPIs per VM (INTIDs 32..32+NR_SPIS). GICD_TYPER.ITLinesNumber = 3.
pub const NR_SPIS: usize = 96;
pub const NR_PRIVATE: usize = 32;
/// SGIs: INTIDs 0..16 (the software-generated interrupts, a guest's IPIs).
pub const NR_SGIS: usize = 16;
pub const MAX_LRS: usize = 16;

mod dist;
mod lr;
mod redist;
#[cfg(test)]
mod tests;

pub use lr::{Lr, LrState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Irq {
    pub enabled: bool,
    /// Latched pending state (edge, software-set, or SGI).
    pub pending: bool,
    /// Active as last seen in a list register.
    pub active: bool,
    /// Input line level, for level-sensitive sources (emulated devices).
    pub level: bool,
    /// ICFGR: edge-triggered (SGIs always are).
    pub edge: bool,
    pub priority: u8,
    pub group1: bool,
    /// GICv2 ITARGETSR CPU mask.
    pub targets: u8,
    /// GICv3 IROUTER (Aff0 = vCPU index; IRM bit 31).
    pub route: u64,
    /// Physical INTID the virtual one is linked to (HW bit in the LR).
    pub hw: Option<u32>,
    /// Currently held in a list register of its target vCPU.
    pub in_lr: bool,
}

impl Irq {
    fn pending_now(&self) -> bool {
        self.pending || (!self.edge && self.level)
    }
}

#[derive(Clone, Debug)]
pub struct VgicCpu {
    pub private: [Irq; NR_PRIVATE],
    /// INTID held by each list register slot.
    pub lrs: [Option<u32>; MAX_LRS],
    /// GICv3 redistributor: GICR_WAKER.ProcessorSleep.
    pub sleeping: bool,
    /// GICv2 only: for each SGI, bit n = pending for this vCPU from vCPU n
    /// (GICD_SPENDSGIR). A GICv2 SGI is one interrupt per source: each is
    /// delivered on its own, with its source in GICC_IAR. The SGI's
    /// `pending` is kept equal to "any bit set"; always 0 on GICv3.
    pub sgi_sources: [u8; NR_SGIS],
    /// What each occupied list register holds, as last written by
    /// [`Vgic::fill_lrs`] or read back by [`Vgic::sync_lrs`]. The guest
    /// does not run between an exit's sync and the next entry's fill, so
    /// this is the hardware's content when a fill looks at it. `None`:
    /// unknown (a model restored from a handoff block, until the first
    /// sync); such a register is left alone.
    seen: [Option<Lr>; MAX_LRS],
}

impl VgicCpu {
    fn new(index: usize) -> Self {
        let mut private = [Irq::default(); NR_PRIVATE];
        for (i, irq) in private.iter_mut().enumerate() {
            irq.edge = i < NR_SGIS; // SGIs are edge; PPIs default level
            irq.targets = 1 << (index & 7);
        }
        Self {
            private,
            lrs: [None; MAX_LRS],
            sleeping: true,
            sgi_sources: [0; NR_SGIS],
            seen: [None; MAX_LRS],
        }
    }
}

/// What an emulated access asks the hypervisor to do afterwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Bit n set: vCPU n has new pending work and may need a kick.
    pub kick: u64,
}

#[derive(Clone, Debug)]
pub struct Vgic {
    pub version: Version,
    pub ctlr: u32,
    pub spis: Vec<Irq>,
    pub cpus: Vec<VgicCpu>,
    /// List registers the hardware implements.
    pub nr_lrs: usize,
    /// Bit n: vCPU n may have interrupts to place in list registers. Set
    /// by everything that can make one deliverable, cleared when a fill
    /// found nothing left over; lets the common exit skip the scan.
    pub needs_fill: u64,
}

fn bit(v: u64, i: usize) -> bool {
    v >> i & 1 != 0
}

impl Vgic {
    pub fn new(version: Version, vcpus: usize, nr_lrs: usize) -> Self {
        let mut spis = vec![Irq::default(); NR_SPIS];
        for s in spis.iter_mut() {
            s.targets = 1;
        }
        Self {
            version,
            ctlr: 0,
            spis,
            cpus: (0..vcpus).map(VgicCpu::new).collect(),
            nr_lrs: nr_lrs.min(MAX_LRS),
            needs_fill: 0,
        }
    }

    pub fn nr_intids(&self) -> u32 {
        (NR_PRIVATE + NR_SPIS) as u32
    }

    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        let i = intid as usize;
        if i < NR_PRIVATE {
            self.cpus.get(vcpu).map(|c| &c.private[i])
        } else {
            self.spis.get(i - NR_PRIVATE)
        }
    }

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        let i = intid as usize;
        if i < NR_PRIVATE {
            self.cpus.get_mut(vcpu).map(|c| &mut c.private[i])
        } else {
            self.spis.get_mut(i - NR_PRIVATE)
        }
    }

    /// The vCPU an SPI is delivered to.
    pub fn spi_target(&self, intid: u32) -> usize {
        let Some(irq) = self.irq(0, intid) else {
            return 0;
        };
        let t = match self.version {
            Version::V2 => irq.targets.trailing_zeros() as usize,
            Version::V3 if irq.route & (1 << 31) != 0 => 0,
            Version::V3 => (irq.route & 0xff) as usize,
        };
        if t < self.cpus.len() {
            t
        } else {
            0
        }
    }

    fn target_of(&self, vcpu: usize, intid: u32) -> usize {
        if (intid as usize) < NR_PRIVATE {
            vcpu
        } else {
            self.spi_target(intid)
        }
    }

    fn kick_for(&self, vcpu: usize, intid: u32) -> Effects {
        Effects {
            kick: 1 << self.target_of(vcpu, intid),
        }
    }

    /// Make an edge interrupt pending (an SGI, a timer tick, a
    /// passthrough device's interrupt). `hw` links it to a physical INTID
    /// the guest's deactivation will deactivate.
    ///
    /// A GICv2 SGI injected this way has no sending vCPU: it is reported as
    /// coming from vCPU 0 (CPUID 0, what the model reported for every SGI
    /// before it tracked sources).
    pub fn inject(&mut self, vcpu: usize, intid: u32, hw: Option<u32>) -> Effects {
        match self.irq_mut(vcpu, intid) {
            Some(irq) => {
                irq.pending = true;
                irq.hw = hw;
            }
            None => return Effects::default(),
        }
        if self.is_v2_sgi(intid) {
            self.cpus[vcpu].sgi_sources[intid as usize] |= 1;
        }
        self.mark(self.kick_for(vcpu, intid))
    }

    /// SGIs whose pending state is kept per source (GICv2).
    fn is_v2_sgi(&self, intid: u32) -> bool {
        self.version == Version::V2 && (intid as usize) < NR_SGIS
    }

    fn mark(&mut self, e: Effects) -> Effects {
        self.needs_fill |= e.kick;
        e
    }

    fn all_vcpus(&self) -> u64 {
        (1u64 << self.cpus.len()) - 1
    }

    /// Set the line level of a level-sensitive interrupt (emulated devices).
    pub fn set_level(&mut self, vcpu: usize, intid: u32, level: bool) -> Effects {
        match self.irq_mut(vcpu, intid) {
            Some(irq) if irq.level != level => irq.level = level,
            _ => return Effects::default(),
        }
        if level {
            self.mark(self.kick_for(vcpu, intid))
        } else {
            Effects::default()
        }
    }

    fn group_enabled(&self, irq: &Irq) -> bool {
        // GICD_CTLR: EnableGrp0 = bit 0, EnableGrp1 = bit 1 (v2: bit 0 enables all).
        match self.version {
            Version::V2 => self.ctlr & 1 != 0,
            Version::V3 => self.ctlr & if irq.group1 { 2 } else { 1 } != 0,
        }
    }

    /// Whether `vcpu` has an interrupt it could take (used to wake a vCPU
    /// that waits in WFI).
    pub fn has_pending(&self, vcpu: usize) -> bool {
        let deliverable =
            |irq: &Irq| irq.enabled && irq.pending_now() && !irq.in_lr && self.group_enabled(irq);
        self.cpus[vcpu].private.iter().any(deliverable)
            || self
                .spis
                .iter()
                .enumerate()
                .any(|(i, s)| deliverable(s) && self.spi_target(i as u32 + 32) == vcpu)
            || self.cpus[vcpu].lrs.iter().any(|l| l.is_some())
    }

    /// Update the model from the list registers of `vcpu` as read back from
    /// the hardware (`read(slot)`), after the guest ran.
    pub fn sync_lrs(&mut self, vcpu: usize, read: &mut dyn FnMut(usize) -> Lr) {
        for slot in 0..self.nr_lrs {
            let Some(intid) = self.cpus[vcpu].lrs[slot] else {
                continue;
            };
            let lr = read(slot);
            let done = lr.state == LrState::Invalid;
            self.cpus[vcpu].seen[slot] = (!done).then_some(Lr { intid, ..lr });
            if let Some(irq) = self.irq_mut(vcpu, intid) {
                irq.active = matches!(lr.state, LrState::Active | LrState::PendingActive);
                if done {
                    irq.in_lr = false;
                    // A new injection made while this one sat in the LR
                    // carries its own hardware link: keep it, or the guest's
                    // EOI of the new one would never deactivate the
                    // physical interrupt (which would then stay active).
                    if !irq.pending {
                        irq.hw = None;
                    }
                }
            }
            if done {
                self.cpus[vcpu].lrs[slot] = None;
                // A level interrupt still asserted becomes pending again;
                // a copy that waited behind this one can go in now, on this
                // vCPU or, for an SPI routed elsewhere meanwhile, its target.
                self.needs_fill |= (1 << vcpu) | (1 << self.target_of(vcpu, intid));
            }
        }
    }

    /// `vcpu` is leaving its physical CPU: its private interrupts lose their
    /// links to physical ones (they stay pending or active for the guest as
    /// purely virtual interrupts), and `deactivate(p)` is called for each
    /// physical INTID `p` still active for a link that no list register
    /// carries: an injection acknowledged but not placed in one yet, possibly
    /// behind an earlier instance of the same interrupt that sits in a list
    /// register as a purely virtual one. Nothing else would ever deactivate
    /// those once the link is gone, and the vCPU may not come back at all
    /// (its VM resets or stops, dropping this model), leaving the physical
    /// interrupt active on that CPU for whatever runs there next.
    ///
    /// Bit `i` of `linked_in_lr`: private INTID `i` sits in a list register
    /// with its hardware link; the caller finishes those from the saved list
    /// registers.
    pub fn unlink_hw(&mut self, vcpu: usize, linked_in_lr: u32, deactivate: &mut dyn FnMut(u32)) {
        let Some(cpu) = self.cpus.get_mut(vcpu) else {
            return;
        };
        for (i, irq) in cpu.private.iter_mut().enumerate() {
            if let Some(p) = irq.hw.take() {
                if linked_in_lr >> i & 1 == 0 {
                    deactivate(p);
                }
            }
        }
    }

    /// Choose what goes into the list registers of `vcpu` before it runs.
    /// Returns the writes to make (`slot`, `lr`): new interrupts in free
    /// slots, and updates of occupied ones (see [`Vgic::refresh_held_lrs`]);
    /// and whether pending interrupts were left over (the caller asks for
    /// an underflow maintenance interrupt so it gets a chance to deliver
    /// them): for lack of a free slot, or behind a list register whose
    /// content is not known yet.
    pub fn fill_lrs(&mut self, vcpu: usize, out: &mut Vec<(usize, Lr)>) -> bool {
        self.fill_lrs_resampled(vcpu, out, &mut |_| true)
    }

    /// Re-samples every copy linked to a physical interrupt that is queued
    /// for `vcpu` (its own private interrupts, and the SPIs) but not in a
    /// list register, enabled or not: a copy whose line has dropped is
    /// withdrawn, as in [`Vgic::fill_lrs_resampled`]. Called before the
    /// guest reads a pending register, so that what it reads follows the
    /// line too. Returns how many copies were withdrawn.
    pub fn withdraw_dropped(
        &mut self,
        vcpu: usize,
        still_asserted: &mut dyn FnMut(u32) -> bool,
    ) -> usize {
        let Some(cpu) = self.cpus.get_mut(vcpu) else {
            return 0;
        };
        let mut withdrawn = 0;
        for irq in cpu.private.iter_mut().chain(self.spis.iter_mut()) {
            match irq.hw {
                Some(phys) if irq.pending_now() && !irq.in_lr && !still_asserted(phys) => {
                    irq.pending = false;
                    irq.hw = None;
                    withdrawn += 1;
                }
                _ => {}
            }
        }
        withdrawn
    }

    /// Re-samples the copies in `vcpu`'s list registers that are linked to
    /// a level-sensitive physical SPI and still pending (not acknowledged):
    /// one whose line has dropped is withdrawn. For the moment the guest
    /// is about to acknowledge (GICv3: its ICC access trapped) after a copy
    /// went in while it had interrupts masked, e.g. in the handler that ends
    /// the interrupt at the GIC and only then clears the device: the copy
    /// the GIC queued in between must not be delivered once the device is
    /// clear. `still_asserted` as for [`Vgic::fill_lrs_resampled`] (the
    /// model is synced with the list registers, [`Vgic::sync_lrs`]).
    /// Returns the list register slots the caller must clear.
    pub fn withdraw_dropped_lrs(
        &mut self,
        vcpu: usize,
        still_asserted: &mut dyn FnMut(u32) -> bool,
    ) -> Vec<usize> {
        let mut slots = Vec::new();
        for slot in 0..self.nr_lrs {
            let (Some(intid), Some(lr)) = (self.cpus[vcpu].lrs[slot], self.cpus[vcpu].seen[slot])
            else {
                continue;
            };
            if intid < NR_PRIVATE as u32 || lr.state != LrState::Pending {
                continue;
            }
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                continue;
            };
            match irq.hw {
                Some(phys) if !still_asserted(phys) => {
                    irq.in_lr = false;
                    irq.pending = false;
                    irq.hw = None;
                }
                _ => continue,
            }
            self.cpus[vcpu].lrs[slot] = None;
            self.cpus[vcpu].seen[slot] = None;
            slots.push(slot);
        }
        slots
    }

    /// [`Vgic::fill_lrs`], re-sampling each copy linked to a physical
    /// interrupt before it is placed: `still_asserted(phys)` says whether
    /// the physical interrupt's line is still asserted (true for an edge
    /// interrupt, whose line says nothing). A level-sensitive interrupt's
    /// pending state follows its line: a copy queued while the guest had it
    /// masked, whose line has dropped since (a virtual timer turned off, a
    /// device cleared by its driver), is withdrawn instead of delivered
    /// stale. When `still_asserted` returns false the caller has finished
    /// the physical interrupt (deactivated it): the link is dropped here.
    pub fn fill_lrs_resampled(
        &mut self,
        vcpu: usize,
        out: &mut Vec<(usize, Lr)>,
        still_asserted: &mut dyn FnMut(u32) -> bool,
    ) -> bool {
        if self.needs_fill & (1 << vcpu) == 0 {
            return false;
        }
        let behind_unknown = self.refresh_held_lrs(vcpu, out);
        let mut cands: Vec<(u8, u32)> = Vec::new();
        for (i, irq) in self.cpus[vcpu].private.iter().enumerate() {
            if irq.enabled && irq.pending_now() && !irq.in_lr && self.group_enabled(irq) {
                cands.push((irq.priority, i as u32));
            }
        }
        for (i, irq) in self.spis.iter().enumerate() {
            let intid = (i + NR_PRIVATE) as u32;
            if irq.enabled
                && irq.pending_now()
                && !irq.in_lr
                && self.group_enabled(irq)
                && self.spi_target(intid) == vcpu
            {
                cands.push((irq.priority, intid));
            }
        }
        // Withdraw linked copies whose line has dropped (see above).
        cands.retain(|&(_, intid)| {
            let Some(irq) = self.irq_mut(vcpu, intid) else {
                return false;
            };
            match irq.hw {
                Some(phys) if !still_asserted(phys) => {
                    irq.pending = false;
                    irq.hw = None;
                    false
                }
                _ => true,
            }
        });
        cands.sort_unstable();
        let mut left = cands.len();
        for (_, intid) in cands {
            let Some(slot) = (0..self.nr_lrs).find(|&s| self.cpus[vcpu].lrs[s].is_none()) else {
                break;
            };
            // A GICv2 SGI goes in once per source, lowest vCPU first.
            let (source, more_sources) = if self.is_v2_sgi(intid) {
                self.take_sgi_source(vcpu, intid as usize)
            } else {
                (0, false)
            };
            let irq = self.irq_mut(vcpu, intid).expect("candidate exists");
            irq.in_lr = true;
            irq.pending = more_sources;
            let lr = Lr {
                intid,
                state: LrState::Pending,
                priority: irq.priority,
                group1: irq.group1,
                hw: irq.hw,
                // Level interrupts are re-sampled when the guest EOIs them;
                // an SGI pending from further sources goes in when this
                // one is done.
                eoi_maint: irq.hw.is_none() && (!irq.edge || more_sources),
                source,
            };
            self.cpus[vcpu].lrs[slot] = Some(intid);
            self.cpus[vcpu].seen[slot] = Some(lr);
            out.push((slot, lr));
            left -= 1;
        }
        if left == 0 && !behind_unknown {
            self.needs_fill &= !(1 << vcpu);
        }
        left > 0 || behind_unknown
    }

    /// Edge interrupts that became pending again while their previous copy
    /// still sits in one of `vcpu`'s list registers. Such a copy is not
    /// placed a second time (one list register per interrupt), and waiting
    /// for the guest's next exit could mean forever: a guest spinning with
    /// interrupts enabled and no timer never exits, and an IPI it waits for
    /// would be lost. As a GIC does:
    /// - the same interrupt (for a GICv2 SGI: from the same source) goes
    ///   into that list register: Active becomes Pending+Active, so the
    ///   guest takes it again as soon as it deactivates the first; Pending
    ///   or Pending+Active already holds it (an edge interrupt has a single
    ///   pending state);
    /// - what cannot join it (a GICv2 SGI from another source, a copy
    ///   linked to a physical interrupt) makes that list register ask for an
    ///   EOI maintenance interrupt: the guest's deactivation then exits, the
    ///   slot is freed and the waiting copy placed.
    ///
    /// List registers with a hardware link are left alone (they cannot be
    /// Pending+Active or ask for EOI maintenance), and so are level-sensitive
    /// interrupts (their list registers already ask for EOI maintenance, to
    /// re-sample the line). A list register whose content is unknown (a
    /// restored model) is not rewritten either: returns true if a copy
    /// waits behind one, so that the caller has the vCPU exit soon (the
    /// underflow interrupt) and the exit's [`Vgic::sync_lrs`] learns it.
    fn refresh_held_lrs(&mut self, vcpu: usize, out: &mut Vec<(usize, Lr)>) -> bool {
        let mut behind_unknown = false;
        for slot in 0..self.nr_lrs {
            let Some(intid) = self.cpus[vcpu].lrs[slot] else {
                continue;
            };
            let Some(&irq) = self.irq(vcpu, intid) else {
                continue;
            };
            if !irq.edge
                || !irq.pending
                || !irq.enabled
                || !self.group_enabled(&irq)
                || self.target_of(vcpu, intid) != vcpu
            {
                continue;
            }
            let Some(seen) = self.cpus[vcpu].seen[slot] else {
                behind_unknown = true;
                continue;
            };
            if seen.hw.is_some() || seen.state == LrState::Invalid {
                continue;
            }
            let mut lr = seen;
            let sgi = intid as usize;
            let v2_sgi = self.is_v2_sgi(intid);
            // A copy linked to a physical interrupt must keep its link: it
            // can only go into a list register of its own.
            let source = seen.source & 7;
            let same = irq.hw.is_none()
                && (!v2_sgi || bit(self.cpus[vcpu].sgi_sources[sgi] as u64, source as usize));
            if same {
                if lr.state == LrState::Active {
                    lr.state = LrState::PendingActive;
                }
                let still = if v2_sgi {
                    let s = &mut self.cpus[vcpu].sgi_sources[sgi];
                    *s &= !(1 << source);
                    *s != 0
                } else {
                    false
                };
                if let Some(irq) = self.irq_mut(vcpu, intid) {
                    irq.pending = still;
                }
            }
            if self.irq(vcpu, intid).is_some_and(|i| i.pending) {
                lr.eoi_maint = true;
            }
            if lr != seen {
                self.cpus[vcpu].seen[slot] = Some(lr);
                out.push((slot, lr));
            }
        }
        behind_unknown
    }

    /// Takes the lowest source of GICv2 SGI `sgi` pending for `vcpu`;
    /// returns it and whether other sources remain.
    fn take_sgi_source(&mut self, vcpu: usize, sgi: usize) -> (u8, bool) {
        let s = &mut self.cpus[vcpu].sgi_sources[sgi];
        // Pending without a recorded source cannot happen (the two are
        // kept together); report vCPU 0 rather than trust that blindly.
        let source = if *s == 0 { 0 } else { s.trailing_zeros() as u8 };
        *s &= !(1 << source);
        (source, *s != 0)
    }

    /// SGI `intid` (0..16) sent by vCPU `source` to each vCPU in `targets`
    /// (GICD_SGIR or ICC_SGI1R_EL1).
    fn raise_sgi(&mut self, source: usize, targets: u64, intid: u32) -> Effects {
        let v2 = self.version == Version::V2;
        let sgi = intid as usize & (NR_SGIS - 1);
        let mut e = Effects::default();
        for t in 0..self.cpus.len() {
            if bit(targets, t) {
                let cpu = &mut self.cpus[t];
                cpu.private[sgi].pending = true;
                if v2 {
                    // GICv2 has at most 8 CPU interfaces (CPUID is 3 bits).
                    cpu.sgi_sources[sgi] |= 1 << (source & 7);
                }
                e.kick |= 1 << t;
            }
        }
        e
    }
}
