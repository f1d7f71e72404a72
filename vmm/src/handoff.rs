//! The warm-reboot handoff block: what a running image (generation N)
//! leaves in memory for the next image (N+1) so that it can resume every VM
//! exactly where it was suspended.
//!
//! A block is a small fixed little-endian [`Header`] (magic, format major
//! and minor, sizes, CRC32 of the header and of the body) followed by a
//! flattened device tree: one property per value, so an image can add
//! properties and nodes that an older image ignores. `docs/handoff.md`
//! describes the layout byte by byte, every node and property, and the
//! version policy; this module is the writer ([`encode`]) and the validating
//! reader ([`decode`], [`peek_header`]).
//!
//! The reader never panics and never trusts a size it has not checked: the
//! block may be corrupt, truncated or written by an image with another
//! format. Anything it accepts satisfies every rule the writer enforces
//! (so `encode(decode(b))` always succeeds) plus the host's
//! [`HandoffLimits`] (VM memory inside host RAM and clear of the hypervisor
//! and of each other).
//!
//! The data model is plain data with no references into hypervisor
//! objects; [`VgicState`] converts to and from [`crate::vgic::Vgic`], and
//! [`crate::vpl011::Pl011State`] comes from [`crate::vpl011::Pl011::snapshot`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dtb::DtbError;
use crate::memory::RegionSet;
use crate::vpl011::Pl011;

pub use crate::memory::Region;
pub use crate::psci::PowerState;
pub use crate::vgic::Version as GicVersion;
pub use crate::vpl011::Pl011State;

mod header;
mod read;
mod vgic_state;
mod write;

#[cfg(test)]
mod tests;

pub use header::{peek_header, Header, HEADER_SIZE, MAGIC};
pub use read::decode;
pub use write::encode;

/// Format major version this image reads and writes. A block with another
/// major is refused.
pub const MAJOR: u16 = 1;
/// Format revision this image's writer implements (informational: readers
/// accept any minor of their major).
pub const MINOR: u16 = 0;

/// Largest block (header + body) accepted or written.
pub const MAX_TOTAL_SIZE: usize = 16 << 20;
/// Hard caps, whatever the limits say: they bound what a reader allocates.
pub const MAX_VMS: usize = 64;
pub const MAX_VCPUS: usize = 8;
pub const MAX_TIMESTAMPS: usize = 64;
pub const MAX_SYSREGS: usize = 256;
pub const MAX_PASSTHROUGH: usize = 16;
pub const MAX_DEVICE_REGIONS: usize = 16;
pub const MAX_DEVICE_INTIDS: usize = 64;
/// VM names, in bytes (UTF-8).
pub const MAX_NAME_LEN: usize = 64;
/// Passthrough device paths, in bytes.
pub const MAX_PATH_LEN: usize = 256;
pub const MAX_CONSOLE_PENDING: usize = 4096;
/// Timestamp and system register names are FDT property names: 1 to 31
/// characters of `0-9 a-z A-Z , . _ + ? # -`.
pub const MAX_ENTRY_NAME_LEN: usize = 31;
/// Number of general registers x0..x30.
pub const NR_X: usize = 31;
/// Number of FP/SIMD registers q0..q31.
pub const NR_Q: usize = 32;
/// List registers saved per vCPU (the architectural maximum).
pub const NR_VIF_LRS: usize = 16;
/// Largest physical INTID a virtual interrupt can be linked to (exclusive).
pub const HW_INTID_END: u32 = 1020;
/// Smallest one (SGIs cannot be hardware-linked).
pub const HW_INTID_MIN: u32 = 16;
/// Passthrough devices' interrupts are SPIs.
pub const SPI_INTID_MIN: u32 = 32;

