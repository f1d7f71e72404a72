//! Hypervisor core: VMs, vCPUs, the run loop, exit handling, the console.
pub mod boot;
pub mod console;
pub mod exit;
pub mod exit_stats;
pub mod heap;
pub mod holding_pen;
pub mod image_slots;
pub mod rejuvenate;
pub mod sched;
pub mod shell;
pub mod vcpu;
pub mod vm;

use alloc::vec::Vec;
use spin::Once;
use vm::Vm;

/// Everything the CPUs share once boot has finished.
pub struct Hyp {
    pub vms: Vec<Vm>,
    pub ncpus: usize,
    /// INTID of the console UART's interrupt, if it has one.
    pub uart_intid: Option<u32>,
    /// CPUs that reached their run loop (a reload waits for all of them).
    /// Bit per CPU that has entered its run loop.
    pub online: core::sync::atomic::AtomicUsize,
    /// MPIDR of each logical CPU.
    pub cpu_mpidrs: Vec<u64>,
    /// The host device tree, passed on to the next image.
    pub dtb: u64,
}

static HYP: Once<Hyp> = Once::new();

pub fn hyp() -> &'static Hyp {
    HYP.get().expect("boot finished")
}

pub fn publish(h: Hyp) -> &'static Hyp {
    HYP.call_once(|| h)
}

/// Secondary CPUs wait here until the primary has created the VMs.
pub fn wait_published() -> &'static Hyp {
    HYP.wait()
}
