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
use alloc::vec;
use alloc::vec::Vec;

/// SPIs per VM (INTIDs 32..32+NR_SPIS). GICD_TYPER.ITLinesNumber = 3.
pub const NR_SPIS: usize = 96;
pub const NR_PRIVATE: usize = 32;
pub const MAX_LRS: usize = 16;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    Invalid,
    Pending,
    Active,
    PendingActive,
}

/// One list register, independent of its GICv2/GICv3 encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lr {
    pub intid: u32,
    pub state: LrState,
    pub priority: u8,
    pub group1: bool,
    pub hw: Option<u32>,
    /// Ask for a maintenance interrupt when the guest EOIs it (non-HW only).
    pub eoi_maint: bool,
}

impl Lr {
    fn state_bits(self) -> u64 {
        match self.state {
            LrState::Invalid => 0,
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        }
    }

    fn state_from(bits: u64) -> LrState {
        match bits & 3 {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    /// ICH_LR<n>_EL2 encoding.
    pub fn encode_v3(self) -> u64 {
        let mut v = (self.intid as u64) | ((self.priority as u64) << 48) | (self.state_bits() << 62);
        if self.group1 {
            v |= 1 << 60;
        }
        match self.hw {
            Some(p) => v |= (1 << 61) | ((p as u64 & 0x3ff) << 32),
            None if self.eoi_maint => v |= 1 << 41,
            None => {}
        }
        v
    }

    pub fn decode_v3(v: u64) -> Lr {
        let hw = v & (1 << 61) != 0;
        Lr {
            intid: v as u32,
            state: Self::state_from(v >> 62),
            priority: (v >> 48) as u8,
            group1: v & (1 << 60) != 0,
            hw: hw.then_some(((v >> 32) & 0x3ff) as u32),
            eoi_maint: !hw && v & (1 << 41) != 0,
        }
    }

    /// GICH_LR<n> encoding (5-bit priority).
    pub fn encode_v2(self) -> u32 {
        let mut v = (self.intid & 0x3ff) | (((self.priority as u32) >> 3) << 23) | ((self.state_bits() as u32) << 28);
        if self.group1 {
            v |= 1 << 30;
        }
        match self.hw {
            Some(p) => v |= (1 << 31) | ((p & 0x3ff) << 10),
            None if self.eoi_maint => v |= 1 << 19,
            None => {}
        }
        v
    }

    pub fn decode_v2(v: u32) -> Lr {
        let hw = v & (1 << 31) != 0;
        Lr {
            intid: v & 0x3ff,
            state: Self::state_from((v >> 28) as u64),
            priority: (((v >> 23) & 0x1f) << 3) as u8,
            group1: v & (1 << 30) != 0,
            hw: hw.then_some((v >> 10) & 0x3ff),
            eoi_maint: !hw && v & (1 << 19) != 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct VgicCpu {
    pub private: [Irq; NR_PRIVATE],
    /// INTID held by each list register slot.
    pub lrs: [Option<u32>; MAX_LRS],
    /// GICv3 redistributor: GICR_WAKER.ProcessorSleep.
    pub sleeping: bool,
}

impl VgicCpu {
    fn new(index: usize) -> Self {
        let mut private = [Irq::default(); NR_PRIVATE];
        for (i, irq) in private.iter_mut().enumerate() {
            irq.edge = i < 16; // SGIs are edge; PPIs default level
            irq.targets = 1 << (index & 7);
        }
        Self { private, lrs: [None; MAX_LRS], sleeping: true }
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
        let Some(irq) = self.irq(0, intid) else { return 0 };
        let t = match self.version {
            Version::V2 => irq.targets.trailing_zeros() as usize,
            Version::V3 if irq.route & (1 << 31) != 0 => 0,
            Version::V3 => (irq.route & 0xff) as usize,
        };
        if t < self.cpus.len() { t } else { 0 }
    }

    fn target_of(&self, vcpu: usize, intid: u32) -> usize {
        if (intid as usize) < NR_PRIVATE { vcpu } else { self.spi_target(intid) }
    }

    fn kick_for(&self, vcpu: usize, intid: u32) -> Effects {
        Effects { kick: 1 << self.target_of(vcpu, intid) }
    }

    /// Make an edge interrupt pending (an SGI, a timer tick, a
    /// passthrough device's interrupt). `hw` links it to a physical INTID
    /// the guest's deactivation will deactivate.
    pub fn inject(&mut self, vcpu: usize, intid: u32, hw: Option<u32>) -> Effects {
        match self.irq_mut(vcpu, intid) {
            Some(irq) => {
                irq.pending = true;
                irq.hw = hw;
            }
            None => return Effects::default(),
        }
        self.mark(self.kick_for(vcpu, intid))
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
        if level { self.mark(self.kick_for(vcpu, intid)) } else { Effects::default() }
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
        let deliverable = |irq: &Irq| irq.enabled && irq.pending_now() && !irq.in_lr && self.group_enabled(irq);
        self.cpus[vcpu].private.iter().any(deliverable)
            || self.spis.iter().enumerate().any(|(i, s)| deliverable(s) && self.spi_target(i as u32 + 32) == vcpu)
            || self.cpus[vcpu].lrs.iter().any(|l| l.is_some())
    }

    /// Update the model from the list registers of `vcpu` as read back from
    /// the hardware (`read(slot)`), after the guest ran.
    pub fn sync_lrs(&mut self, vcpu: usize, read: &mut dyn FnMut(usize) -> Lr) {
        for slot in 0..self.nr_lrs {
            let Some(intid) = self.cpus[vcpu].lrs[slot] else { continue };
            let lr = read(slot);
            let done = lr.state == LrState::Invalid;
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
                // A level interrupt still asserted becomes pending again.
                self.needs_fill |= 1 << vcpu;
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
        let Some(cpu) = self.cpus.get_mut(vcpu) else { return };
        for (i, irq) in cpu.private.iter_mut().enumerate() {
            if let Some(p) = irq.hw.take() {
                if linked_in_lr >> i & 1 == 0 {
                    deactivate(p);
                }
            }
        }
    }

    /// Choose what goes into the free list registers of `vcpu` before it
    /// runs. Returns the writes to make (`slot`, `lr`) and whether pending
    /// interrupts were left over (the caller asks for an underflow
    /// maintenance interrupt so it gets a chance to deliver them).
    pub fn fill_lrs(&mut self, vcpu: usize, out: &mut Vec<(usize, Lr)>) -> bool {
        if self.needs_fill & (1 << vcpu) == 0 {
            return false;
        }
        let mut cands: Vec<(u8, u32)> = Vec::new();
        for (i, irq) in self.cpus[vcpu].private.iter().enumerate() {
            if irq.enabled && irq.pending_now() && !irq.in_lr && self.group_enabled(irq) {
                cands.push((irq.priority, i as u32));
            }
        }
        for (i, irq) in self.spis.iter().enumerate() {
            let intid = (i + NR_PRIVATE) as u32;
            if irq.enabled && irq.pending_now() && !irq.in_lr && self.group_enabled(irq) && self.spi_target(intid) == vcpu {
                cands.push((irq.priority, intid));
            }
        }
        cands.sort_unstable();
        let mut left = cands.len();
        for (_, intid) in cands {
            let Some(slot) = (0..self.nr_lrs).find(|&s| self.cpus[vcpu].lrs[s].is_none()) else { break };
            let irq = self.irq_mut(vcpu, intid).expect("candidate exists");
            irq.in_lr = true;
            irq.pending = false;
            let lr = Lr {
                intid,
                state: LrState::Pending,
                priority: irq.priority,
                group1: irq.group1,
                hw: irq.hw,
                // Level interrupts are re-sampled when the guest EOIs them.
                eoi_maint: irq.hw.is_none() && !irq.edge,
            };
            self.cpus[vcpu].lrs[slot] = Some(intid);
            out.push((slot, lr));
            left -= 1;
        }
        if left == 0 {
            self.needs_fill &= !(1 << vcpu);
        }
        left > 0
    }

    // ----- register emulation ---------------------------------------------

    /// Bank of 1-bit-per-interrupt registers starting at `base`: returns the
    /// first INTID covered by `off` if it falls in the bank.
    fn bitreg(off: u64, base: u64) -> Option<u32> {
        (off >= base && off < base + 0x80).then(|| ((off - base) * 8) as u32)
    }

    fn read_bits(&self, vcpu: usize, first: u32, f: impl Fn(&Irq) -> bool) -> u32 {
        (0..32).filter(|i| self.irq(vcpu, first + i).is_some_and(&f)).fold(0, |acc, i| acc | 1 << i)
    }

    fn write_bits(&mut self, vcpu: usize, first: u32, value: u32, redist: bool, f: impl Fn(&mut Irq)) -> Effects {
        let mut e = Effects::default();
        for i in 0..32 {
            if value >> i & 1 == 0 {
                continue;
            }
            // With affinity routing (GICv3), the distributor does not own
            // SGIs/PPIs: those live in each redistributor.
            if self.version == Version::V3 && first + i < 32 && !redist {
                continue;
            }
            if let Some(irq) = self.irq_mut(vcpu, first + i) {
                f(irq);
                e.kick |= self.kick_for(vcpu, first + i).kick;
            }
        }
        e
    }

    /// Read a 32-bit (or narrower, for byte registers) distributor register.
    pub fn dist_read(&self, vcpu: usize, off: u64, size: u8) -> u64 {
        self.read_common(vcpu, off, size, false)
    }

    /// Write a distributor register.
    pub fn dist_write(&mut self, vcpu: usize, off: u64, size: u8, value: u64) -> Effects {
        // Any write may make something deliverable (enable, group, routing,
        // pending): rare enough to simply re-scan everyone.
        self.needs_fill |= self.all_vcpus();
        let e = self.write_common(vcpu, off, size, value, false);
        self.mark(e)
    }

    fn read_common(&self, vcpu: usize, off: u64, size: u8, redist: bool) -> u64 {
        let v3 = self.version == Version::V3;
        let private_only = |first: u32| !redist && v3 && first < 32;
        match off {
            0x000 if !redist => self.ctlr as u64 | if v3 { 1 << 4 } else { 0 }, // ARE_NS reads as one
            0x004 if !redist => {
                // TYPER: ITLinesNumber, CPUNumber (v2), IDbits=9 (v3).
                let lines = (self.nr_intids() / 32 - 1) as u64;
                let cpus = ((self.cpus.len() as u64 - 1) & 7) << 5;
                lines | cpus | if v3 { 9 << 19 } else { 0 }
            }
            0x008 => 0x43b, // IIDR: Arm implementer
            0xffe8 => if v3 { 0x3b } else { 0x2b }, // PIDR2: ArchRev
            o if (0x800..0xc00).contains(&o) && !v3 && !redist => {
                // ITARGETSR: byte per interrupt; private ones read as the vCPU.
                let first = (o - 0x800) as u32;
                let mut v = 0u64;
                for b in 0..size.min(4) as u32 {
                    let t = if first + b < 32 { 1u64 << vcpu } else { self.irq(vcpu, first + b).map_or(0, |i| i.targets as u64) };
                    v |= t << (8 * b);
                }
                v
            }
            o if (0x400..0x800).contains(&o) => {
                let first = (o - 0x400) as u32;
                if private_only(first) {
                    return 0;
                }
                (0..size.min(4) as u32).fold(0, |acc, b| {
                    acc | (self.irq(vcpu, first + b).map_or(0, |i| i.priority as u64) << (8 * b))
                })
            }
            o if (0xc00..0xd00).contains(&o) => {
                let first = ((o - 0xc00) * 4) as u32;
                if private_only(first) {
                    return 0;
                }
                (0..16).fold(0, |acc, i| {
                    let edge = self.irq(vcpu, first + i).is_some_and(|q| q.edge);
                    acc | ((edge as u64) << (2 * i + 1))
                })
            }
            o if (0x6000..0x6000 + 8 * 1024).contains(&o) && v3 && !redist => {
                let intid = ((o - 0x6000) / 8) as u32;
                if intid < 32 { 0 } else { self.irq(vcpu, intid).map_or(0, |i| i.route) }
            }
            o => {
                for (base, f) in [
                    (0x080, (|i: &Irq| i.group1) as fn(&Irq) -> bool),
                    (0x100, |i: &Irq| i.enabled),
                    (0x180, |i: &Irq| i.enabled),
                    (0x200, |i: &Irq| i.pending_now() || (i.in_lr && !i.active)),
                    (0x280, |i: &Irq| i.pending_now() || (i.in_lr && !i.active)),
                    (0x300, |i: &Irq| i.active),
                    (0x380, |i: &Irq| i.active),
                ] {
                    if let Some(first) = Self::bitreg(o, base) {
                        if private_only(first) {
                            return 0;
                        }
                        return self.read_bits(vcpu, first, f) as u64;
                    }
                }
                0
            }
        }
    }

    fn write_common(&mut self, vcpu: usize, off: u64, size: u8, value: u64, redist: bool) -> Effects {
        let v3 = self.version == Version::V3;
        let val = value as u32;
        let e = match off {
            0x000 if !redist => {
                self.ctlr = val & if v3 { 0x3 } else { 0x1 };
                // Enabling may make pending interrupts deliverable.
                Effects { kick: (1u64 << self.cpus.len()) - 1 }
            }
            0xf00 if !v3 && !redist => {
                let e = self.sgir_v2(vcpu, val);
                self.mark(e)
            }
            o if (0x800..0xc00).contains(&o) && !v3 && !redist => {
                let first = (o - 0x800) as u32;
                let mut e = Effects::default();
                for b in 0..size.min(4) as u32 {
                    let intid = first + b;
                    if intid < 32 {
                        continue; // read-only for SGIs/PPIs
                    }
                    let mask = (val >> (8 * b)) as u8 & (((1u16 << self.cpus.len()) - 1) as u8);
                    if let Some(irq) = self.irq_mut(vcpu, intid) {
                        // Only vCPUs that exist can be targeted; an empty
                        // mask keeps the interrupt on vCPU 0.
                        irq.targets = if mask == 0 { 1 } else { mask };
                    }
                    e.kick |= self.kick_for(vcpu, intid).kick;
                }
                e
            }
            o if (0x400..0x800).contains(&o) => {
                let first = (o - 0x400) as u32;
                if !redist && v3 && first < 32 {
                    return Effects::default();
                }
                for b in 0..size.min(4) as u32 {
                    if let Some(irq) = self.irq_mut(vcpu, first + b) {
                        irq.priority = (val >> (8 * b)) as u8;
                    }
                }
                Effects::default()
            }
            o if (0xc00..0xd00).contains(&o) => {
                let first = ((o - 0xc00) * 4) as u32;
                if (!redist && v3 && first < 32) || first < 16 {
                    return Effects::default(); // SGI config is fixed
                }
                for i in 0..16 {
                    if let Some(irq) = self.irq_mut(vcpu, first + i) {
                        irq.edge = val >> (2 * i + 1) & 1 != 0;
                    }
                }
                Effects::default()
            }
            o if (0x6000..0x6000 + 8 * 1024).contains(&o) && v3 && !redist => {
                let intid = ((o - 0x6000) / 8) as u32;
                if intid >= 32 {
                    let route = value & ((1 << 31) | 0xff_00ff_ffff);
                    if let Some(irq) = self.irq_mut(vcpu, intid) {
                        irq.route = route;
                    }
                    self.kick_for(vcpu, intid)
                } else {
                    Effects::default()
                }
            }
            o => {
                if let Some(first) = Self::bitreg(o, 0x080) {
                    if !(v3 && !redist && first < 32) {
                        for i in 0..32 {
                            if let Some(irq) = self.irq_mut(vcpu, first + i) {
                                irq.group1 = val >> i & 1 != 0;
                            }
                        }
                    }
                    Effects::default()
                } else if let Some(first) = Self::bitreg(o, 0x100) {
                    self.write_bits(vcpu, first, val, redist, |i| i.enabled = true)
                } else if let Some(first) = Self::bitreg(o, 0x180) {
                    self.write_bits(vcpu, first, val, redist, |i| i.enabled = false);
                    Effects::default()
                } else if let Some(first) = Self::bitreg(o, 0x200) {
                    self.write_bits(vcpu, first, val, redist, |i| i.pending = true)
                } else if let Some(first) = Self::bitreg(o, 0x280) {
                    self.write_bits(vcpu, first, val, redist, |i| i.pending = false);
                    Effects::default()
                } else {
                    // ISACTIVER/ICACTIVER and everything else: the active
                    // state lives in the list registers; writes are ignored.
                    Effects::default()
                }
            }
        };
        e
    }

    /// GICv2 GICD_SGIR write from `vcpu`.
    fn sgir_v2(&mut self, vcpu: usize, val: u32) -> Effects {
        let intid = val & 0xf;
        let n = self.cpus.len();
        let targets: u64 = match (val >> 24) & 3 {
            0 => ((val >> 16) & 0xff) as u64,
            1 => ((1u64 << n) - 1) & !(1 << vcpu),
            2 => 1 << vcpu,
            _ => 0,
        } & ((1u64 << n) - 1);
        self.raise_sgi(targets, intid)
    }

    fn raise_sgi(&mut self, targets: u64, intid: u32) -> Effects {
        let mut e = Effects::default();
        for t in 0..self.cpus.len() {
            if bit(targets, t) {
                self.cpus[t].private[intid as usize].pending = true;
                e.kick |= 1 << t;
            }
        }
        e
    }

    /// GICv3 ICC_SGI1R_EL1 write (trapped) from `vcpu`. Our vCPUs have
    /// Aff1..3 = 0, so only TargetList/Aff0 and IRM matter.
    pub fn sgi1r_write(&mut self, vcpu: usize, value: u64) -> Effects {
        let intid = ((value >> 24) & 0xf) as u32;
        let n = self.cpus.len();
        let all = (1u64 << n) - 1;
        let targets = if value & (1 << 40) != 0 {
            all & !(1 << vcpu)
        } else {
            let aff1_3 = (value >> 16) & 0xff | ((value >> 32) & 0xff) << 8 | ((value >> 48) & 0xff) << 16;
            let rs = (value >> 44) & 0xf;
            if aff1_3 != 0 || rs != 0 {
                0
            } else {
                value & 0xffff & all
            }
        };
        let e = self.raise_sgi(targets, intid);
        self.mark(e)
    }

    /// Read a GICv3 redistributor register of `vcpu`'s frame (`off` within
    /// its 128 KiB: RD_base, then SGI_base at +0x10000).
    pub fn redist_read(&self, vcpu: usize, off: u64, size: u8) -> u64 {
        match off {
            0x0000 => 0, // GICR_CTLR
            0x0004 => 0x43b,
            0x0008 => {
                // GICR_TYPER: affinity = vCPU index, processor number, Last.
                let last = (vcpu + 1 == self.cpus.len()) as u64;
                let v = ((vcpu as u64) << 32) | ((vcpu as u64) << 8) | (last << 4);
                if size == 4 { v & 0xffff_ffff } else { v }
            }
            0x000c => vcpu as u64, // upper half of TYPER
            0x0014 => {
                let s = self.cpus[vcpu].sleeping;
                ((s as u64) << 1) | ((s as u64) << 2)
            }
            0xffe8 => 0x3b,
            o if (0x10000..0x20000).contains(&o) => self.read_common(vcpu, o - 0x10000, size, true),
            _ => 0,
        }
    }

    pub fn redist_write(&mut self, vcpu: usize, off: u64, size: u8, value: u64) -> Effects {
        match off {
            0x0014 => {
                self.cpus[vcpu].sleeping = value & 2 != 0;
                Effects::default()
            }
            o if (0x10000..0x20000).contains(&o) => {
                self.needs_fill |= 1 << vcpu;
                let e = self.write_common(vcpu, o - 0x10000, size, value, true);
                self.mark(e)
            }
            _ => Effects::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lr_reader(v: &Vgic, vcpu: usize, state: LrState) -> impl FnMut(usize) -> Lr + '_ {
        move |slot| Lr {
            intid: v.cpus[vcpu].lrs[slot].unwrap_or(0),
            state,
            priority: 0,
            group1: true,
            hw: None,
            eoi_maint: false,
        }
    }

    fn enabled_v3(vcpus: usize) -> Vgic {
        let mut g = Vgic::new(Version::V3, vcpus, 4);
        g.dist_write(0, 0x000, 4, 0x2);
        g
    }

    #[test]
    fn lr_encodings_round_trip() {
        let lr = Lr { intid: 27, state: LrState::Pending, priority: 0xa0, group1: true, hw: Some(27), eoi_maint: false };
        assert_eq!(Lr::decode_v3(lr.encode_v3()), lr);
        assert_eq!(Lr::decode_v2(lr.encode_v2()), lr);
        let sw = Lr { intid: 33, state: LrState::PendingActive, priority: 0x80, group1: false, hw: None, eoi_maint: true };
        assert_eq!(Lr::decode_v3(sw.encode_v3()), sw);
        assert_eq!(Lr::decode_v2(sw.encode_v2()), sw);
        assert_eq!(sw.encode_v3() >> 62, 3);
        assert_eq!(sw.encode_v2() >> 28 & 3, 3);
    }

    #[test]
    fn ppi_via_redistributor_goes_through_lr_lifecycle() {
        let mut g = enabled_v3(2);
        // Guest: group 1, enable INTID 27 in vCPU 1's SGI frame.
        g.redist_write(1, 0x10080, 4, 1 << 27);
        g.redist_write(1, 0x10100, 4, 1 << 27);
        assert_eq!(g.redist_read(1, 0x10100, 4), 1 << 27);
        assert_eq!(g.redist_read(0, 0x10100, 4), 0, "banked per vCPU");
        let e = g.inject(1, 27, Some(27));
        assert_eq!(e.kick, 0b10);
        assert!(g.has_pending(1) && !g.has_pending(0));
        let mut out = Vec::new();
        assert!(!g.fill_lrs(1, &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.hw, Some(27));
        assert_eq!(out[0].1.state, LrState::Pending);
        // Nothing new to place while it sits in an LR.
        let mut again = Vec::new();
        g.fill_lrs(1, &mut again);
        assert!(again.is_empty());
        // Guest acknowledged it: active.
        let snapshot = g.clone();
        g.sync_lrs(1, &mut lr_reader(&snapshot, 1, LrState::Active));
        assert!(g.cpus[1].private[27].active && g.cpus[1].private[27].in_lr);
        assert_eq!(g.redist_read(1, 0x10300, 4), 1 << 27);
        // Guest deactivated it: the LR is free again.
        let snapshot = g.clone();
        g.sync_lrs(1, &mut lr_reader(&snapshot, 1, LrState::Invalid));
        assert!(!g.cpus[1].private[27].in_lr);
        assert_eq!(g.cpus[1].lrs[0], None);
        assert!(!g.has_pending(1));
    }

    #[test]
    fn disabled_or_group_disabled_interrupts_stay_out_of_lrs() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        g.redist_write(0, 0x10080, 4, 1 << 27);
        g.redist_write(0, 0x10100, 4, 1 << 27);
        g.inject(0, 27, None);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert!(out.is_empty(), "GICD_CTLR.EnableGrp1 is still 0");
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10180, 4, 1 << 27); // ICENABLER
        g.fill_lrs(0, &mut out);
        assert!(out.is_empty(), "interrupt disabled");
        g.redist_write(0, 0x10100, 4, 1 << 27);
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn level_interrupt_is_resampled_after_eoi() {
        let mut g = enabled_v3(1);
        g.dist_write(0, 0x084, 4, 1 << 1); // IGROUPR1: INTID 33 group 1
        g.dist_write(0, 0x104, 4, 1 << 1); // ISENABLER1: INTID 33
        g.set_level(0, 33, true);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert!(out[0].1.eoi_maint, "level interrupts ask for EOI maintenance");
        // Guest EOIs while the line is still high: pending again.
        let snapshot = g.clone();
        g.sync_lrs(0, &mut lr_reader(&snapshot, 0, LrState::Invalid));
        assert!(g.has_pending(0));
        // Line dropped: nothing left.
        g.set_level(0, 33, false);
        assert!(!g.has_pending(0));
    }

    #[test]
    fn more_pending_than_lrs_reports_overflow_and_sorts_by_priority() {
        let mut g = enabled_v3(1);
        g.dist_write(0, 0x084, 4, u32::MAX as u64);
        g.dist_write(0, 0x104, 4, u32::MAX as u64);
        for (n, intid) in (32..38).enumerate() {
            g.dist_write(0, 0x400 + intid as u64, 1, 0xf0 - n as u64 * 0x10);
            g.inject(0, intid, None);
        }
        let mut out = Vec::new();
        assert!(g.fill_lrs(0, &mut out), "6 pending, 4 LRs");
        let ids: Vec<u32> = out.iter().map(|(_, l)| l.intid).collect();
        assert_eq!(ids, [37, 36, 35, 34], "highest priority (lowest value) first");
    }

    #[test]
    fn v3_distributor_ignores_private_interrupts_and_routes_spis() {
        let mut g = enabled_v3(4);
        g.dist_write(0, 0x100, 4, u32::MAX as u64);
        assert_eq!(g.dist_read(0, 0x100, 4), 0, "SGI/PPI enables live in the redistributor");
        assert_eq!(g.dist_read(0, 0xffe8, 4), 0x3b);
        g.dist_write(0, 0x6000 + 8 * 40, 8, 2);
        assert_eq!(g.spi_target(40), 2);
        g.dist_write(0, 0x6000 + 8 * 41, 8, 1 << 31);
        assert_eq!(g.spi_target(41), 0, "1-of-N routing goes to vCPU 0");
        g.dist_write(0, 0x6000 + 8 * 42, 8, 0x77);
        assert_eq!(g.spi_target(42), 0, "route to a missing vCPU falls back to 0");
        let typer = g.dist_read(0, 4, 4);
        assert_eq!(typer & 0x1f, 3);
        assert_eq!(typer >> 19 & 0x1f, 9);
    }

    #[test]
    fn v2_banked_registers_targets_and_sgir() {
        let mut g = Vgic::new(Version::V2, 2, 4);
        g.dist_write(0, 0, 4, 1);
        g.dist_write(1, 0x100, 4, 1 << 27);
        assert_eq!(g.dist_read(1, 0x100, 4), 1 << 27);
        assert_eq!(g.dist_read(0, 0x100, 4), 0);
        assert_eq!(g.dist_read(1, 0x800, 4), 0x0202_0202, "private targets read as self");
        g.dist_write(0, 0x800 + 32, 1, 0x2);
        assert_eq!(g.spi_target(32), 1);
        g.dist_write(0, 0x800 + 33, 1, 0xfc);
        assert_eq!(g.spi_target(33), 0, "non-existent vCPUs are masked off");
        assert_eq!(g.dist_read(0, 0xffe8, 4), 0x2b);
        // SGI 3 from vCPU 0 to "all but self".
        g.dist_write(0, 0x100, 4, 1 << 3);
        g.dist_write(1, 0x100, 4, 1 << 3);
        let e = g.dist_write(0, 0xf00, 4, (1 << 24) | 3);
        assert_eq!(e.kick, 0b10);
        assert!(g.cpus[1].private[3].pending && !g.cpus[0].private[3].pending);
    }

    #[test]
    fn sgi1r_targets() {
        let mut g = enabled_v3(3);
        assert_eq!(g.sgi1r_write(0, (5 << 24) | 0b110).kick, 0b110);
        assert_eq!(g.sgi1r_write(1, (1 << 40) | (2 << 24)).kick, 0b101);
        assert_eq!(g.sgi1r_write(0, (1 << 16) | 1).kick, 0, "Aff1 != 0 matches nobody");
        assert_eq!(g.sgi1r_write(0, 0xff00).kick, 0, "non-existent targets ignored");
    }

    #[test]
    fn redistributor_typer_and_waker() {
        let mut g = Vgic::new(Version::V3, 2, 4);
        assert_eq!(g.redist_read(1, 0x8, 8), (1 << 32) | (1 << 8) | (1 << 4));
        assert_eq!(g.redist_read(0, 0x8, 8) & (1 << 4), 0);
        assert_eq!(g.redist_read(0, 0x14, 4), 0b110);
        g.redist_write(0, 0x14, 4, 0);
        assert_eq!(g.redist_read(0, 0x14, 4), 0);
    }

    #[test]
    fn hostile_accesses_never_panic() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        let mut h = Vgic::new(Version::V2, 1, 4);
        for off in (0..0x10000u64).step_by(4).chain([0xfffc, 0x1_0000, u64::MAX - 3]) {
            for v in [0, u64::MAX] {
                g.dist_write(0, off, 4, v);
                g.dist_read(0, off, 4);
                g.redist_write(0, off, 4, v);
                g.redist_read(0, off, 4);
                h.dist_write(0, off, 4, v);
                h.dist_read(0, off, 1);
            }
        }
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert!(out.len() <= 4);
    }
}

#[cfg(test)]
mod hw_link_tests {
    use super::*;

    #[test]
    fn reinjection_while_in_lr_keeps_its_hardware_link() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10080, 4, 1 << 27);
        g.redist_write(0, 0x10100, 4, 1 << 27);
        // First timer interrupt goes into an LR (as a software one, as after
        // a vCPU switch converted it).
        g.inject(0, 27, None);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        // The physical timer fires again while it is still in the LR.
        g.inject(0, 27, Some(27));
        // The guest completes the first one.
        let snap = g.clone();
        g.sync_lrs(0, &mut |slot| Lr { intid: snap.cpus[0].lrs[slot].unwrap_or(0), state: LrState::Invalid, priority: 0, group1: true, hw: None, eoi_maint: false });
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.hw, Some(27), "the new injection must stay linked to the physical PPI");
    }

    /// Regression test: a timer interrupt acknowledged for a vCPU that left
    /// its CPU before it reached a list register (slice over, or its VM
    /// resetting) kept the physical PPI 27 active; after a VM restart
    /// dropped the model, that CPU's virtual timer never fired again.
    #[test]
    fn leaving_the_cpu_finishes_links_not_in_a_list_register() {
        let mut g = Vgic::new(Version::V3, 2, 4);
        g.dist_write(0, 0, 4, 2);
        for vcpu in 0..2 {
            g.redist_write(vcpu, 0x10080, 4, 1 << 27);
            g.redist_write(vcpu, 0x10100, 4, 1 << 27);
        }
        // vCPU 0: injected and left before a fill. vCPU 1: in an LR.
        g.inject(0, 27, Some(27));
        g.inject(1, 27, Some(27));
        let mut out = Vec::new();
        g.fill_lrs(1, &mut out);
        assert_eq!(out.len(), 1);
        let mut done = Vec::new();
        g.unlink_hw(0, 0, &mut |p| done.push(p));
        assert_eq!(done, [27], "acknowledged, never given to the guest: deactivate it");
        done.clear();
        g.unlink_hw(1, 1 << 27, &mut |p| done.push(p));
        assert!(done.is_empty(), "the list register's link is the caller's to finish");
        // Both stay deliverable to the guest, without a link.
        assert!(g.cpus[0].private[27].pending && g.cpus[0].private[27].hw.is_none());
        assert!(g.cpus[1].private[27].in_lr && g.cpus[1].private[27].hw.is_none());
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.hw, None);
        // Nothing left to finish a second time.
        g.unlink_hw(0, 0, &mut |p| done.push(p));
        assert!(done.is_empty());
    }

    /// Regression test: the vCPU left with an earlier timer interrupt in a
    /// list register, already unlinked by a previous switch (so a purely
    /// virtual one), and a new injection linked to the physical PPI waiting
    /// behind it. That link is not in any list register: it must be
    /// finished too, or PPI 27 stays active for good (seen as a Linux vCPU
    /// whose timer never fired again after a few switches).
    #[test]
    fn leaving_the_cpu_finishes_a_link_waiting_behind_a_virtual_copy() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10080, 4, 1 << 27);
        g.redist_write(0, 0x10100, 4, 1 << 27);
        g.inject(0, 27, Some(27));
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        // First switch: the LR's link is finished by the caller.
        let mut done = Vec::new();
        g.unlink_hw(0, 1 << 27, &mut |p| done.push(p));
        assert!(done.is_empty());
        // Back on the CPU, the timer fires again while the virtual copy is
        // still in its LR; the vCPU leaves before the guest completes it.
        g.inject(0, 27, Some(27));
        assert!(g.cpus[0].private[27].in_lr);
        g.unlink_hw(0, 0, &mut |p| done.push(p));
        assert_eq!(done, [27], "the waiting injection's physical interrupt is still active");
    }
}