/// Everything one image hands to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// Reloads since the first (cold) boot: 0 for a block written by the
    /// image that booted cold.
    pub generation: u64,
    /// Reload phase name -> physical counter value (CNTPCT_EL0), in the
    /// order the phases happened (`request`, `quiesced`, `state_saved`).
    /// Names follow [`MAX_ENTRY_NAME_LEN`] rules and are unique.
    pub timestamps: Vec<(String, u64)>,
    /// CNTFRQ_EL0 of the writer, in Hz (non-zero).
    pub counter_freq: u64,
    /// Where the previous image is kept, for a rollback.
    pub prev_image: Option<Region>,
    /// Version string of the image that wrote the block (`blink 0.1.0`), for
    /// the log; optional (at most [`MAX_NAME_LEN`] bytes).
    pub writer: Option<String>,
    /// An upload over the maintenance link in progress when the block was
    /// written, to resume from its verified prefix;
    /// optional. One that does not read is dropped (the upload starts
    /// afresh), never a reason to refuse the block.
    pub upload: Option<crate::maint::receiver::ResumeState>,
    pub vms: Vec<VmState>,
}

/// One suspended VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmState {
    /// Unique among the VMs of a block.
    pub id: u32,
    /// Console tag (`domU0`); 1..=[`MAX_NAME_LEN`] bytes, no NUL.
    pub name: String,
    /// Guest RAM in host physical memory (4 KiB aligned, non-empty). Guest
    /// physical base is the layout's fixed RAM base.
    pub ram: Region,
    /// CNTVOFF_EL2 for every vCPU of the VM.
    pub cntvoff: u64,
    /// The VM was stopped (contained after a fault) and must stay stopped.
    pub stopped: bool,
    /// Host devices given to the VM.
    pub passthrough: Vec<PassthroughState>,
    /// One per vCPU, `vcpus[i].index == i`; 1..=[`MAX_VCPUS`].
    pub vcpus: Vec<VcpuState>,
    pub vgic: VgicState,
    pub uart: Pl011State,
    /// Console output of a partial line not yet printed.
    pub console_pending: Vec<u8>,
}

/// A host device assigned to a VM (see `config::Passthrough`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughState {
    /// Host device tree path, 1..=[`MAX_PATH_LEN`] bytes, no NUL.
    pub path: String,
    /// MMIO regions mapped 1:1 (non-empty each, at most [`MAX_DEVICE_REGIONS`]).
    pub regions: Vec<Region>,
    /// Its SPIs (32..1020, at most [`MAX_DEVICE_INTIDS`]).
    pub intids: Vec<u32>,
}

/// One vCPU's architectural and run state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuState {
    pub index: u32,
    pub power: PowerState,
    /// Waiting in WFI (woken by an interrupt or its timer deadline).
    pub waiting: bool,
    /// PSCI CPU_ON arguments, meaningful for [`PowerState::OnPending`].
    pub boot_entry: u64,
    pub boot_context: u64,
    pub x: [u64; NR_X],
    /// ELR_EL2 / SPSR_EL2 of the guest.
    pub pc: u64,
    pub pstate: u64,
    /// EL1 (and EL0, timer, VMPIDR_EL2) context by register name, in the
    /// writer's order. The set is the hypervisor's choice; names unique.
    pub sysregs: Vec<(String, u64)>,
    pub fp: FpState,
    pub vif: VifState,
}

impl VcpuState {
    /// Value of the system register `name`, if saved.
    pub fn sysreg(&self, name: &str) -> Option<u64> {
        self.sysregs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, v)| v)
    }
}

/// FP/SIMD registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpState {
    pub q: [u128; NR_Q],
    pub fpcr: u64,
    pub fpsr: u64,
}

/// The hardware virtual CPU interface (GICH/ICH) state of a vCPU, raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifState {
    /// GICH_VMCR / ICH_VMCR_EL2.
    pub vmcr: u64,
    /// Active priorities: GICH_APR (v2) or ICH_AP0R0/ICH_AP1R0 (v3).
    pub apr: [u32; 2],
    /// List registers as read from the hardware (GICv2 values zero-extended).
    pub lrs: [u64; NR_VIF_LRS],
}

