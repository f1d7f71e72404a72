//! Emulated MMIO: a data abort in a VM's device windows (distributor,
//! redistributors, PL011) becomes a register access on its models; any
//! other abort is injected back into the guest.
use super::exit::{inject_into, Next};
use super::irq::line_still_asserted;
use super::lifecycle::kick;
use super::machine;
use super::stats::{self, Kind};
use super::vcpu::Vcpu;
use super::vm::Vm;
use crate::arch::aarch64::guest;
use crate::arch::aarch64::regs::GuestRegs;
use log::warn;
use vmm::esr::{fsc_name, DataAbort};
use vmm::inject::Injected;
use vmm::layout;
use vmm::vgic::Effects;

pub fn data_abort(vm: &Vm, vcpu: &Vcpu, regs: &mut GuestRegs, d: DataAbort) -> Next {
    let (far, ipa) = guest::fault_address();
    let what = if d.write { "write" } else { "read" };
    if !d.isv {
        stats::count(Kind::AbortInjected);
        warn!(
            "vm {} '{}': {} at IPA {:#x} without instruction syndrome (pc {:#x}): abort injected",
            vm.id, vm.name, what, ipa, regs.pc
        );
        inject_into(regs, Injected::DataAbort { far });
        return Next::Continue;
    }
    let value = if d.reg == 31 {
        0
    } else {
        regs.x[d.reg as usize]
    };
    let size = d.size;
    let result = if let Some(off) = window(ipa, layout::GICD_BASE, layout::GICD_SIZE) {
        stats::count(Kind::MmioGicd);
        let v = vcpu.index;
        if !d.write && is_pending_register(off) {
            resample(vm, vcpu);
        }
        mmio_vgic(
            vm,
            d.write,
            |g| g.dist_read(v, off, size),
            |g| g.dist_write(v, off, size, value),
        )
    } else if let Some((frame, off)) = gicr_window(vm, ipa) {
        stats::count(Kind::MmioGicr);
        if !d.write && frame == vcpu.index && is_pending_register(off.wrapping_sub(GICR_SGI_FRAME))
        {
            resample(vm, vcpu);
        }
        mmio_vgic(
            vm,
            d.write,
            |g| g.redist_read(frame, off, size),
            |g| g.redist_write(frame, off, size, value),
        )
    } else if let Some(off) = window(ipa, layout::UART_BASE, layout::UART_SIZE) {
        stats::count(Kind::MmioUart);
        Some(mmio_uart(vm, off, d.write, value))
    } else {
        None
    };
    match result {
        Some(read) => {
            if !d.write && d.reg != 31 {
                let bits = size as u32 * 8;
                let mut v = if bits == 64 {
                    read
                } else {
                    read & ((1u64 << bits) - 1)
                };
                if d.sign_extend && bits < 64 && v >> (bits - 1) & 1 != 0 {
                    v |= !0u64 << bits;
                }
                if !d.sixty_four {
                    v &= 0xffff_ffff;
                }
                regs.x[d.reg as usize] = v;
            }
            regs.pc += 4;
        }
        None => {
            stats::count(Kind::AbortInjected);
            let kind = if vm.is_ram(ipa) {
                fsc_name(d.fsc)
            } else {
                "outside its memory map"
            };
            warn!(
                "vm {} '{}': {} at IPA {:#x} {} (pc {:#x}): abort injected",
                vm.id, vm.name, what, ipa, kind, regs.pc
            );
            inject_into(regs, Injected::DataAbort { far });
        }
    }
    Next::Continue
}

fn window(ipa: u64, base: u64, size: u64) -> Option<u64> {
    (ipa >= base && ipa - base < size).then(|| ipa - base)
}

fn gicr_window(vm: &Vm, ipa: u64) -> Option<(usize, u64)> {
    if vm.vgic.lock().version != vmm::vgic::Version::V3 {
        return None;
    }
    let off = window(
        ipa,
        layout::GICR_BASE,
        layout::GICR_STRIDE * vm.vcpus.len() as u64,
    )?;
    Some((
        (off / layout::GICR_STRIDE) as usize,
        off % layout::GICR_STRIDE,
    ))
}

/// Offset of the GICv3 redistributor's SGI frame, whose ISPENDR0/ICPENDR0
/// sit where the distributor has ISPENDR/ICPENDR.
const GICR_SGI_FRAME: u64 = 0x1_0000;

/// GICD_ISPENDR<n> / GICD_ICPENDR<n> (both read the pending state).
fn is_pending_register(off: u64) -> bool {
    (0x200..0x300).contains(&off)
}

/// Before the guest reads a pending state: the queued copies of level
/// interrupts whose line dropped are withdrawn, so the state it reads
/// follows the line (as on a GIC), not what was latched when it fired.
fn resample(vm: &Vm, vcpu: &Vcpu) {
    let cpu = crate::arch::aarch64::sysreg::cpu_index();
    vm.vgic
        .lock()
        .withdraw_dropped(vcpu.index, &mut |phys| line_still_asserted(cpu, phys));
}

/// An emulated vGIC register access: reads return the value, writes kick
/// the CPUs of vCPUs with new work (after the lock is released).
fn mmio_vgic(
    vm: &Vm,
    write: bool,
    read: impl FnOnce(&vmm::vgic::Vgic) -> u64,
    store: impl FnOnce(&mut vmm::vgic::Vgic) -> Effects,
) -> Option<u64> {
    let mut g = vm.vgic.lock();
    if write {
        let e = store(&mut g);
        drop(g);
        kick(vm, e);
        Some(0)
    } else {
        Some(read(&g))
    }
}

fn mmio_uart(vm: &Vm, off: u64, write: bool, value: u64) -> u64 {
    let mut uart = vm.uart.lock();
    let read = if write {
        uart.write(off, value as u32, &mut |b| {
            machine().upcalls.vm_output(vm.id, b)
        });
        0
    } else {
        uart.read(off) as u64
    };
    let level = uart.irq_level();
    drop(uart);
    update_uart_irq(vm, level);
    if !write && off == 0 {
        // The guest took a byte from its receive FIFO: room for held input.
        machine().upcalls.guest_read_rx();
    }
    read
}

/// Propagate the emulated UART's interrupt line into the virtual GIC.
pub fn update_uart_irq(vm: &Vm, level: bool) {
    let e = vm.vgic.lock().set_level(0, 32 + layout::UART_SPI, level);
    kick(vm, e);
}
