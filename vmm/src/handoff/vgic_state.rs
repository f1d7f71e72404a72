//! [`VgicState`] <-> [`Vgic`]: the handoff's mirror of the vGIC model, and
//! the checks that make a restored model consistent.

use alloc::string::String;
use alloc::vec::Vec;

use super::{
    GicVersion, HandoffError, IrqState, VgicCpuState, VgicState, HW_INTID_END, HW_INTID_MIN,
    MAX_VCPUS,
};
use crate::vgic::{Irq, Vgic, MAX_LRS, NR_PRIVATE, NR_SGIS, NR_SPIS};

impl From<&Irq> for IrqState {
    fn from(i: &Irq) -> Self {
        IrqState {
            enabled: i.enabled,
            pending: i.pending,
            active: i.active,
            level: i.level,
            edge: i.edge,
            priority: i.priority,
            group1: i.group1,
            targets: i.targets,
            route: i.route,
            hw: i.hw,
            in_lr: i.in_lr,
        }
    }
}

impl From<&IrqState> for Irq {
    fn from(i: &IrqState) -> Self {
        Irq {
            enabled: i.enabled,
            pending: i.pending,
            active: i.active,
            level: i.level,
            edge: i.edge,
            priority: i.priority,
            group1: i.group1,
            targets: i.targets,
            route: i.route,
            hw: i.hw,
            in_lr: i.in_lr,
        }
    }
}

impl From<&Vgic> for VgicState {
    fn from(v: &Vgic) -> Self {
        VgicState {
            version: v.version,
            ctlr: v.ctlr,
            nr_lrs: v.nr_lrs as u32,
            spis: v.spis.iter().map(IrqState::from).collect(),
            cpus: v
                .cpus
                .iter()
                .map(|c| VgicCpuState {
                    private: c.private.map(|i| IrqState::from(&i)),
                    lrs: c.lrs,
                    sleeping: c.sleeping,
                    sgi_sources: c.sgi_sources,
                })
                .collect(),
        }
    }
}

impl TryFrom<&VgicState> for Vgic {
    type Error = HandoffError;

    /// Rebuilds the model, refusing a state it could not have reached (see
    /// [`validate`]). Every vCPU is marked for a list-register fill, so
    /// whatever was pending is looked at on the first entry.
    fn try_from(s: &VgicState) -> Result<Self, HandoffError> {
        validate(s).map_err(|(prop, why)| HandoffError::OutOfRange {
            node: String::from("vgic"),
            prop: String::from(prop),
            why,
        })?;
        let mut v = Vgic::new(s.version, s.cpus.len(), s.nr_lrs as usize);
        v.ctlr = s.ctlr;
        v.nr_lrs = s.nr_lrs as usize;
        v.spis = s.spis.iter().map(Irq::from).collect();
        for (c, sc) in v.cpus.iter_mut().zip(&s.cpus) {
            c.private = sc.private.map(|i| Irq::from(&i));
            c.lrs = sc.lrs;
            c.sleeping = sc.sleeping;
            c.sgi_sources = sc.sgi_sources;
        }
        v.needs_fill = (1u64 << s.cpus.len()) - 1;
        Ok(v)
    }
}

/// The SGI sources a block without `sgi-sources` stands for: on GICv2 a
/// pending SGI was sent by vCPU 0 (the model before it tracked sources
/// reported CPUID 0 for every SGI), none on GICv3. The writer leaves the
/// property out when the sources are exactly these, so blocks without
/// per-source state are unchanged.
pub(crate) fn implied_sgi_sources(version: GicVersion, private: &[IrqState]) -> [u8; NR_SGIS] {
    core::array::from_fn(|i| {
        (version == GicVersion::V2 && private.get(i).is_some_and(|p| p.pending)) as u8
    })
}

