//! Distributor (GICD) register emulation. The register layout of the
//! interrupt banks (IGROUPR .. ICFGR) is shared with the GICv3
//! redistributor's SGI_base frame, which reuses [`Vgic::read_common`] and
//! [`Vgic::write_common`] with `redist = true`.

use super::{Effects, Irq, Version, Vgic, NR_SGIS};

impl Vgic {
    /// Bank of 1-bit-per-interrupt registers starting at `base`: returns the
    /// first INTID covered by `off` if it falls in the bank.
    fn bitreg(off: u64, base: u64) -> Option<u32> {
        (off >= base && off < base + 0x80).then(|| ((off - base) * 8) as u32)
    }

    fn read_bits(&self, vcpu: usize, first: u32, f: impl Fn(&Irq) -> bool) -> u32 {
        (0..32)
            .filter(|i| self.irq(vcpu, first + i).is_some_and(&f))
            .fold(0, |acc, i| acc | 1 << i)
    }

    fn write_bits(
        &mut self,
        vcpu: usize,
        first: u32,
        value: u32,
        redist: bool,
        f: impl Fn(&mut Irq),
    ) -> Effects {
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

    pub(super) fn read_common(&self, vcpu: usize, off: u64, size: u8, redist: bool) -> u64 {
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
            // Peripheral ID2: ArchRev (bits 7:4) over Arm's JEP106 bits
            // (0xb), which is how guests tell the versions apart. GICv3's
            // 64 KiB frame has it at 0xFFE8 (GICD_PIDR2); GICv2's 4 KiB
            // distributor at 0xFE8 (GICD_ICPIDR2), the rest of its 64 KiB
            // window being reserved (RAZ).
            0xffe8 if v3 => 0x3b,
            0x0fe8 if !v3 && !redist => 0x2b,
            // ITARGETSR with a single CPU interface: RAZ/WI, as the GICv2
            // architecture has it for a uniprocessor implementation (every
            // interrupt goes to the one CPU).
            o if (0x800..0xc00).contains(&o) && !v3 && !redist && self.cpus.len() == 1 => 0,
            o if (0x800..0xc00).contains(&o) && !v3 && !redist => {
                // ITARGETSR: byte per interrupt; private ones read as the vCPU.
                let first = (o - 0x800) as u32;
                let mut v = 0u64;
                for b in 0..size.min(4) as u32 {
                    let t = if first + b < 32 {
                        1u64 << vcpu
                    } else {
                        self.irq(vcpu, first + b).map_or(0, |i| i.targets as u64)
                    };
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
                if intid < 32 {
                    0
                } else {
                    self.irq(vcpu, intid).map_or(0, |i| i.route)
                }
            }
            // CPENDSGIR (0xF10) and SPENDSGIR (0xF20) read the same state.
            o if (0xf10..0xf30).contains(&o) && !v3 && !redist => {
                self.sgi_pending_read(vcpu, ((o - 0xf10) % 0x10) as usize, size)
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

    pub(super) fn write_common(
        &mut self,
        vcpu: usize,
        off: u64,
        size: u8,
        value: u64,
        redist: bool,
    ) -> Effects {
        let v3 = self.version == Version::V3;
        let val = value as u32;
        let e = match off {
            0x000 if !redist => {
                self.ctlr = val & if v3 { 0x3 } else { 0x1 };
                // Enabling may make pending interrupts deliverable.
                Effects {
                    kick: (1u64 << self.cpus.len()) - 1,
                }
            }
            0xf00 if !v3 && !redist => {
                let e = self.sgir_v2(vcpu, val);
                self.mark(e)
            }
            o if (0x800..0xc00).contains(&o) && !v3 && !redist && self.cpus.len() == 1 => {
                Effects::default() // RAZ/WI on a uniprocessor (see the read)
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
            o if (0xf10..0xf30).contains(&o) && !v3 && !redist => {
                let first = ((o - 0xf10) % 0x10) as usize;
                self.sgi_pending_write(vcpu, first, size, val, o >= 0xf20)
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
                    let val = self.without_v2_sgis(first, val);
                    self.write_bits(vcpu, first, val, redist, |i| i.pending = true)
                } else if let Some(first) = Self::bitreg(o, 0x280) {
                    let val = self.without_v2_sgis(first, val);
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
        self.raise_sgi(vcpu, targets, intid)
    }

    /// GICv2 ISPENDR0/ICPENDR0 ignore writes to SGI bits: an SGI's pending
    /// state is per source, set and cleared through SPENDSGIR/CPENDSGIR.
    /// Returns `val` (bit i = INTID first+i) without the bits of SGIs on
    /// GICv2; `first` is 8 for a byte access at offset 1.
    fn without_v2_sgis(&self, first: u32, val: u32) -> u32 {
        match NR_SGIS.checked_sub(first as usize) {
            Some(n) if self.version == Version::V2 => val & (u32::MAX << n),
            _ => val,
        }
    }

    /// GICv2 SPENDSGIR/CPENDSGIR<n> read by `vcpu` (banked: its own SGIs),
    /// `first` the SGI of the register's lowest byte accessed: byte k
    /// holds SGI first+k, bit n = pending from vCPU n. A copy held in a
    /// list register and not yet acknowledged counts as pending, as in
    /// ISPENDR.
    fn sgi_pending_read(&self, vcpu: usize, first: usize, size: u8) -> u64 {
        let Some(cpu) = self.cpus.get(vcpu) else {
            return 0;
        };
        let mut v = 0u64;
        for b in 0..(size as usize).min(4) {
            let sgi = first + b;
            if sgi >= NR_SGIS {
                break;
            }
            let mut sources = cpu.sgi_sources[sgi];
            let irq = &cpu.private[sgi];
            if irq.in_lr && !irq.active {
                let held = (0..self.nr_lrs)
                    .find(|&s| cpu.lrs[s] == Some(sgi as u32))
                    .and_then(|s| cpu.seen[s]);
                if let Some(lr) = held {
                    sources |= 1 << (lr.source & 7);
                }
            }
            v |= (sources as u64) << (8 * b);
        }
        v
    }

    /// GICv2 SPENDSGIR (`set`) or CPENDSGIR write by `vcpu`: sets or clears
    /// the pending state of its SGIs per source. Only vCPUs that exist can
    /// be sources. Clearing does not reach a copy already in a list
    /// register (that belongs to the virtual CPU interface, as for ICPENDR).
    fn sgi_pending_write(
        &mut self,
        vcpu: usize,
        first: usize,
        size: u8,
        val: u32,
        set: bool,
    ) -> Effects {
        let exist = self.all_vcpus() as u8;
        let Some(cpu) = self.cpus.get_mut(vcpu) else {
            return Effects::default();
        };
        let mut raised = false;
        for b in 0..(size as usize).min(4) {
            let sgi = first + b;
            if sgi >= NR_SGIS {
                break;
            }
            let bits = (val >> (8 * b)) as u8 & exist;
            let s = &mut cpu.sgi_sources[sgi];
            if set {
                *s |= bits;
                raised |= bits != 0;
            } else {
                *s &= !bits;
            }
            cpu.private[sgi].pending = *s != 0;
        }
        Effects {
            kick: if raised { 1 << vcpu } else { 0 },
        }
    }
}
