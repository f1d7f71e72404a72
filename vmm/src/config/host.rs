//! The machine: [`host_info`] reads what the host device tree says about
//! RAM, CPUs (and their spin-table release addresses), PSCI, the GIC, the
//! console UART, the architected timer, reserved memory (`/reserved-memory`
//! and `/memreserve/`) and the options under `/chosen`. Only what the
//! hypervisor itself cannot run without is fatal ([`DtError`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    DtError, GicRegs, HostCpu, HostGic, HostInfo, HostUart, PsciMethod, Region, TimerIrqs,
    MIN_REJUVENATE_INTERVAL_MS,
};
use crate::dtb::{self, str_list, Dtb, Node};

pub(super) const GICV3_COMPAT: &[&str] = &["arm,gic-v3"];
pub(super) const GICV2_COMPAT: &[&str] =
    &["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a7-gic"];

/// Extracts the machine description from the host tree.
pub fn host_info(dtb: &[u8]) -> Result<HostInfo, DtError> {
    let dt = Dtb::parse(dtb)?;
    let root = dt.root();
    let (rac, rsc) = root
        .child_cells(2, 1)
        .ok_or(DtError::new("root #address-cells/#size-cells malformed"))?;

    let compatible = root
        .prop("compatible")
        .and_then(str_list)
        .map(|l| l.map(String::from).collect())
        .unwrap_or_default();
    let ram = host_ram(&dt, rac, rsc)?;
    let cpus = host_cpus(&dt)?;
    let psci = dt
        .find("/psci")
        .filter(|n| n.is_enabled())
        .or_else(|| dt.find_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]))
        .and_then(|n| match n.prop_str("method") {
            Some("smc") => Some(PsciMethod::Smc),
            Some("hvc") => Some(PsciMethod::Hvc),
            _ => None,
        });
    let (gic, gic_node) = host_gic(&dt)?;
    let uart = host_uart(&dt, &gic_node)?;
    let timer = dt
        .find_compatible(&["arm,armv8-timer", "arm,armv7-timer"])
        .and_then(|t| {
            let ids = interrupt_intids(&t, &gic_node)?;
            match ids[..] {
                [Some(secure_phys), Some(phys), Some(virt), Some(hyp_phys), ..] => {
                    Some(TimerIrqs {
                        secure_phys,
                        phys,
                        virt,
                        hyp_phys,
                    })
                }
                _ => None,
            }
        });
    let reserved = host_reserved(&dt, rac, rsc)?;
    let mut ignored = Vec::new();
    let rejuvenate_interval_ms = match dt
        .find("/chosen")
        .and_then(|c| c.prop("blink,rejuvenate-interval-ms"))
    {
        None => None,
        Some(v) => match cell_u32_exact(v) {
            Some(ms) if ms >= MIN_REJUVENATE_INTERVAL_MS => Some(ms),
            _ => {
                ignored.push(format!(
                    "/chosen/blink,rejuvenate-interval-ms: expected one u32 of at least {MIN_REJUVENATE_INTERVAL_MS} (ms); periodic reload off"
                ));
                None
            }
        },
    };
    Ok(HostInfo {
        compatible,
        ram,
        cpus,
        psci,
        gic,
        uart,
        timer,
        reserved,
        rejuvenate_interval_ms,
        ignored,
    })
}

