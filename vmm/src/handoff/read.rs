//! The validating reader: header, checksums, then the device-tree body
//! through [`crate::dtb`], property by property. Unknown properties and
//! nodes are ignored; every size is checked before anything is allocated
//! from it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::vgic_state::implied_sgi_sources;
use crate::dtb::{Dtb, Node};
use crate::vgic::{MAX_LRS, NR_PRIVATE, NR_SGIS, NR_SPIS};
use crate::vpl011::FIFO_DEPTH;

use super::header::peek_header;
use super::{
    check_limits, check_semantics, short, valid_entry_name, FpState, GicVersion, Handoff,
    HandoffError, HandoffLimits, IrqState, PassthroughState, Pl011State, PowerState, Region,
    VcpuState, VgicCpuState, VgicState, VifState, VmState, MAJOR, MAX_CONSOLE_PENDING,
    MAX_DEVICE_INTIDS, MAX_DEVICE_REGIONS, MAX_NAME_LEN, MAX_PASSTHROUGH, MAX_PATH_LEN,
    MAX_SYSREGS, MAX_TIMESTAMPS, MAX_VCPUS, MAX_VMS, NR_Q, NR_VIF_LRS, NR_X,
};

/// Reads and validates a whole block. `bytes` may extend past the block
/// (e.g. the whole reserved region); only `total_size` bytes are used.
pub fn decode(bytes: &[u8], limits: &HandoffLimits) -> Result<Handoff, HandoffError> {
    let h = peek_header(bytes)?;
    if h.major != MAJOR {
        return Err(HandoffError::UnknownMajor {
            found: h.major,
            supported: MAJOR,
        });
    }
    let total = h.total_size as usize;
    let Some(body) = bytes.get(h.header_size as usize..total) else {
        return Err(HandoffError::Truncated {
            needed: total,
            available: bytes.len(),
        });
    };
    let computed = crate::crc32::hash(body);
    if computed != h.body_crc {
        return Err(HandoffError::BodyCrc {
            stored: h.body_crc,
            computed,
        });
    }
    let dt = Dtb::parse(body).map_err(HandoffError::BadFdt)?;
    let handoff = read_root(&dt, limits)?;
    check_semantics(&handoff)?;
    check_limits(&handoff, limits)?;
    Ok(handoff)
}

/// A node of the block; its path is worked out only for an error message
/// (reading a valid block, the common case, builds no strings).
struct N<'d, 'a> {
    n: Node<'d, 'a>,
}

type R<T> = Result<T, HandoffError>;

impl<'d, 'a> N<'d, 'a> {
    fn new(n: Node<'d, 'a>) -> Self {
        Self { n }
    }

    fn path(&self) -> String {
        self.n.path()
    }

    fn malformed(&self, prop: &str, why: &'static str) -> HandoffError {
        HandoffError::Malformed {
            node: self.path(),
            prop: short(prop),
            why,
        }
    }

    fn range(&self, prop: &str, why: &'static str) -> HandoffError {
        HandoffError::OutOfRange {
            node: self.path(),
            prop: short(prop),
            why,
        }
    }

