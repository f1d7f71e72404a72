//! AArch64 EL2: boot, exception vectors, system registers, the EL2 MMU, the
//! physical GIC and its virtualization interface, vCPU register context,
//! timers, trap controls and the loaded guest's EL2 state. The only code
//! that names a system register or holds assembly.
pub mod cache;
pub mod context;
pub mod debug;
pub mod exception;
pub mod gic;
pub mod guest;
pub mod mmu;
pub mod pauth;
pub mod regs;
pub mod rng;
pub mod sysreg;
pub mod timer;
pub mod traps;

core::arch::global_asm!(include_str!("boot.S"));
// The boards' (load address, console) table boot.S's fatal path reads,
// generated from the board data by build.rs.
core::arch::global_asm!(include_str!(concat!(env!("OUT_DIR"), "/early_uarts.S")));
core::arch::global_asm!(include_str!("vectors.S"));
core::arch::global_asm!(include_str!("reload.S"));
