//! AArch64 EL2: boot, exception vectors, system registers, the EL2 MMU, the
//! physical GIC and its virtualization interface, vCPU register context,
//! timers and trap controls. The only code that names a system register or
//! holds assembly (the vCPU and reload layers still read a few syndrome and
//! EL1 registers directly; see docs/architecture.md).
pub mod cache;
pub mod context;
pub mod exception;
pub mod gic;
pub mod mmu;
pub mod regs;
pub mod sysreg;
pub mod timer;
pub mod traps;

core::arch::global_asm!(include_str!("boot.S"));
core::arch::global_asm!(include_str!("vectors.S"));
core::arch::global_asm!(include_str!("reload.S"));