#[cfg(test)]
mod fill_tracking_tests {
    use super::*;

    #[test]
    fn fill_scans_only_when_something_may_be_deliverable() {
        let mut g = Vgic::new(Version::V3, 2, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(1, 0x10080, 4, 1 << 27);
        g.redist_write(1, 0x10100, 4, 1 << 27);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        g.fill_lrs(1, &mut out);
        assert!(out.is_empty());
        assert_eq!(g.needs_fill, 0, "nothing left: both vCPUs are clean");
        g.inject(1, 27, None);
        assert_eq!(g.needs_fill, 0b10, "only the target is marked");
        g.fill_lrs(1, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(g.needs_fill & 0b10, 0);
        // A level interrupt whose LR completes is re-examined.
        g.dist_write(0, 0x084, 4, 1 << 1);
        g.dist_write(0, 0x104, 4, 1 << 1);
        g.set_level(0, 33, true);
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(g.needs_fill & 1, 0);
        let snap = g.clone();
        g.sync_lrs(0, &mut |slot| Lr { intid: snap.cpus[0].lrs[slot].unwrap_or(0), state: LrState::Invalid, priority: 0, group1: true, hw: None, eoi_maint: true });
        assert_eq!(g.needs_fill & 1, 1);
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1, "still asserted: delivered again");
    }
}
