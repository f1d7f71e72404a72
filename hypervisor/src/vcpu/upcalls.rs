//! What the vCPU layer needs from the layers above it, as one trait: the
//! composition root (`upcalls.rs` at the crate root) implements it with the
//! console, the reload and the boot code, so that no arrow runs upward.
use vmm::config::VmConfig;

pub trait Upcalls: Sync {
    /// A byte VM `vm` wrote to its emulated UART.
    fn vm_output(&self, vm: usize, byte: u8);
    /// VM `vm` went idle (WFI): a good moment to show its partial line.
    fn vm_idle(&self, vm: usize);
    /// VM `vm` stopped or restarts: forget input still waiting for it.
    fn drop_input(&self, vm: usize);
    /// A guest took a byte from its UART's receive FIFO (room for input
    /// held back).
    fn guest_read_rx(&self);
    /// The console UART's interrupt fired.
    fn console_irq(&self);
    /// The maintenance link UART's interrupt fired (on CPU 0).
    fn maint_irq(&self);
    /// Periodic work of CPU `cpu`, called between guest exits and when it
    /// wakes (CPU 0 starts a periodic reload here when one is due).
    fn poll(&self, cpu: usize);
    /// Counter value by which CPU `cpu` must call [`Upcalls::poll`] even if
    /// its guest does not exit on its own (`u64::MAX`: no deadline).
    fn poll_deadline(&self, cpu: usize) -> u64;
    /// CPU `cpu` has unloaded every vCPU because a quiesce was requested
    /// (see `quiesce`): hand it over (may not return; if it does, the CPU
    /// goes on running its vCPUs).
    fn quiesced(&self, cpu: usize);
    /// After a warm reload: the configuration of the VM with this name and
    /// shape in the host device tree, to restart it from (None: the tree no
    /// longer describes it).
    fn find_config(&self, name: &str, ram_size: u64, vcpus: usize) -> Option<VmConfig>;
}