/// One interrupt of the vGIC model (mirror of [`crate::vgic::Irq`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IrqState {
    pub enabled: bool,
    pub pending: bool,
    pub active: bool,
    pub level: bool,
    pub edge: bool,
    pub priority: u8,
    pub group1: bool,
    pub targets: u8,
    pub route: u64,
    /// Physical INTID (16..1020) the virtual one is linked to.
    pub hw: Option<u32>,
    pub in_lr: bool,
}

/// Per-vCPU part of the vGIC (mirror of [`crate::vgic::VgicCpu`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgicCpuState {
    /// SGIs and PPIs, INTID 0..32.
    pub private: [IrqState; crate::vgic::NR_PRIVATE],
    /// INTID held by each list register slot.
    pub lrs: [Option<u32>; crate::vgic::MAX_LRS],
    /// GICR_WAKER.ProcessorSleep.
    pub sleeping: bool,
    /// GICv2: sources of each SGI pending for this vCPU (bit n = from
    /// vCPU n; see [`crate::vgic::VgicCpu::sgi_sources`]). All 0 on GICv3.
    /// Optional in the block (added in 1.0 after the first blocks were
    /// written): absent, a pending SGI counts as sent by vCPU 0, which is
    /// what the model without sources reported.
    pub sgi_sources: [u8; crate::vgic::NR_SGIS],
}

/// The vGIC model of a VM (mirror of [`crate::vgic::Vgic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgicState {
    pub version: GicVersion,
    pub ctlr: u32,
    /// List registers the hardware implements (1..=16).
    pub nr_lrs: u32,
    /// INTID 32.. ([`crate::vgic::NR_SPIS`] of them).
    pub spis: Vec<IrqState>,
    /// One per vCPU, in vCPU order.
    pub cpus: Vec<VgicCpuState>,
}

/// What a block is checked against on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffLimits {
    /// The hypervisor's own region (image, heap, handoff and staging
    /// regions): no VM memory or device may touch it.
    pub hyp_region: Region,
    /// Host RAM: each VM's memory must lie inside it, devices outside it.
    pub ram: Vec<Region>,
    /// At most this many VMs (also capped at [`MAX_VMS`]).
    pub max_vms: usize,
    /// At most this many vCPUs per VM (also capped at [`MAX_VCPUS`]).
    pub max_vcpus: usize,
    /// System registers every vCPU must carry (the reader refuses a block
    /// without them). Empty: any set is accepted.
    pub required_sysregs: &'static [&'static str],
}

/// Why a block was refused (or could not be written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffError {
    /// The first 8 bytes are not [`MAGIC`]: no handoff block here.
    BadMagic,
    /// The buffer ends before the size the header announces.
    Truncated {
        needed: usize,
        available: usize,
    },
    /// Header size or total size impossible.
    BadHeader(&'static str),
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    /// Written by an image with an incompatible format.
    UnknownMajor {
        found: u16,
        supported: u16,
    },
    BodyCrc {
        stored: u32,
        computed: u32,
    },
    /// The body is not a valid flattened device tree.
    BadFdt(DtbError),
    /// A required property or node is absent.
    Missing {
        node: String,
        what: String,
    },
    /// A property has the wrong length or encoding.
    Malformed {
        node: String,
        prop: String,
        why: &'static str,
    },
    /// A value outside what this image can restore.
    OutOfRange {
        node: String,
        prop: String,
        why: &'static str,
    },
    /// More entries than the reader accepts.
    TooMany {
        node: String,
        what: &'static str,
        max: usize,
    },
    /// The same name or index twice where it must be unique.
    Duplicate {
        node: String,
        what: &'static str,
        name: String,
    },
    DuplicateVmId(u32),
    VmOverlapsHypervisor {
        vm: u32,
        ram: Region,
        hyp: Region,
    },
    VmsOverlap {
        a: u32,
        b: u32,
    },
    VmOutsideRam {
        vm: u32,
        ram: Region,
    },
    /// A passthrough device region or the previous image overlapping
    /// something it must not.
    Conflict {
        node: String,
        region: Region,
        with: &'static str,
    },
    /// The writer could not produce a block.
    Encode(String),
}