    fn req(&self, name: &str) -> R<&'a [u8]> {
        self.n.prop(name).ok_or_else(|| HandoffError::Missing {
            node: self.path(),
            what: String::from(name),
        })
    }

    fn exact_opt(&self, name: &str, len: usize, why: &'static str) -> R<Option<&'a [u8]>> {
        match self.n.prop(name) {
            Some(v) if v.len() != len => Err(self.malformed(name, why)),
            v => Ok(v),
        }
    }

    fn exact(&self, name: &str, len: usize, why: &'static str) -> R<&'a [u8]> {
        let v = self.req(name)?;
        if v.len() != len {
            return Err(self.malformed(name, why));
        }
        Ok(v)
    }

    fn u32(&self, name: &str) -> R<u32> {
        Ok(be32(self.exact(name, 4, "expected one u32 cell")?))
    }

    fn u64_opt(&self, name: &str) -> R<Option<u64>> {
        Ok(self
            .exact_opt(name, 8, "expected one u64 (two cells)")?
            .map(be64))
    }

    fn u64(&self, name: &str) -> R<u64> {
        Ok(be64(self.exact(name, 8, "expected one u64 (two cells)")?))
    }

    /// An empty property: present = true.
    fn flag(&self, name: &str) -> R<bool> {
        Ok(self.exact_opt(name, 0, "a flag has no value")?.is_some())
    }

    /// One NUL-terminated UTF-8 string of at most `max` bytes.
    fn string(&self, name: &str, max: usize) -> R<String> {
        let v = self.req(name)?;
        let bad = || self.malformed(name, "expected one NUL-terminated UTF-8 string");
        let (&last, s) = v.split_last().ok_or_else(bad)?;
        if last != 0 || s.contains(&0) {
            return Err(bad());
        }
        if s.len() > max {
            return Err(self.range(name, "string too long"));
        }
        core::str::from_utf8(s).map(String::from).map_err(|_| bad())
    }

    /// Raw bytes, at most `max`.
    fn bytes_opt(&self, name: &str, max: usize) -> R<Option<&'a [u8]>> {
        match self.n.prop(name) {
            Some(v) if v.len() > max => Err(self.range(name, "too long")),
            v => Ok(v),
        }
    }

    /// An array of u64 (big-endian pairs of cells) of at most `max` entries.
    fn u64s(&self, v: &'a [u8], name: &str, max: usize) -> R<Vec<u64>> {
        if !v.len().is_multiple_of(8) {
            return Err(self.malformed(name, "length is not a multiple of 8"));
        }
        if v.len() / 8 > max {
            return Err(self.range(name, "too many entries"));
        }
        Ok(v.chunks_exact(8).map(be64).collect())
    }

    fn u32s(&self, v: &'a [u8], name: &str, max: usize) -> R<Vec<u32>> {
        if !v.len().is_multiple_of(4) {
            return Err(self.malformed(name, "length is not a multiple of 4"));
        }
        if v.len() / 4 > max {
            return Err(self.range(name, "too many entries"));
        }
        Ok(v.chunks_exact(4).map(be32).collect())
    }

    fn region_opt(&self, name: &str) -> R<Option<Region>> {
        Ok(self
            .exact_opt(name, 16, "expected <u64 base, u64 size>")?
            .map(|v| Region::new(be64(&v[..8]), be64(&v[8..]))))
    }

    fn region(&self, name: &str) -> R<Region> {
        self.req(name)?;
        self.region_opt(name)?.ok_or_else(|| HandoffError::Missing {
            node: self.path(),
            what: String::from(name),
        })
    }

    fn child(&self, name: &'static str) -> R<N<'d, 'a>> {
        self.n
            .child(name)
            .map(N::new)
            .ok_or_else(|| HandoffError::Missing {
                node: self.path(),
                what: format!("{name} node"),
            })
    }

    fn children(&self, base: &'static str) -> impl Iterator<Item = Node<'d, 'a>> + 'd {
        self.n.children().filter(move |c| c.base_name() == base)
    }

    /// Every property of this node as a `name = <u64>` entry.
    fn entries(&self, what: &'static str, max: usize) -> R<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for (name, v) in self.n.props() {
            if out.len() >= max {
                return Err(HandoffError::TooMany {
                    node: self.path(),
                    what,
                    max,
                });
            }
            if !valid_entry_name(name) {
                return Err(
                    self.malformed(name, "not a valid name (1-31 of 0-9 a-z A-Z , . _ + ? # -)")
                );
            }
            if v.len() != 8 {
                return Err(self.malformed(name, "expected one u64 (two cells)"));
            }
            out.push((String::from(name), be64(v)));
        }
        Ok(out)
    }
}

/// Callers pass exactly 4 bytes.
fn be32(v: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    for (d, s) in a.iter_mut().zip(v) {
        *d = *s;
    }
    u32::from_be_bytes(a)
}