/// The interrupt `intid` as seen from vCPU `cpu`.
fn irq(s: &VgicState, cpu: usize, intid: u32) -> Option<&IrqState> {
    let i = intid as usize;
    if i < NR_PRIVATE {
        s.cpus.get(cpu).map(|c| &c.private[i])
    } else {
        s.spis.get(i - NR_PRIVATE)
    }
}

/// Checks a vGIC state: sizes, ranges, and that the list-register
/// bookkeeping agrees with the interrupts (`in_lr` set exactly for the
/// interrupts held in one list register). Returns the offending property
/// (as the format names it) and why.
pub(crate) fn validate(s: &VgicState) -> Result<(), (&'static str, &'static str)> {
    if s.spis.len() != NR_SPIS {
        return Err(("nr-spis", "this image models 96 SPIs"));
    }
    if s.cpus.is_empty() || s.cpus.len() > MAX_VCPUS {
        return Err(("cpu", "a vGIC has 1 to 8 vCPUs"));
    }
    if s.nr_lrs == 0 || s.nr_lrs as usize > MAX_LRS {
        return Err(("nr-lrs", "list register count must be 1..=16"));
    }
    let hw_ok = |i: &IrqState| {
        i.hw.is_none_or(|p| (HW_INTID_MIN..HW_INTID_END).contains(&p))
    };
    if !s.spis.iter().all(hw_ok) || !s.cpus.iter().all(|c| c.private.iter().all(hw_ok)) {
        return Err(("hw", "physical INTID outside 16..1020"));
    }
    let nr_intids = (NR_PRIVATE + NR_SPIS) as u32;
    // How many list registers hold each SPI, across all vCPUs.
    let mut spi_in_lrs: Vec<u8> = alloc::vec![0; NR_SPIS];
    for (c, cpu) in s.cpus.iter().enumerate() {
        let mut private_in_lrs = [0u8; NR_PRIVATE];
        for (slot, lr) in cpu.lrs.iter().enumerate() {
            let Some(intid) = *lr else { continue };
            if slot >= s.nr_lrs as usize {
                return Err(("lrs", "a list register beyond nr-lrs is in use"));
            }
            if intid >= nr_intids {
                return Err(("lrs", "a list register holds an INTID outside the model"));
            }
            if !irq(s, c, intid).is_some_and(|i| i.in_lr) {
                return Err(("lrs", "a list register holds an interrupt not marked in-lr"));
            }
            let n = match (intid as usize).checked_sub(NR_PRIVATE) {
                Some(spi) => &mut spi_in_lrs[spi],
                None => &mut private_in_lrs[intid as usize],
            };
            *n = n.saturating_add(1);
        }
        for (i, p) in cpu.private.iter().enumerate() {
            if p.in_lr != (private_in_lrs[i] == 1) || private_in_lrs[i] > 1 {
                return Err((
                    "in-lr",
                    "an interrupt marked in-lr is not in exactly one list register",
                ));
            }
        }
    }
    // GICv2 SGI sources: only vCPUs of the VM, and pending exactly when
    // some source is (the model keeps the two together); none on GICv3.
    let vcpus = (1u16 << s.cpus.len()) - 1;
    for cpu in &s.cpus {
        for (src, p) in cpu.sgi_sources.iter().zip(&cpu.private) {
            let ok = match s.version {
                GicVersion::V2 => u16::from(*src) & !vcpus == 0 && (*src != 0) == p.pending,
                GicVersion::V3 => *src == 0,
            };
            if !ok {
                return Err((
                    "sgi-sources",
                    "SGI sources must be vCPUs of the VM, set exactly for pending GICv2 SGIs",
                ));
            }
        }
    }
    for (i, p) in s.spis.iter().enumerate() {
        if p.in_lr != (spi_in_lrs[i] == 1) || spi_in_lrs[i] > 1 {
            return Err((
                "in-lr",
                "an interrupt marked in-lr is not in exactly one list register",
            ));
        }
    }
    Ok(())
}
