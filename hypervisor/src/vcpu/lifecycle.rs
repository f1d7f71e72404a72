//! A VM's lifecycle beyond its vCPUs' own power states: stopping it, the
//! second half of a restart (SYSTEM_RESET), and kicking the CPUs that run
//! its vCPUs so they notice.
use super::machine;
use super::vm::Vm;
use crate::arch::aarch64::gic::{gic, SGI_KICK};
use crate::arch::aarch64::guest;
use crate::arch::aarch64::sysreg::cpu_index;
use vmm::vgic::Effects;

/// Stop a VM and make the CPUs running its other vCPUs notice.
pub fn stop_vm(vm: &Vm) {
    vm.stop();
    machine().upcalls.drop_input(vm.id);
    kick_all(vm);
}

pub fn kick_all(vm: &Vm) {
    for v in &vm.vcpus {
        if v.pcpu != cpu_index() {
            gic().send_sgi(v.pcpu, SGI_KICK);
        }
    }
}

/// Second half of SYSTEM_RESET, run by the CPU that unloaded the VM's last
/// vCPU (so nothing of the VM runs or is loaded anywhere): fresh devices,
/// images copied again from their modules, vCPU 0 started at the entry.
/// No lock is held across the copy.
pub fn restart_vm(vm: &Vm) {
    let g = gic();
    let Some(cfg) = vm.config() else {
        // begin_reset is only called with a configuration; stay safe anyway.
        vm.stop();
        return;
    };
    machine().upcalls.drop_input(vm.id);
    // Whatever the old vGIC held is dropped with it (no heap kept).
    *vm.vgic.lock() = vmm::vgic::Vgic::new(g.version(), vm.vcpus.len(), g.nr_lrs());
    *vm.uart.lock() = vmm::vpl011::Pl011::new();
    for v in &vm.vcpus {
        // A CPU_ON that raced with the reset must not survive it.
        v.reset_off();
    }
    let (entry, dtb) = match vm.load_images(cfg, g.version()) {
        Ok(start) => start,
        Err(e) => {
            hvprintln!(
                "vm {} '{}': restart failed: {}; VM stopped",
                vm.id,
                vm.name,
                e
            );
            vm.stop();
            return;
        }
    };
    // The guest's stage-1 translations of its previous life are gone with
    // it; a real reset leaves no TLB entries behind either. Rare: invalidate
    // every EL1&0 entry rather than switch to this VM's VMID.
    guest::invalidate_el1_tlbs();
    if !vm.finish_restart() {
        return;
    }
    // A passthrough interrupt forwarded to the old vGIC (linked to the
    // physical one) stays active until the guest deactivates it, which the
    // new guest never will; a line that fired during the reset was
    // disabled (irq::handle). Finish and re-enable both.
    for &intid in &vm.passthrough_intids {
        g.clear_active_spi(intid);
        g.enable(vm.vcpus[0].pcpu, intid, true);
    }
    let n = vm.boots.fetch_add(1, core::sync::atomic::Ordering::AcqRel) + 1;
    vm.vcpus[0].request_on(entry, dtb);
    hvprintln!("vm {} '{}': restarted (boot {})", vm.id, vm.name, n);
    if vm.vcpus[0].pcpu != cpu_index() {
        g.send_sgi(vm.vcpus[0].pcpu, SGI_KICK);
    }
}

/// Let the physical CPUs of vCPUs with new pending interrupts know.
pub fn kick(vm: &Vm, e: Effects) {
    for v in &vm.vcpus {
        if e.kick & (1 << v.index) != 0 && v.pcpu != cpu_index() {
            gic().send_sgi(v.pcpu, SGI_KICK);
        }
    }
}