/// Callers pass exactly 8 bytes.
fn be64(v: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(v) {
        *d = *s;
    }
    u64::from_be_bytes(a)
}

fn read_root(dt: &Dtb<'_>, limits: &HandoffLimits) -> R<Handoff> {
    let root = N::new(dt.root());
    let generation = root.u64("generation")?;
    let counter_freq = root.u64("counter-frequency")?;
    let prev_image = root.region_opt("prev-image")?;
    let writer = match root.n.prop("writer") {
        Some(_) => Some(root.string("writer", MAX_NAME_LEN)?),
        None => None,
    };
    // Lenient on purpose: a damaged upload state only restarts an upload.
    let upload = root
        .n
        .prop("upload-resume")
        .and_then(crate::maint::receiver::ResumeState::from_bytes);
    let timestamps = match root.n.child("timestamps") {
        Some(t) => N::new(t).entries("timestamps", MAX_TIMESTAMPS)?,
        None => Vec::new(),
    };
    let max_vms = limits.max_vms.min(MAX_VMS);
    let max_vcpus = limits.max_vcpus.min(MAX_VCPUS);
    let mut vms = Vec::new();
    for n in root.children("vm") {
        if vms.len() >= max_vms {
            return Err(HandoffError::TooMany {
                node: root.path(),
                what: "VMs",
                max: max_vms,
            });
        }
        vms.push(read_vm(&N::new(n), max_vcpus)?);
    }
    Ok(Handoff {
        generation,
        timestamps,
        counter_freq,
        prev_image,
        writer,
        upload,
        vms,
    })
}

fn read_vm(n: &N<'_, '_>, max_vcpus: usize) -> R<VmState> {
    let id = n.u32("id")?;
    let name = n.string("vm-name", MAX_NAME_LEN)?;
    let ram = n.region("ram")?;
    let nr_vcpus = n.u32("vcpus")? as usize;
    if nr_vcpus == 0 || nr_vcpus > max_vcpus {
        return Err(n.range("vcpus", "zero, or more vCPUs than this hypervisor allows"));
    }
    let cntvoff = n.u64("cntvoff")?;
    let stopped = n.flag("stopped")?;
    let console_pending = n
        .bytes_opt("console-pending", MAX_CONSOLE_PENDING)?
        .unwrap_or(&[])
        .to_vec();

    let mut passthrough = Vec::new();
    for p in n.children("passthrough") {
        if passthrough.len() >= MAX_PASSTHROUGH {
            return Err(HandoffError::TooMany {
                node: n.path(),
                what: "passthrough devices",
                max: MAX_PASSTHROUGH,
            });
        }
        passthrough.push(read_passthrough(&N::new(p))?);
    }

    let mut vcpus = Vec::new();
    for c in n.children("cpu") {
        if vcpus.len() >= nr_vcpus {
            return Err(n.range("vcpus", "more cpu nodes than 'vcpus'"));
        }
        vcpus.push(read_vcpu(&N::new(c))?);
    }
    if vcpus.len() != nr_vcpus {
        return Err(n.range("vcpus", "fewer cpu nodes than 'vcpus'"));
    }
    vcpus.sort_by_key(|c| c.index);

    let vgic = read_vgic(&n.child("vgic")?, nr_vcpus)?;
    let uart = read_uart(&n.child("uart")?)?;
    Ok(VmState {
        id,
        name,
        ram,
        cntvoff,
        stopped,
        passthrough,
        vcpus,
        vgic,
        uart,
        console_pending,
    })
}

fn read_passthrough(n: &N<'_, '_>) -> R<PassthroughState> {
    let path = n.string("path", MAX_PATH_LEN)?;
    let cells = n.u64s(n.req("regions")?, "regions", 2 * MAX_DEVICE_REGIONS)?;
    if cells.len() % 2 != 0 {
        return Err(n.malformed("regions", "expected <u64 base, u64 size> pairs"));
    }
    let regions = cells
        .chunks_exact(2)
        .map(|c| Region::new(c[0], c[1]))
        .collect();
    let intids = match n.n.prop("intids") {
        Some(v) => n.u32s(v, "intids", MAX_DEVICE_INTIDS)?,
        None => Vec::new(),
    };
    Ok(PassthroughState {
        path,
        regions,
        intids,
    })
}