impl fmt::Display for HandoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandoffError::*;
        match self {
            BadMagic => f.write_str("bad magic: no handoff block"),
            Truncated { needed, available } => write!(
                f,
                "truncated: the block needs {needed} bytes, only {available} available"
            ),
            BadHeader(why) => write!(f, "bad header: {why}"),
            HeaderCrc { stored, computed } => write!(
                f,
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            UnknownMajor { found, supported } => write!(
                f,
                "incompatible format: major version {found}, this image reads major {supported}"
            ),
            BodyCrc { stored, computed } => write!(
                f,
                "body checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            BadFdt(e) => write!(f, "body is not a valid device tree: {e}"),
            Missing { node, what } => write!(f, "{node}: missing required '{what}'"),
            Malformed { node, prop, why } => {
                write!(f, "{node}: property '{prop}' malformed: {why}")
            }
            OutOfRange { node, prop, why } => write!(f, "{node}: '{prop}' out of range: {why}"),
            TooMany { node, what, max } => write!(f, "{node}: more than {max} {what}"),
            Duplicate { node, what, name } => write!(f, "{node}: duplicate {what} '{name}'"),
            DuplicateVmId(id) => write!(f, "two VMs with id {id}"),
            VmOverlapsHypervisor { vm, ram, hyp } => write!(
                f,
                "VM {vm}: memory {ram} overlaps the hypervisor region {hyp}"
            ),
            VmsOverlap { a, b } => write!(f, "VMs {a} and {b} have overlapping memory"),
            VmOutsideRam { vm, ram } => write!(f, "VM {vm}: memory {ram} is not inside host RAM"),
            Conflict { node, region, with } => write!(f, "{node}: region {region} overlaps {with}"),
            Encode(why) => write!(f, "cannot write the handoff block: {why}"),
        }
    }
}

/// Node path of a VM, as the format names it (`/vm@<id in hex>`).
pub(crate) fn vm_path(id: u32) -> String {
    format!("/vm@{id:x}")
}

/// At most 40 characters of `s`, for error messages about untrusted names.
pub(crate) fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Whether `s` can be a timestamp or system register name (an FDT
/// property name).
pub fn valid_entry_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ENTRY_NAME_LEN
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b',' | b'.' | b'_' | b'+' | b'?' | b'#' | b'-')
        })
}

fn out_of_range(node: &str, prop: &str, why: &'static str) -> HandoffError {
    HandoffError::OutOfRange {
        node: String::from(node),
        prop: String::from(prop),
        why,
    }
}

/// A usable region: non-empty, end representable.
fn region_ok(r: &Region) -> bool {
    !r.is_empty() && r.end().is_some()
}

fn check_entries(
    node: &str,
    what: &'static str,
    list: &[(String, u64)],
    max: usize,
) -> Result<(), HandoffError> {
    if list.len() > max {
        return Err(HandoffError::TooMany {
            node: String::from(node),
            what,
            max,
        });
    }
    for (i, (name, _)) in list.iter().enumerate() {
        if !valid_entry_name(name) {
            return Err(HandoffError::Malformed {
                node: String::from(node),
                prop: short(name),
                why: "not a valid name (1-31 of 0-9 a-z A-Z , . _ + ? # -)",
            });
        }
        if list[..i].iter().any(|(n, _)| n == name) {
            return Err(HandoffError::Duplicate {
                node: String::from(node),
                what,
                name: short(name),
            });
        }
    }
    Ok(())
}

fn check_string(node: &str, prop: &str, s: &str, max: usize) -> Result<(), HandoffError> {
    if s.is_empty() || s.len() > max || s.contains('\0') {
        return Err(out_of_range(
            node,
            prop,
            "empty, too long or containing NUL",
        ));
    }
    Ok(())
}

