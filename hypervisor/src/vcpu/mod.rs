//! The vCPU mechanism: VMs and vCPUs and their lifecycle (start, stop,
//! restart), the run loop of each physical CPU, exit and interrupt
//! dispatch, emulated MMIO. It never prints to the shell and never starts a
//! reload: what it needs from the layers above (console traffic, periodic
//! work, giving up the CPU for a reload) it asks through [`Upcalls`],
//! installed by the composition root.
pub mod exit;
pub mod irq;
pub mod lifecycle;
pub mod mmio;
pub mod quiesce;
pub mod run;
pub mod stats;
pub mod upcalls;
#[allow(clippy::module_inception)]
pub mod vcpu;
pub mod vm;

use alloc::vec::Vec;
use core::sync::atomic::AtomicUsize;
use spin::Once;
pub use upcalls::Upcalls;
use vm::Vm;

/// The most physical CPUs the hypervisor runs on, on any board (stacks in
/// the image, per-CPU counters, the holding pen's mailboxes).
pub const MAX_CPUS: usize = platform::MAX_CPUS;

/// The most VMs one machine runs (VMIDs, handoff blocks).
pub const MAX_VMS: usize = 16;

/// Everything the CPUs share once boot has finished.
pub struct Machine {
    pub vms: Vec<Vm>,
    pub ncpus: usize,
    /// INTID of the console UART's interrupt, if it has one.
    pub uart_intid: Option<u32>,
    /// INTID of the maintenance link's UART, when the hypervisor drives
    /// it (routed to CPU 0).
    pub maint_intid: Option<u32>,
    /// Bit per CPU that has entered its run loop (a reload waits for all
    /// of them).
    pub online: AtomicUsize,
    /// MPIDR of each logical CPU.
    pub cpu_mpidrs: Vec<u64>,
    /// The host device tree, passed on to the next image.
    pub dtb: u64,
    /// The layers above, as the run loop sees them.
    pub upcalls: &'static dyn Upcalls,
}

static MACHINE: Once<Machine> = Once::new();

/// Bit per CPU this image started (CPU 0, and each secondary released from
/// the holding pen or started by PSCI): a reload waits for all of them to
/// be online first.
pub static STARTED_CPUS: AtomicUsize = AtomicUsize::new(1);

pub fn machine() -> &'static Machine {
    MACHINE.get().expect("boot finished")
}

pub fn publish(m: Machine) -> &'static Machine {
    MACHINE.call_once(|| m)
}

/// Secondary CPUs wait here until the primary has created the VMs.
pub fn wait_published() -> &'static Machine {
    MACHINE.wait()
}
