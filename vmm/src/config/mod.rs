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
//!
//! This file holds the configuration's types (what a VM and the machine
//! look like once validated); the parsing lives next to it: `host` reads
//! the machine ([`host_info`]), `vms` the dom0less VM nodes ([`parse_vms`])
//! and `passthrough` the host devices a VM is given.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dtb::DtbError;
pub use crate::guest_fdt::GicVersion;
pub use crate::memory::Region;

mod host;
mod passthrough;
mod vms;

pub use host::{host_info, uart_at};
pub use vms::parse_vms;

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
    /// The root node's `compatible` list (which board this is; may be
    /// empty if the tree has none or it is malformed).
    pub compatible: Vec<String>,
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

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;