fn read_vcpu(n: &N<'_, '_>) -> R<VcpuState> {
    let index = n.u32("index")?;
    let power = match n.string("power", 16)?.as_str() {
        "on" => PowerState::On,
        "off" => PowerState::Off,
        "on-pending" => PowerState::OnPending,
        _ => return Err(n.range("power", "not one of on, off, on-pending")),
    };
    let waiting = n.flag("waiting")?;
    let boot_entry = n.u64_opt("boot-entry")?.unwrap_or(0);
    let boot_context = n.u64_opt("boot-context")?.unwrap_or(0);
    let mut x = [0u64; NR_X];
    let xv = n.exact("x", NR_X * 8, "expected 31 u64 (x0..x30)")?;
    for (d, c) in x.iter_mut().zip(xv.chunks_exact(8)) {
        *d = be64(c);
    }
    let pc = n.u64("pc")?;
    let pstate = n.u64("pstate")?;
    let sysregs = match n.n.child("sysregs") {
        Some(s) => N::new(s).entries("system registers", MAX_SYSREGS)?,
        None => Vec::new(),
    };

    let f = n.child("fp")?;
    let mut q = [0u128; NR_Q];
    let qv = f.exact("q", NR_Q * 16, "expected 32 x 16 bytes (q0..q31)")?;
    for (d, c) in q.iter_mut().zip(qv.chunks_exact(16)) {
        let mut a = [0u8; 16];
        a.copy_from_slice(c);
        *d = u128::from_be_bytes(a);
    }
    let fp = FpState {
        q,
        fpcr: f.u64("fpcr")?,
        fpsr: f.u64("fpsr")?,
    };

    let v = n.child("vif")?;
    let apr = v.exact("apr", 8, "expected two u32 cells")?;
    let mut lrs = [0u64; NR_VIF_LRS];
    for (d, s) in lrs
        .iter_mut()
        .zip(v.u64s(v.req("lrs")?, "lrs", NR_VIF_LRS)?)
    {
        *d = s;
    }
    let vif = VifState {
        vmcr: v.u64("vmcr")?,
        apr: [be32(&apr[..4]), be32(&apr[4..])],
        lrs,
    };

    Ok(VcpuState {
        index,
        power,
        waiting,
        boot_entry,
        boot_context,
        x,
        pc,
        pstate,
        sysregs,
        fp,
        vif,
    })
}

fn read_vgic(n: &N<'_, '_>, nr_vcpus: usize) -> R<VgicState> {
    let version = match n.u32("version")? {
        2 => GicVersion::V2,
        3 => GicVersion::V3,
        _ => return Err(n.range("version", "not 2 or 3")),
    };
    let ctlr = n.u32("ctlr")?;
    let nr_lrs = n.u32("nr-lrs")?;
    if n.u32("nr-spis")? as usize != NR_SPIS {
        return Err(n.range("nr-spis", "this image models 96 SPIs"));
    }
    let spis = read_irqs(&n.child("spis")?, NR_SPIS)?;
    let mut cpus: Vec<(u32, VgicCpuState)> = Vec::new();
    for c in n.children("cpu") {
        if cpus.len() >= nr_vcpus {
            return Err(n.range("cpu", "more vGIC cpu nodes than vCPUs"));
        }
        let c = N::new(c);
        let index = c.u32("index")?;
        let lv = c.exact("lrs", MAX_LRS * 4, "expected 16 u32 cells")?;
        let mut lrs = [None; MAX_LRS];
        for (d, s) in lrs.iter_mut().zip(lv.chunks_exact(4)) {
            let v = be32(s);
            *d = (v != u32::MAX).then_some(v);
        }
        let private: [IrqState; NR_PRIVATE] = read_irqs(&c, NR_PRIVATE)?
            .try_into()
            .map_err(|_| c.malformed("enabled", "wrong interrupt count"))?;
        let sleeping = c.flag("sleeping")?;
        let sgi_sources = match c.exact_opt("sgi-sources", NR_SGIS, "expected one byte per SGI")? {
            Some(v) => core::array::from_fn(|i| v[i]),
            None => implied_sgi_sources(version, &private),
        };
        cpus.push((
            index,
            VgicCpuState {
                private,
                lrs,
                sleeping,
                sgi_sources,
            },
        ));
    }
    cpus.sort_by_key(|(i, _)| *i);
    if cpus.len() != nr_vcpus
        || cpus
            .iter()
            .enumerate()
            .any(|(i, (idx, _))| *idx as usize != i)
    {
        return Err(n.range("cpu", "one vGIC cpu node per vCPU, indexes 0..vcpus"));
    }
    Ok(VgicState {
        version,
        ctlr,
        nr_lrs,
        spis,
        cpus: cpus.into_iter().map(|(_, c)| c).collect(),
    })
}

