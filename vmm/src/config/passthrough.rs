//! Host devices given to a VM (`blink,passthrough`): each listed node must
//! be an enabled device that is not RAM, reserved, the hypervisor's console
//! or an interrupt controller, not already given to another VM, with page
//! aligned MMIO clear of the VM's own windows and only SPIs for interrupts.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::host::{checked_region, host_uart, interrupt_intids, GICV2_COMPAT, GICV3_COMPAT};
use super::vms::{parse_memory, Ctx};
use super::{Passthrough, Region};
use crate::dtb::{self, Dtb, Node};

/// `blink,passthrough`: a list of host device tree paths, each a device
/// (not RAM, not the hypervisor's console or GIC, not taken by another VM)
/// whose MMIO does not collide with the VM's emulated devices or RAM.
pub(super) fn parse_passthrough(
    dt: &Dtb<'_>,
    d: &Node<'_, '_>,
    ctx: &Ctx<'_>,
    taken: &[(String, String)],
) -> Result<Vec<Passthrough>, String> {
    let Some(v) = d.prop("blink,passthrough") else {
        return Ok(Vec::new());
    };
    let paths = dtb::str_list(v).ok_or("blink,passthrough: not a list of strings")?;
    let gic = dt
        .find_compatible(GICV3_COMPAT)
        .or_else(|| dt.find_compatible(GICV2_COMPAT))
        .ok_or("blink,passthrough: the host has no GIC")?;
    let console = host_uart(dt, &gic).ok().map(|u| u.path);
    let memory = parse_memory(d).unwrap_or(0);
    let mut out = Vec::new();
    for path in paths.filter(|p| !p.is_empty()) {
        let what = format!("blink,passthrough {path}");
        let node = dt
            .find(path)
            .ok_or_else(|| format!("{what}: no such node"))?;
        let path = node.path();
        if !node.is_enabled() {
            return Err(format!("{what}: device is disabled"));
        }
        if Some(&path) == console.as_ref() {
            return Err(format!("{what}: is the hypervisor's console"));
        }
        if node == gic || node.prop("interrupt-controller").is_some() {
            return Err(format!(
                "{what}: interrupt controllers cannot be passed through"
            ));
        }
        if let Some((owner, _)) = taken.iter().find(|(_, p)| *p == path) {
            return Err(format!("{what}: already passed through to {owner}"));
        }
        if out.iter().any(|p: &Passthrough| p.path == path) {
            return Err(format!("{what}: listed twice"));
        }
        let regs = node
            .reg_translated()
            .map_err(|e| format!("{what}: reg: {e}"))?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| format!("{what}: no reg"))?;
        let mut regions = Vec::new();
        for (base, size) in regs {
            if base & 0xfff != 0 {
                return Err(format!("{what}: region at {base:#x} is not page aligned"));
            }
            let r = checked_region(base, size.div_ceil(0x1000) * 0x1000, &path)
                .map_err(|e| e.reason)?;
            if ctx.ram.overlaps(r) {
                return Err(format!("{what}: {r} is RAM, not a device"));
            }
            if let Some(res) = ctx.limits.reserved.iter().find(|res| res.overlaps(&r)) {
                return Err(format!("{what}: {r} overlaps reserved region {res}"));
            }
            if let Some((name, w)) = guest_windows(memory)
                .into_iter()
                .find(|(_, w)| w.overlaps(&r))
            {
                return Err(format!("{what}: {r} collides with the VM's {name} at {w}"));
            }
            regions.push(r);
        }
        let intids = match node.prop("interrupts") {
            None => Vec::new(),
            Some(_) => interrupt_intids(&node, &gic)
                .ok_or_else(|| format!("{what}: interrupts malformed or not routed to the GIC"))?
                .into_iter()
                .map(|i| {
                    i.filter(|&i| i >= 32)
                        .ok_or_else(|| format!("{what}: only SPIs can be passed through"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if intids
            .iter()
            .any(|&i| i >= 32 + crate::vgic::NR_SPIS as u32)
        {
            return Err(format!(
                "{what}: SPI beyond the {} a VM's virtual GIC has",
                crate::vgic::NR_SPIS
            ));
        }
        out.push(Passthrough {
            name: node.name().to_string(),
            compatible: node.prop("compatible").unwrap_or(&[]).to_vec(),
            has_clocks: node.prop("clocks").is_some(),
            path,
            regions,
            intids,
        });
    }
    Ok(out)
}

/// The VM's own guest-physical windows (see `layout`): passed-through
/// devices, mapped at their host addresses, must stay clear of them.
fn guest_windows(memory: u64) -> [(&'static str, Region); 5] {
    use crate::layout::*;
    [
        ("GIC distributor", Region::new(GICD_BASE, GICD_SIZE)),
        ("GIC CPU interface", Region::new(GICC_BASE, GICC_SIZE)),
        (
            "GIC redistributors",
            Region::new(GICR_BASE, GICR_STRIDE * MAX_VCPUS as u64),
        ),
        ("console UART", Region::new(UART_BASE, UART_SIZE)),
        ("RAM", Region::new(RAM_BASE, memory.max(1))),
    ]
}