/// Rules every block must satisfy whatever the host: the writer refuses to
/// write a state that breaks them, the reader refuses a block that does.
pub(crate) fn check_semantics(h: &Handoff) -> Result<(), HandoffError> {
    check_entries("/timestamps", "timestamp", &h.timestamps, MAX_TIMESTAMPS)?;
    if h.counter_freq == 0 {
        return Err(out_of_range("/", "counter-frequency", "zero"));
    }
    if let Some(p) = &h.prev_image {
        if !region_ok(p) {
            return Err(out_of_range(
                "/",
                "prev-image",
                "empty or past the end of the address space",
            ));
        }
    }
    if let Some(w) = &h.writer {
        check_string("/", "writer", w, MAX_NAME_LEN)?;
    }
    if h.vms.len() > MAX_VMS {
        return Err(HandoffError::TooMany {
            node: String::from("/"),
            what: "VMs",
            max: MAX_VMS,
        });
    }
    for (i, vm) in h.vms.iter().enumerate() {
        if h.vms[..i].iter().any(|o| o.id == vm.id) {
            return Err(HandoffError::DuplicateVmId(vm.id));
        }
        check_vm(vm)?;
        for o in &h.vms[..i] {
            if o.ram.overlaps(&vm.ram) {
                return Err(HandoffError::VmsOverlap { a: o.id, b: vm.id });
            }
        }
        if let Some(p) = &h.prev_image {
            if p.overlaps(&vm.ram) {
                return Err(HandoffError::Conflict {
                    node: String::from("/"),
                    region: *p,
                    with: "a VM's memory (prev-image)",
                });
            }
        }
    }
    // A device belongs to one VM only, and never to a VM's RAM.
    for (i, vm) in h.vms.iter().enumerate() {
        for pt in &vm.passthrough {
            for r in &pt.regions {
                for (j, other) in h.vms.iter().enumerate() {
                    if other.ram.overlaps(r) {
                        return Err(HandoffError::Conflict {
                            node: vm_path(vm.id),
                            region: *r,
                            with: "a VM's memory",
                        });
                    }
                    if j == i {
                        continue;
                    }
                    if other
                        .passthrough
                        .iter()
                        .any(|o| o.regions.iter().any(|x| x.overlaps(r)))
                    {
                        return Err(HandoffError::Conflict {
                            node: vm_path(vm.id),
                            region: *r,
                            with: "another VM's device",
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_vm(vm: &VmState) -> Result<(), HandoffError> {
    let node = vm_path(vm.id);
    check_string(&node, "vm-name", &vm.name, MAX_NAME_LEN)?;
    if !region_ok(&vm.ram) || !vm.ram.is_aligned(0x1000) {
        return Err(out_of_range(
            &node,
            "ram",
            "empty, not 4 KiB aligned or past the end of the address space",
        ));
    }
    if vm.vcpus.is_empty() || vm.vcpus.len() > MAX_VCPUS {
        return Err(out_of_range(&node, "vcpus", "a VM has 1 to 8 vCPUs"));
    }
    if vm.console_pending.len() > MAX_CONSOLE_PENDING {
        return Err(out_of_range(
            &node,
            "console-pending",
            "longer than 4096 bytes",
        ));
    }
    if vm.passthrough.len() > MAX_PASSTHROUGH {
        return Err(HandoffError::TooMany {
            node,
            what: "passthrough devices",
            max: MAX_PASSTHROUGH,
        });
    }
    for (i, pt) in vm.passthrough.iter().enumerate() {
        let pnode = format!("{node}/passthrough@{i:x}");
        check_string(&pnode, "path", &pt.path, MAX_PATH_LEN)?;
        if vm.passthrough[..i].iter().any(|o| o.path == pt.path) {
            return Err(HandoffError::Duplicate {
                node: pnode,
                what: "device",
                name: short(&pt.path),
            });
        }
        if pt.regions.len() > MAX_DEVICE_REGIONS {
            return Err(HandoffError::TooMany {
                node: pnode,
                what: "regions",
                max: MAX_DEVICE_REGIONS,
            });
        }
        if pt.intids.len() > MAX_DEVICE_INTIDS {
            return Err(HandoffError::TooMany {
                node: pnode,
                what: "interrupts",
                max: MAX_DEVICE_INTIDS,
            });
        }
        if !pt.regions.iter().all(region_ok) {
            return Err(out_of_range(
                &pnode,
                "regions",
                "empty region or past the end of the address space",
            ));
        }
        if !pt
            .intids
            .iter()
            .all(|&i| (SPI_INTID_MIN..HW_INTID_END).contains(&i))
        {
            return Err(out_of_range(&pnode, "intids", "not an SPI (32..1020)"));
        }
    }
    for (i, cpu) in vm.vcpus.iter().enumerate() {
        let cnode = format!("{node}/cpu@{i:x}");
        if cpu.index as usize != i {
            return Err(out_of_range(
                &cnode,
                "index",
                "vCPU indexes must be 0..vcpus, each once",
            ));
        }
        check_entries(
            &format!("{cnode}/sysregs"),
            "system register",
            &cpu.sysregs,
            MAX_SYSREGS,
        )?;
    }
    if vm.vgic.cpus.len() != vm.vcpus.len() {
        return Err(out_of_range(
            &format!("{node}/vgic"),
            "cpu",
            "one vGIC cpu node per vCPU",
        ));
    }
    vgic_state::validate(&vm.vgic)
        .map_err(|(prop, why)| out_of_range(&format!("{node}/vgic"), prop, why))?;
    Pl011::restore(&vm.uart).map_err(|e| out_of_range(&format!("{node}/uart"), "uart", e.0))?;
    Ok(())
}

/// Rules of this host: VM memory in RAM and clear of the hypervisor,
/// devices out of RAM, counts within the limits, required registers.
pub(crate) fn check_limits(h: &Handoff, l: &HandoffLimits) -> Result<(), HandoffError> {
    let max_vms = l.max_vms.min(MAX_VMS);
    if h.vms.len() > max_vms {
        return Err(HandoffError::TooMany {
            node: String::from("/"),
            what: "VMs",
            max: max_vms,
        });
    }
    // Limits whose RAM overflows are treated as no RAM: nothing fits.
    let ram = RegionSet::from_regions(l.ram.iter().copied()).unwrap_or_default();
    let max_vcpus = l.max_vcpus.min(MAX_VCPUS);
    for vm in &h.vms {
        let node = vm_path(vm.id);
        if vm.vcpus.len() > max_vcpus {
            return Err(out_of_range(
                &node,
                "vcpus",
                "more vCPUs than this hypervisor allows",
            ));
        }
        if vm.ram.overlaps(&l.hyp_region) {
            return Err(HandoffError::VmOverlapsHypervisor {
                vm: vm.id,
                ram: vm.ram,
                hyp: l.hyp_region,
            });
        }
        if !ram.contains(vm.ram) {
            return Err(HandoffError::VmOutsideRam {
                vm: vm.id,
                ram: vm.ram,
            });
        }
        for (i, pt) in vm.passthrough.iter().enumerate() {
            for r in &pt.regions {
                let with = if r.overlaps(&l.hyp_region) {
                    "the hypervisor region"
                } else if ram.overlaps(*r) {
                    "host RAM"
                } else {
                    continue;
                };
                return Err(HandoffError::Conflict {
                    node: format!("{node}/passthrough@{i:x}"),
                    region: *r,
                    with,
                });
            }
        }
        for cpu in &vm.vcpus {
            for &name in l.required_sysregs {
                if cpu.sysreg(name).is_none() {
                    return Err(HandoffError::Missing {
                        node: format!("{node}/cpu@{:x}/sysregs", cpu.index),
                        what: String::from(name),
                    });
                }
            }
        }
    }
    Ok(())
}