/// The per-interrupt properties of `count` interrupts (a multiple of 32).
fn read_irqs(n: &N<'_, '_>, count: usize) -> R<Vec<IrqState>> {
    let mut irqs = alloc::vec![IrqState::default(); count];
    type SetFlag = fn(&mut IrqState, bool);
    let flags: [(&str, SetFlag); 7] = [
        ("enabled", |i, b| i.enabled = b),
        ("pending", |i, b| i.pending = b),
        ("active", |i, b| i.active = b),
        ("level", |i, b| i.level = b),
        ("edge", |i, b| i.edge = b),
        ("group1", |i, b| i.group1 = b),
        ("in-lr", |i, b| i.in_lr = b),
    ];
    let bitmap_len = count.div_ceil(32) * 4;
    for (name, set) in flags {
        let v = n.exact(
            name,
            bitmap_len,
            "wrong length for a bitmap of this interrupt set",
        )?;
        for (i, irq) in irqs.iter_mut().enumerate() {
            let cell = be32(&v[(i / 32) * 4..(i / 32) * 4 + 4]);
            set(irq, cell >> (i % 32) & 1 != 0);
        }
    }
    let prio = n.exact("priority", count, "expected one byte per interrupt")?;
    let targets = n.exact("targets", count, "expected one byte per interrupt")?;
    let route = n.exact("route", count * 8, "expected one u64 per interrupt")?;
    for (i, irq) in irqs.iter_mut().enumerate() {
        irq.priority = prio[i];
        irq.targets = targets[i];
        irq.route = be64(&route[i * 8..i * 8 + 8]);
    }
    if let Some(hw) = n.n.prop("hw") {
        let cells = n.u32s(hw, "hw", 2 * count)?;
        if cells.len() % 2 != 0 {
            return Err(n.malformed("hw", "expected <index physical-intid> pairs"));
        }
        let mut prev: Option<u32> = None;
        for pair in cells.chunks_exact(2) {
            let (idx, phys) = (pair[0], pair[1]);
            if prev.is_some_and(|p| idx <= p) {
                return Err(n.malformed("hw", "indexes not strictly increasing"));
            }
            prev = Some(idx);
            let irq = irqs
                .get_mut(idx as usize)
                .ok_or_else(|| n.range("hw", "index outside the interrupt set"))?;
            irq.hw = Some(phys);
        }
    }
    Ok(irqs)
}

fn read_uart(n: &N<'_, '_>) -> R<Pl011State> {
    Ok(Pl011State {
        ilpr: n.u32("ilpr")?,
        ibrd: n.u32("ibrd")?,
        fbrd: n.u32("fbrd")?,
        lcr_h: n.u32("lcr-h")?,
        cr: n.u32("cr")?,
        ifls: n.u32("ifls")?,
        imsc: n.u32("imsc")?,
        dmacr: n.u32("dmacr")?,
        rx: n.bytes_opt("rx-fifo", FIFO_DEPTH)?.unwrap_or(&[]).to_vec(),
    })
}