fn cell_u32_exact(v: &[u8]) -> Option<u32> {
    let b: [u8; 4] = v.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

pub(super) fn checked_region(base: u64, size: u64, what: &str) -> Result<Region, DtError> {
    let r = Region::new(base, size);
    match r.end() {
        Some(_) => Ok(r),
        None => Err(DtError::new(format!(
            "{what}: reg {base:#x}+{size:#x} wraps"
        ))),
    }
}

fn host_ram(dt: &Dtb<'_>, rac: u32, rsc: u32) -> Result<Vec<Region>, DtError> {
    let mut ram = Vec::new();
    let is_memory =
        |n: &Node<'_, '_>| n.base_name() == "memory" || n.prop_str("device_type") == Some("memory");
    for n in dt
        .root()
        .children()
        .filter(|n| is_memory(n) && n.is_enabled())
    {
        let Some(v) = n.prop("reg") else { continue };
        let entries = dtb::decode_reg(v, rac, rsc)
            .map_err(|e| DtError::new(format!("{}: reg: {e}", n.path())))?;
        for (base, size) in entries.into_iter().filter(|&(_, s)| s != 0) {
            ram.push(checked_region(base, size, &n.path())?);
        }
    }
    if ram.is_empty() {
        return Err(DtError::new(
            "no memory: no /memory node with a non-empty reg",
        ));
    }
    ram.sort();
    Ok(ram)
}

fn host_cpus(dt: &Dtb<'_>) -> Result<Vec<HostCpu>, DtError> {
    let cpus_node = dt.find("/cpus").ok_or(DtError::new("no /cpus node"))?;
    let (ac, sc) = cpus_node
        .child_cells(1, 0)
        .ok_or(DtError::new("/cpus: malformed #address-cells/#size-cells"))?;
    let mut cpus = Vec::new();
    for c in cpus_node
        .children()
        .filter(|c| c.prop_str("device_type") == Some("cpu"))
    {
        let bad = |what: &str| DtError::new(format!("{}: {what}", c.path()));
        let v = c.prop("reg").ok_or_else(|| bad("no reg"))?;
        let entries = dtb::decode_reg(v, ac, sc).map_err(bad)?;
        let &(mpidr, _) = entries.first().ok_or_else(|| bad("empty reg"))?;
        let release_addr = if c.prop_str("enable-method") == Some("spin-table") {
            c.prop("cpu-release-addr").and_then(|v| match v.len() {
                4 | 8 => dtb::read_cells(v, (v.len() / 4) as u32),
                _ => None,
            })
        } else {
            None
        };
        cpus.push(HostCpu {
            mpidr,
            release_addr,
        });
    }
    if cpus.is_empty() {
        return Err(DtError::new(
            "no CPUs: no /cpus child with device_type = \"cpu\"",
        ));
    }
    Ok(cpus)
}

fn host_gic<'d, 'a>(dt: &'d Dtb<'a>) -> Result<(HostGic, Node<'d, 'a>), DtError> {
    let (node, v3) =
        match dt.find_compatible(GICV3_COMPAT) {
            Some(n) => (n, true),
            None => match dt.find_compatible(GICV2_COMPAT) {
                Some(n) => (n, false),
                None => return Err(DtError::new(
                    "no GIC: no node compatible with arm,gic-v3, arm,gic-400 or arm,cortex-a15-gic",
                )),
            },
        };
    let path = node.path();
    let reg = node
        .reg_translated()
        .map_err(|e| DtError::new(format!("GIC {path}: reg: {e}")))?
        .ok_or_else(|| DtError::new(format!("GIC {path}: no reg")))?;
    let mut regions = Vec::with_capacity(reg.len());
    for (b, s) in reg {
        regions.push(checked_region(b, s, &path)?);
    }
    let regs = match (v3, &regions[..]) {
        (true, [_, gicr, ..]) => GicRegs::V3 { gicr: *gicr },
        (false, [_, gicc, gich, gicv, ..]) => GicRegs::V2 {
            gicc: *gicc,
            gich: *gich,
            gicv: *gicv,
        },
        (true, _) => {
            return Err(DtError::new(format!(
                "GICv3 {path}: reg needs GICD and GICR"
            )))
        }
        (false, _) => {
            return Err(DtError::new(format!(
                "GICv2 {path}: reg needs GICD, GICC, GICH and GICV (no virtualization extensions?)"
            )))
        }
    };
    let gic = HostGic {
        gicd: regions[0],
        regs,
        maintenance_intid: interrupt_intids(&node, &node)
            .and_then(|ids| ids.first().copied().flatten()),
    };
    Ok((gic, node))
}

/// Decodes a node's `interrupts` as GIC specifiers (`<type number flags>`)
/// into INTIDs, one entry per specifier (`None` for one that is not an SPI
/// or PPI). `None` when the node has no usable `interrupts` or they go to
/// another interrupt controller than `gic`.
pub(super) fn interrupt_intids(
    node: &Node<'_, '_>,
    gic: &Node<'_, '_>,
) -> Option<Vec<Option<u32>>> {
    // The GIC's own `interrupts` (maintenance) are routed to itself.
    if node != gic {
        if let Some(parent) = node.interrupt_parent() {
            if parent != *gic {
                return None;
            }
        }
    }
    let icells = gic.prop_u32("#interrupt-cells").unwrap_or(3) as usize;
    if icells < 3 {
        return None;
    }
    let cells: Vec<u32> = dtb::cells(node.prop("interrupts")?)?.collect();
    if cells.is_empty() || !cells.len().is_multiple_of(icells) {
        return None;
    }
    Some(
        cells
            .chunks_exact(icells)
            .map(|spec| match (spec[0], spec[1]) {
                (0, n) if n < 988 => Some(32 + n),
                (1, n) if n < 16 => Some(16 + n),
                _ => None,
            })
            .collect(),
    )
}

pub(super) fn host_uart(dt: &Dtb<'_>, gic: &Node<'_, '_>) -> Result<HostUart, DtError> {
    let usable = |n: &Node<'_, '_>| n.is_compatible("arm,pl011") && n.is_enabled();
    let chosen = dt.find("/chosen");
    let from_stdout = chosen
        .and_then(|c| {
            c.prop_str("stdout-path")
                .or_else(|| c.prop_str("linux,stdout-path"))
        })
        .and_then(|p| dt.find(p))
        .filter(usable);
    let node = from_stdout.or_else(|| dt.find_compatible(&["arm,pl011"])).ok_or(DtError::new(
        "no UART: /chosen/stdout-path does not name an enabled arm,pl011 and there is none in the tree",
    ))?;
    uart_of(&node, gic)
}

/// The enabled PL011 whose first `reg` entry starts at `base` (the UART a
/// board file names for the maintenance link), with its interrupt.
/// `Ok(None)` when the tree has no such node (QEMU `virt` has a second
/// PL011 only with a second `-serial`).
pub fn uart_at(dtb: &[u8], base: u64) -> Result<Option<HostUart>, DtError> {
    let dt = Dtb::parse(dtb)?;
    let (_, gic) = host_gic(&dt)?;
    let found = dt.nodes().find(|n| {
        n.is_compatible("arm,pl011")
            && n.is_enabled()
            && matches!(n.reg_translated(), Ok(Some(r)) if r.first().map(|e| e.0) == Some(base))
    });
    found.map(|n| uart_of(&n, &gic)).transpose()
}

fn uart_of(node: &Node<'_, '_>, gic: &Node<'_, '_>) -> Result<HostUart, DtError> {
    let path = node.path();
    let reg = node
        .reg_translated()
        .map_err(|e| DtError::new(format!("UART {path}: reg: {e}")))?
        .ok_or_else(|| DtError::new(format!("UART {path}: no reg")))?;
    let &(base, size) = reg
        .first()
        .ok_or_else(|| DtError::new(format!("UART {path}: empty reg")))?;
    checked_region(base, size, &path)?;
    let spi = interrupt_intids(node, gic)
        .and_then(|ids| ids.first().copied().flatten())
        .and_then(|intid| intid.checked_sub(32));
    Ok(HostUart {
        base,
        size,
        spi,
        path,
    })
}

fn host_reserved(dt: &Dtb<'_>, rac: u32, rsc: u32) -> Result<Vec<Region>, DtError> {
    let mut out = Vec::new();
    for &(base, size) in dt.mem_reserve() {
        out.push(checked_region(base, size, "/memreserve/")?);
    }
    if let Some(rm) = dt.find("/reserved-memory") {
        let (ac, sc) = rm.child_cells(rac, rsc).ok_or(DtError::new(
            "/reserved-memory: malformed #address-cells/#size-cells",
        ))?;
        for c in rm.children().filter(|c| c.is_enabled()) {
            // Children with only `size` are allocated dynamically by the
            // OS and do not exist yet: nothing to avoid.
            let Some(v) = c.prop("reg") else { continue };
            let path = c.path();
            let entries = dtb::decode_reg(v, ac, sc)
                .map_err(|e| DtError::new(format!("{path}: reg: {e}")))?;
            for (base, size) in entries.into_iter().filter(|&(_, s)| s != 0) {
                out.push(checked_region(base, size, &path)?);
            }
        }
    }
    out.sort();
    Ok(out)
}
