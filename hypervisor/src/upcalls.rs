//! The wiring of the layers: what the vCPU layer asks of the layers above
//! it (`vcpu::Upcalls`), answered by the console, the reload and boot.
//! Only the composition root knows all of them.
use crate::services::{console, maint_link};
use crate::{boot, reload, vcpu};
use vmm::config::VmConfig;

pub struct Wiring;

/// The one instance, handed to `vcpu::publish`.
pub static WIRING: Wiring = Wiring;

impl vcpu::Upcalls for Wiring {
    fn vm_output(&self, vm: usize, byte: u8) {
        console::vm_output(vm, byte);
    }

    fn vm_idle(&self, vm: usize) {
        console::vm_idle(vm);
    }

    fn drop_input(&self, vm: usize) {
        console::drop_input(vm);
    }

    fn guest_read_rx(&self) {
        console::guest_read_rx();
    }

    fn console_irq(&self) {
        console::poll_input();
    }

    fn maint_irq(&self) {
        maint_link::irq();
    }

    fn poll(&self, cpu: usize) {
        if cpu == 0 {
            maint_link::poll();
            reload::periodic::check();
            reload::trial::check();
        }
    }

    fn poll_deadline(&self, cpu: usize) -> u64 {
        if cpu == 0 {
            reload::periodic::due().min(reload::trial::due())
        } else {
            u64::MAX
        }
    }

    fn quiesced(&self, cpu: usize) {
        if cpu == 0 {
            reload::perform(
                vcpu::machine().dtb,
                &console::pending,
                maint_link::upload_state(),
            );
        } else {
            reload::quiesce::park();
        }
    }

    fn find_config(&self, name: &str, ram_size: u64, vcpus: usize) -> Option<VmConfig> {
        boot::find_config(name, ram_size, vcpus)
    }
}
