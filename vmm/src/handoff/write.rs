//! The writer: [`Handoff`] -> header + device-tree body (schema in
//! `docs/handoff.md`).

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use crate::fdt_writer::{FdtWriteError, FdtWriter};

use super::header::wrap;
use super::vgic_state::implied_sgi_sources;
use super::{
    check_semantics, GicVersion, Handoff, HandoffError, IrqState, PassthroughState, PowerState,
    VcpuState, VgicState, VmState, MAJOR,
};

type W = FdtWriter;

fn fe(e: FdtWriteError) -> HandoffError {
    HandoffError::Encode(e.to_string())
}

/// Writes `h` as a block of format `MAJOR.minor`.
///
/// The minor only goes into the header, except that a minor of 1 or more
/// also writes the *probe* extension (`probe-1-1` properties and node,
/// see `docs/handoff.md`): content a minor-0 reader does not know, so a
/// version-bump build exercises the "ignore what you do not know" rule.
///
/// Refuses a state the reader would refuse whatever the host (bad names,
/// out-of-range values, overlapping VMs, inconsistent vGIC...).
pub fn encode(h: &Handoff, minor: u16) -> Result<Vec<u8>, HandoffError> {
    check_semantics(h)?;
    let body = body(h, minor).map_err(fe)?;
    wrap(&body, MAJOR, minor)
}

/// The body as [`encode`] writes it, without the checks (tests use it to
/// build blocks the reader must refuse).
#[cfg(test)]
pub(crate) fn body_for_tests(h: &Handoff, minor: u16) -> Vec<u8> {
    body(h, minor).expect("writable")
}

fn body(h: &Handoff, minor: u16) -> Result<Vec<u8>, FdtWriteError> {
    let probe = minor >= 1;
    let mut w = FdtWriter::new();
    let root = w.begin_node("")?;
    w.property_string("compatible", "blink,handoff")?;
    w.property_u64("generation", h.generation)?;
    w.property_u64("counter-frequency", h.counter_freq)?;
    if let Some(p) = h.prev_image {
        w.property_array_u64("prev-image", &[p.base, p.size])?;
    }
    if let Some(v) = &h.writer {
        w.property_string("writer", v)?;
    }
    if let Some(u) = &h.upload {
        w.property("upload-resume", &u.to_bytes())?;
    }
    if probe {
        w.property_u32("probe-1-1", u32::from(minor))?;
    }
    let ts = w.begin_node("timestamps")?;
    for (name, v) in &h.timestamps {
        w.property_u64(name, *v)?;
    }
    w.end_node(ts)?;
    for vm in &h.vms {
        write_vm(&mut w, vm, probe)?;
    }
    if probe {
        let n = w.begin_node("probe-1-1")?;
        w.property_string(
            "note",
            "written by a format 1.1 writer; 1.0 readers ignore this",
        )?;
        w.property_u32("minor", u32::from(minor))?;
        w.end_node(n)?;
    }
    w.end_node(root)?;
    w.finish()
}

fn write_vm(w: &mut W, vm: &VmState, probe: bool) -> Result<(), FdtWriteError> {
    let n = w.begin_node(&format!("vm@{:x}", vm.id))?;
    w.property_u32("id", vm.id)?;
    w.property_string("vm-name", &vm.name)?;
    w.property_array_u64("ram", &[vm.ram.base, vm.ram.size])?;
    w.property_u32("vcpus", vm.vcpus.len() as u32)?;
    w.property_u64("cntvoff", vm.cntvoff)?;
    if vm.stopped {
        w.property_null("stopped")?;
    }
    if !vm.console_pending.is_empty() {
        w.property("console-pending", &vm.console_pending)?;
    }
    if probe {
        w.property_u32("probe-1-1", 1)?;
    }
    for (i, pt) in vm.passthrough.iter().enumerate() {
        write_passthrough(w, i, pt)?;
    }
    for cpu in &vm.vcpus {
        write_vcpu(w, cpu, probe)?;
    }
    write_vgic(w, &vm.vgic)?;
    let u = &vm.uart;
    let un = w.begin_node("uart")?;
    for (name, v) in [
        ("ilpr", u.ilpr),
        ("ibrd", u.ibrd),
        ("fbrd", u.fbrd),
        ("lcr-h", u.lcr_h),
        ("cr", u.cr),
        ("ifls", u.ifls),
        ("imsc", u.imsc),
        ("dmacr", u.dmacr),
    ] {
        w.property_u32(name, v)?;
    }
    if !u.rx.is_empty() {
        w.property("rx-fifo", &u.rx)?;
    }
    w.end_node(un)?;
    w.end_node(n)
}

fn write_passthrough(w: &mut W, i: usize, pt: &PassthroughState) -> Result<(), FdtWriteError> {
    let n = w.begin_node(&format!("passthrough@{i:x}"))?;
    w.property_string("path", &pt.path)?;
    let regs: Vec<u64> = pt.regions.iter().flat_map(|r| [r.base, r.size]).collect();
    w.property_array_u64("regions", &regs)?;
    w.property_array_u32("intids", &pt.intids)?;
    w.end_node(n)
}

