//! AArch64 EL2: boot, exception vectors, system registers, the EL2 MMU, the
//! physical GIC and its virtualization interface, vCPU register context.
pub mod cache;
pub mod context;
pub mod exception;
pub mod firmware;
pub mod gic;
pub mod mmu;
pub mod regs;
pub mod sysreg;

core::arch::global_asm!(include_str!("boot.S"));
core::arch::global_asm!(include_str!("vectors.S"));
core::arch::global_asm!(include_str!("reload.S"));
