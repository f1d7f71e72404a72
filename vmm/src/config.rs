//! What the hypervisor learns from the host device tree: the machine
//! ([`host_info`]) and the VMs to run ([`parse_vms`]).
//!
//! VMs are described with Xen's dom0less bindings (nodes under `/chosen`
//! with `compatible = "xen,domain"`, see the shared contract), so existing
//! tooling and documentation apply. A VM whose description is wrong is
//! refused with one [`ConfigError`] naming its node and the first problem
//! found; the others are still created. Only a tree that cannot be read at
//! all, or lacks what the hypervisor itself needs (RAM, GIC, UART), is a
//! fatal [`DtError`].
//!
//! Nothing here panics on bad input: all arithmetic is checked and the tree
//! is read through the validating [`crate::dtb`] reader.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::dtb::{self, Dtb, DtbError, Node};
pub use crate::guest_fdt::GicVersion;
pub use crate::memory::Region;
use crate::memory::RegionSet;

/// VM memory and static memory must be multiples of this: guest RAM is
/// mapped with 2 MiB stage-2 blocks and the Linux image must sit at a 2 MiB
/// aligned address.
pub const VM_MEM_ALIGN: u64 = 2 << 20;

/// The host tree cannot be used: unreadable, or missing something the
/// hypervisor itself needs. Printed as `[hv] FATAL: device tree: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtError {
    pub reason: String,
}

impl DtError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<DtbError> for DtError {
    fn from(e: DtbError) -> Self {
        Self::new(format!("malformed blob: {e}"))
    }
}

/// A boot module (kernel image or ramdisk) in host physical memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub base: u64,
    pub size: u64,
}

impl Module {
    pub fn region(&self) -> Region {
        Region::new(self.base, self.size)
    }
}

/// One VM as described under `/chosen`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Node name (`domU0`): the VM's name in console tags.
    pub name: String,
    /// Node path (`/chosen/domU0`), for messages.
    pub path: String,
    /// RAM size in bytes (a non-zero multiple of 2 MiB).
    pub memory: u64,
    /// Number of vCPUs (1..=max_vcpus).
    pub vcpus: usize,
    pub kernel: Module,
    pub ramdisk: Option<Module>,
    pub bootargs: Option<String>,
    /// `xen,static-mem`: host memory the VM's RAM must occupy (2 MiB
    /// aligned, `size == memory`). `None` lets the hypervisor allocate.
    pub static_mem: Option<Region>,
    /// Host devices given to this VM (`blink,passthrough`).
    pub passthrough: Vec<Passthrough>,
}

/// A host device assigned to one VM: its MMIO regions are mapped into the
/// VM at the same addresses, its SPIs are delivered to the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passthrough {
    /// Host device tree path (`/pl011@9040000`).
    pub path: String,
    /// Node name, reused in the guest's device tree.
    pub name: String,
    /// `compatible` as raw bytes (NUL-separated strings).
    pub compatible: Vec<u8>,
    /// MMIO regions, page aligned (sizes rounded up to whole pages).
    pub regions: Vec<Region>,
    /// INTIDs of its SPIs.
    pub intids: Vec<u32>,
    /// The node has `clocks` (the guest gets its fixed clock instead).
    pub has_clocks: bool,
}

/// Why one VM was refused. Displayed as `"{path}: {problem}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// What the VM descriptions are checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_vcpus: usize,
    pub max_vms: usize,
    /// Memory no module or static memory may touch (the hypervisor, the
    /// DTB, reserved-memory...).
    pub reserved: Vec<Region>,
    /// Host RAM: modules and static memory must lie inside it.
    pub ram: Vec<Region>,
}

/// Result of [`parse_vms`]: the accepted VMs (in tree order) and one error
/// per refused VM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedVms {
    pub vms: Vec<VmConfig>,
    pub errors: Vec<ConfigError>,
}

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

struct Ctx<'l> {
    limits: &'l Limits,
    ram: &'l RegionSet,
    all_modules: &'l [(String, Region)],
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