pub(crate) fn power_name(p: PowerState) -> &'static str {
    match p {
        PowerState::On => "on",
        PowerState::Off => "off",
        PowerState::OnPending => "on-pending",
    }
}

fn write_vcpu(w: &mut W, c: &VcpuState, probe: bool) -> Result<(), FdtWriteError> {
    let n = w.begin_node(&format!("cpu@{:x}", c.index))?;
    w.property_u32("index", c.index)?;
    w.property_string("power", power_name(c.power))?;
    if c.waiting {
        w.property_null("waiting")?;
    }
    w.property_u64("boot-entry", c.boot_entry)?;
    w.property_u64("boot-context", c.boot_context)?;
    w.property_array_u64("x", &c.x)?;
    w.property_u64("pc", c.pc)?;
    w.property_u64("pstate", c.pstate)?;
    if probe {
        w.property_u64("probe-1-1", 0x11)?;
    }
    let s = w.begin_node("sysregs")?;
    for (name, v) in &c.sysregs {
        w.property_u64(name, *v)?;
    }
    w.end_node(s)?;
    let f = w.begin_node("fp")?;
    let q: Vec<u8> = c.fp.q.iter().flat_map(|q| q.to_be_bytes()).collect();
    w.property("q", &q)?;
    w.property_u64("fpcr", c.fp.fpcr)?;
    w.property_u64("fpsr", c.fp.fpsr)?;
    w.end_node(f)?;
    let v = w.begin_node("vif")?;
    w.property_u64("vmcr", c.vif.vmcr)?;
    w.property_array_u32("apr", &c.vif.apr)?;
    w.property_array_u64("lrs", &c.vif.lrs)?;
    w.end_node(v)?;
    w.end_node(n)
}

/// One bit per interrupt, 32 to a cell: bit `i % 32` of cell `i / 32`.
pub(crate) fn bitmap(irqs: &[IrqState], f: impl Fn(&IrqState) -> bool) -> Vec<u32> {
    let mut cells = alloc::vec![0u32; irqs.len().div_ceil(32)];
    for (i, irq) in irqs.iter().enumerate() {
        if f(irq) {
            cells[i / 32] |= 1 << (i % 32);
        }
    }
    cells
}

/// The per-interrupt properties of a set of interrupts (`spis` node or a
/// vGIC `cpu@` node).
fn write_irqs(w: &mut W, irqs: &[IrqState]) -> Result<(), FdtWriteError> {
    w.property_array_u32("enabled", &bitmap(irqs, |i| i.enabled))?;
    w.property_array_u32("pending", &bitmap(irqs, |i| i.pending))?;
    w.property_array_u32("active", &bitmap(irqs, |i| i.active))?;
    w.property_array_u32("level", &bitmap(irqs, |i| i.level))?;
    w.property_array_u32("edge", &bitmap(irqs, |i| i.edge))?;
    w.property_array_u32("group1", &bitmap(irqs, |i| i.group1))?;
    w.property_array_u32("in-lr", &bitmap(irqs, |i| i.in_lr))?;
    let prio: Vec<u8> = irqs.iter().map(|i| i.priority).collect();
    w.property("priority", &prio)?;
    let targets: Vec<u8> = irqs.iter().map(|i| i.targets).collect();
    w.property("targets", &targets)?;
    let route: Vec<u64> = irqs.iter().map(|i| i.route).collect();
    w.property_array_u64("route", &route)?;
    let hw: Vec<u32> = irqs
        .iter()
        .enumerate()
        .filter_map(|(n, i)| i.hw.map(|p| [n as u32, p]))
        .flatten()
        .collect();
    if !hw.is_empty() {
        w.property_array_u32("hw", &hw)?;
    }
    Ok(())
}

fn write_vgic(w: &mut W, g: &VgicState) -> Result<(), FdtWriteError> {
    let n = w.begin_node("vgic")?;
    w.property_u32(
        "version",
        match g.version {
            GicVersion::V2 => 2,
            GicVersion::V3 => 3,
        },
    )?;
    w.property_u32("ctlr", g.ctlr)?;
    w.property_u32("nr-lrs", g.nr_lrs)?;
    w.property_u32("nr-spis", g.spis.len() as u32)?;
    let s = w.begin_node("spis")?;
    write_irqs(w, &g.spis)?;
    w.end_node(s)?;
    for (i, c) in g.cpus.iter().enumerate() {
        let cn = w.begin_node(&format!("cpu@{i:x}"))?;
        w.property_u32("index", i as u32)?;
        if c.sleeping {
            w.property_null("sleeping")?;
        }
        let lrs: Vec<u32> = c.lrs.iter().map(|l| l.unwrap_or(u32::MAX)).collect();
        w.property_array_u32("lrs", &lrs)?;
        // Only when it says more than its absence would (see
        // `implied_sgi_sources`): blocks without per-source state stay as
        // they were.
        if c.sgi_sources != implied_sgi_sources(g.version, &c.private) {
            w.property("sgi-sources", &c.sgi_sources)?;
        }
        write_irqs(w, &c.private)?;
        w.end_node(cn)?;
    }
    w.end_node(n)
}
