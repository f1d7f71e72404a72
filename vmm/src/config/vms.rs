//! The VMs to run: [`parse_vms`] reads the dom0less domain nodes under
//! `/chosen` (memory, vCPUs, kernel and ramdisk modules, bootargs, static
//! memory) and checks each against the [`Limits`] and the other VMs; a VM
//! with a problem is refused with a [`ConfigError`], the rest are kept.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::passthrough::parse_passthrough;
use super::{ConfigError, DtError, Limits, Module, ParsedVms, Region, VmConfig, VM_MEM_ALIGN};
use crate::dtb::{self, Dtb, Node};
use crate::memory::RegionSet;

/// Parses the dom0less VM descriptions under `/chosen`. A tree without
/// `/chosen` simply has no VMs.
pub fn parse_vms(dtb: &[u8], limits: &Limits) -> Result<ParsedVms, DtError> {
    let dt = Dtb::parse(dtb)?;
    let mut out = ParsedVms::default();
    let Some(chosen) = dt.find("/chosen") else {
        return Ok(out);
    };

    // A region that wraps cannot be RAM, so it is simply left out.
    let mut ram = RegionSet::new();
    for r in &limits.ram {
        let _ = ram.insert(*r);
    }
    let domains: Vec<Node<'_, '_>> = chosen
        .children()
        .filter(|n| n.is_compatible("xen,domain"))
        .collect();

    // Static memory must not cover any boot module, including other VMs':
    // the hypervisor copies kernels out of the modules only when it creates
    // each VM, so an earlier VM's RAM must not clobber a later VM's image.
    let mut all_modules: Vec<(String, Region)> = Vec::new();
    for d in &domains {
        let cells = domain_cells(d).ok();
        for m in d.children().filter(is_module) {
            if let Some(r) = cells.and_then(|(ac, sc)| module_reg(&m, ac, sc).ok()) {
                all_modules.push((m.path(), r));
            }
        }
    }

    let ctx = Ctx {
        limits,
        ram: &ram,
        all_modules: &all_modules,
    };
    let mut static_taken: Vec<(String, Region)> = Vec::new();
    let mut devices_taken: Vec<(String, String)> = Vec::new();
    for d in &domains {
        let path = d.path();
        let result = parse_domain(d, &ctx, &static_taken)
            .and_then(|mut vm| {
                vm.passthrough = parse_passthrough(&dt, d, &ctx, &devices_taken)?;
                Ok(vm)
            })
            .and_then(|vm| {
                // Checked last so that a broken description reports its own
                // problem rather than the lack of a slot.
                if out.vms.len() >= limits.max_vms {
                    Err(format!(
                        "too many VMs: at most {} supported",
                        limits.max_vms
                    ))
                } else {
                    Ok(vm)
                }
            });
        match result {
            Ok(vm) => {
                if let Some(r) = vm.static_mem {
                    static_taken.push((vm.name.clone(), r));
                }
                for p in &vm.passthrough {
                    devices_taken.push((vm.name.clone(), p.path.clone()));
                }
                out.vms.push(vm);
            }
            Err(problem) => out.errors.push(ConfigError { path, problem }),
        }
    }
    Ok(out)
}

pub(super) struct Ctx<'l> {
    pub(super) limits: &'l Limits,
    pub(super) ram: &'l RegionSet,
    pub(super) all_modules: &'l [(String, Region)],
}

fn is_module(n: &Node<'_, '_>) -> bool {
    n.is_compatible("multiboot,kernel") || n.is_compatible("multiboot,ramdisk")
}

/// The domain node's `#address-cells`/`#size-cells` for its module `reg`s.
/// Absent means 2/2 (what the dom0less examples use).
fn domain_cells(d: &Node<'_, '_>) -> Result<(u32, u32), String> {
    let (ac, sc) = d
        .child_cells(2, 2)
        .ok_or("malformed #address-cells/#size-cells")?;
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) {
        return Err(format!(
            "#address-cells/#size-cells must be 1 or 2 (got {ac}/{sc})"
        ));
    }
    Ok((ac, sc))
}

/// A module's single `reg` entry, well-formed but not checked against RAM.
fn module_reg(m: &Node<'_, '_>, ac: u32, sc: u32) -> Result<Region, String> {
    let name = m.name();
    let v = m
        .prop("reg")
        .ok_or_else(|| format!("{name}: no reg property"))?;
    let entries = dtb::decode_reg(v, ac, sc).map_err(|e| format!("{name}: reg malformed: {e}"))?;
    let [(base, size)] = entries[..] else {
        return Err(format!(
            "{name}: reg must be exactly one (address, size) pair of {ac}+{sc} cells, got {} bytes",
            v.len()
        ));
    };
    if size == 0 {
        return Err(format!("{name}: reg size is 0"));
    }
    let r = Region::new(base, size);
    if r.end().is_none() {
        return Err(format!(
            "{name}: reg {base:#x}+{size:#x} wraps past the end of the address space"
        ));
    }
    Ok(r)
}

/// Checks that `r` is RAM the hypervisor may hand out.
fn check_placement(what: &str, r: Region, ctx: &Ctx<'_>) -> Result<(), String> {
    if !ctx.ram.contains(r) {
        return Err(format!("{what} {r} is outside RAM"));
    }
    if let Some(res) = ctx.limits.reserved.iter().find(|res| res.overlaps(&r)) {
        return Err(format!("{what} {r} overlaps reserved region {res}"));
    }
    Ok(())
}