/// `blink,passthrough`: a list of host device tree paths, each a device
/// (not RAM, not the hypervisor's console or GIC, not taken by another VM)
/// whose MMIO does not collide with the VM's emulated devices or RAM.
fn parse_passthrough(
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
        let node = dt.find(path).ok_or_else(|| format!("{what}: no such node"))?;
        let path = node.path();
        if !node.is_enabled() {
            return Err(format!("{what}: device is disabled"));
        }
        if Some(&path) == console.as_ref() {
            return Err(format!("{what}: is the hypervisor's console"));
        }
        if node == gic || node.prop("interrupt-controller").is_some() {
            return Err(format!("{what}: interrupt controllers cannot be passed through"));
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
            let r = checked_region(base, size.div_ceil(0x1000) * 0x1000, &path).map_err(|e| e.reason)?;
            if ctx.ram.overlaps(r) {
                return Err(format!("{what}: {r} is RAM, not a device"));
            }
            if let Some(res) = ctx.limits.reserved.iter().find(|res| res.overlaps(&r)) {
                return Err(format!("{what}: {r} overlaps reserved region {res}"));
            }
            if let Some((name, w)) = guest_windows(memory).into_iter().find(|(_, w)| w.overlaps(&r)) {
                return Err(format!("{what}: {r} collides with the VM's {name} at {w}"));
            }
            regions.push(r);
        }
        let intids = match node.prop("interrupts") {
            None => Vec::new(),
            Some(_) => interrupt_intids(&node, &gic)
                .ok_or_else(|| format!("{what}: interrupts malformed or not routed to the GIC"))?
                .into_iter()
                .map(|i| i.filter(|&i| i >= 32).ok_or_else(|| format!("{what}: only SPIs can be passed through")))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if intids.iter().any(|&i| i >= 32 + crate::vgic::NR_SPIS as u32) {
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
        ("GIC redistributors", Region::new(GICR_BASE, GICR_STRIDE * MAX_VCPUS as u64)),
        ("console UART", Region::new(UART_BASE, UART_SIZE)),
        ("RAM", Region::new(RAM_BASE, memory.max(1))),
    ]
}

/// `memory`: KiB as a 64-bit value (two cells); one cell is tolerated.
fn parse_memory(d: &Node<'_, '_>) -> Result<u64, String> {
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

// ---------------------------------------------------------------------------
// The host machine

/// How the firmware's PSCI is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciMethod {
    Smc,
    Hvc,
}

/// One physical CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCpu {
    /// The `reg` value: MPIDR affinity fields (Aff3 in bits 39:32).
    pub mpidr: u64,
    /// `cpu-release-addr` when `enable-method = "spin-table"` (Raspberry Pi).
    pub release_addr: Option<u64>,
}

/// GIC registers (host physical addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicRegs {
    /// `reg` entries 0..3.
    V2 {
        gicc: Region,
        gich: Region,
        gicv: Region,
    },
    /// The first redistributor region.
    V3 { gicr: Region },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostGic {
    pub gicd: Region,
    pub regs: GicRegs,
    /// INTID of the virtualization maintenance interrupt (a PPI, usually 25).
    pub maintenance_intid: Option<u32>,
}

impl HostGic {
    pub fn version(&self) -> GicVersion {
        match self.regs {
            GicRegs::V2 { .. } => GicVersion::V2,
            GicRegs::V3 { .. } => GicVersion::V3,
        }
    }
}

/// The console PL011.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUart {
    pub base: u64,
    pub size: u64,
    /// SPI number (INTID = 32 + spi); `None` when it has no GIC interrupt
    /// (the hypervisor then polls).
    pub spi: Option<u32>,
    /// Node path, for messages.
    pub path: String,
}

impl HostUart {
    pub fn intid(&self) -> Option<u32> {
        self.spi.map(|s| s + 32)
    }
}

/// Architected timer interrupts, as INTIDs (PPI n = INTID 16 + n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerIrqs {
    pub secure_phys: u32,
    pub phys: u32,
    pub virt: u32,
    pub hyp_phys: u32,
}

/// What the hypervisor needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// RAM banks, sorted by base, non-empty.
    pub ram: Vec<Region>,
    /// CPUs in tree order (the count is `cpus.len()`, at least 1).
    pub cpus: Vec<HostCpu>,
    pub psci: Option<PsciMethod>,
    pub gic: HostGic,
    pub uart: HostUart,
    pub timer: Option<TimerIrqs>,
    /// `/reserved-memory` children and `/memreserve/` entries.
    pub reserved: Vec<Region>,
    /// `/chosen/blink,rejuvenate-interval-ms`: reload the hypervisor this
    /// often (soak testing, scheduled rejuvenation).
    pub rejuvenate_interval_ms: Option<u32>,
    /// Settings that were present but unusable, and therefore ignored (the
    /// hypervisor reports them; they do not stop it from booting).
    pub ignored: Vec<String>,
}

/// Shortest accepted `blink,rejuvenate-interval-ms`: below this the
/// machine would spend a noticeable share of its time reloading.
pub const MIN_REJUVENATE_INTERVAL_MS: u32 = 500;

const GICV3_COMPAT: &[&str] = &["arm,gic-v3"];
const GICV2_COMPAT: &[&str] = &["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a7-gic"];

/// Extracts the machine description from the host tree.
pub fn host_info(dtb: &[u8]) -> Result<HostInfo, DtError> {
    let dt = Dtb::parse(dtb)?;
    let root = dt.root();
    let (rac, rsc) = root
        .child_cells(2, 1)
        .ok_or(DtError::new("root #address-cells/#size-cells malformed"))?;

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
    let rejuvenate_interval_ms = match dt.find("/chosen").and_then(|c| c.prop("blink,rejuvenate-interval-ms")) {
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

fn checked_region(base: u64, size: u64, what: &str) -> Result<Region, DtError> {
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
fn interrupt_intids(node: &Node<'_, '_>, gic: &Node<'_, '_>) -> Option<Vec<Option<u32>>> {
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

fn host_uart(dt: &Dtb<'_>, gic: &Node<'_, '_>) -> Result<HostUart, DtError> {
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
    let path = node.path();
    let reg = node
        .reg_translated()
        .map_err(|e| DtError::new(format!("UART {path}: reg: {e}")))?
        .ok_or_else(|| DtError::new(format!("UART {path}: no reg")))?;
    let &(base, size) = reg
        .first()
        .ok_or_else(|| DtError::new(format!("UART {path}: empty reg")))?;
    checked_region(base, size, &path)?;
    let spi = interrupt_intids(&node, gic)
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

#[cfg(test)]
mod tests;