fn parse_domain(
    d: &Node<'_, '_>,
    ctx: &Ctx<'_>,
    static_taken: &[(String, Region)],
) -> Result<VmConfig, String> {
    let (ac, sc) = domain_cells(d)?;
    let memory = parse_memory(d)?;
    let vcpus = parse_cpus(d, ctx.limits.max_vcpus)?;

    let mut kernel: Option<(&str, Module, Node<'_, '_>)> = None;
    let mut ramdisk: Option<(&str, Module)> = None;
    for m in d.children().filter(is_module) {
        let r = module_reg(&m, ac, sc)?;
        check_placement(&format!("{}:", m.name()), r, ctx)?;
        let module = Module {
            base: r.base,
            size: r.size,
        };
        if m.is_compatible("multiboot,kernel") {
            if let Some((first, _, _)) = kernel {
                return Err(format!(
                    "two multiboot,kernel modules ({first} and {})",
                    m.name()
                ));
            }
            kernel = Some((m.name(), module, m));
        } else {
            if let Some((first, _)) = ramdisk {
                return Err(format!(
                    "two multiboot,ramdisk modules ({first} and {})",
                    m.name()
                ));
            }
            ramdisk = Some((m.name(), module));
        }
    }
    let Some((_, kernel, kernel_node)) = kernel else {
        return Err("no multiboot,kernel module".into());
    };
    if let Some((_, rd)) = ramdisk {
        if rd.region().overlaps(&kernel.region()) {
            return Err(format!(
                "kernel {} and ramdisk {} overlap",
                kernel.region(),
                rd.region()
            ));
        }
    }

    // Xen reads the command line from the kernel module; accept it on the
    // domain node too.
    let bootargs = match kernel_node.prop("bootargs").or_else(|| d.prop("bootargs")) {
        None => None,
        Some(v) => {
            let text = v.split(|&b| b == 0).next().unwrap_or(v);
            Some(
                core::str::from_utf8(text)
                    .map_err(|_| "bootargs is not valid UTF-8".to_string())?
                    .to_string(),
            )
        }
    };

    let static_mem = parse_static_mem(d, memory, ctx, static_taken)?;

    Ok(VmConfig {
        name: d.name().to_string(),
        path: d.path(),
        memory,
        vcpus,
        kernel,
        ramdisk: ramdisk.map(|(_, m)| m),
        bootargs,
        static_mem,
        passthrough: Vec::new(),
    })
}

/// `memory`: KiB as a 64-bit value (two cells); one cell is tolerated.
pub(super) fn parse_memory(d: &Node<'_, '_>) -> Result<u64, String> {
    let v = d.prop("memory").ok_or("no memory property")?;
    let kib = match v.len() {
        4 | 8 => dtb::read_cells(v, (v.len() / 4) as u32).ok_or("memory malformed")?,
        n => {
            return Err(format!(
                "memory must be a 64-bit KiB count (2 cells), got {n} bytes"
            ))
        }
    };
    if kib == 0 {
        return Err("memory is 0".into());
    }
    let bytes = kib
        .checked_mul(1024)
        .ok_or_else(|| format!("memory {kib} KiB is too large"))?;
    if bytes % VM_MEM_ALIGN != 0 {
        return Err(format!(
            "memory {kib} KiB is not a multiple of 2 MiB (2048 KiB)"
        ));
    }
    Ok(bytes)
}

fn parse_cpus(d: &Node<'_, '_>, max: usize) -> Result<usize, String> {
    let Some(v) = d.prop("cpus") else {
        return Ok(1);
    };
    let n = dtb::cell_u32(v).ok_or("cpus must be one 32-bit cell")? as usize;
    if n == 0 {
        return Err("cpus is 0".into());
    }
    if n > max {
        return Err(format!("cpus = {n} exceeds the maximum of {max} vCPUs"));
    }
    Ok(n)
}

fn parse_static_mem(
    d: &Node<'_, '_>,
    memory: u64,
    ctx: &Ctx<'_>,
    static_taken: &[(String, Region)],
) -> Result<Option<Region>, String> {
    let Some(v) = d.prop("xen,static-mem") else {
        return Ok(None);
    };
    // Xen lets these be declared; only the 2+2 layout is supported.
    for p in [
        "#xen,static-mem-address-cells",
        "#xen,static-mem-size-cells",
    ] {
        if let Some(c) = d.prop(p) {
            if dtb::cell_u32(c) != Some(2) {
                return Err(format!("{p} must be 2"));
            }
        }
    }
    let entries = dtb::decode_reg(v, 2, 2).map_err(|e| format!("xen,static-mem malformed: {e}"))?;
    let [(base, size)] = entries[..] else {
        return Err(format!(
            "xen,static-mem must be exactly one (address, size) pair of 2+2 cells, got {} bytes",
            v.len()
        ));
    };
    let r = Region::new(base, size);
    if size == 0 || r.end().is_none() {
        return Err(format!(
            "xen,static-mem {base:#x}+{size:#x} is empty or wraps"
        ));
    }
    if !r.is_aligned(VM_MEM_ALIGN) {
        return Err(format!("xen,static-mem {r} is not 2 MiB aligned"));
    }
    if size != memory {
        return Err(format!(
            "memory ({} KiB) differs from the xen,static-mem size ({} KiB)",
            memory / 1024,
            size / 1024
        ));
    }
    check_placement("xen,static-mem", r, ctx)?;
    if let Some((m, mr)) = ctx.all_modules.iter().find(|(_, mr)| mr.overlaps(&r)) {
        return Err(format!("xen,static-mem {r} overlaps module {m} ({mr})"));
    }
    if let Some((vm, other)) = static_taken.iter().find(|(_, o)| o.overlaps(&r)) {
        return Err(format!(
            "xen,static-mem {r} overlaps the static memory of VM '{vm}' ({other})"
        ));
    }
    Ok(Some(r))
}
