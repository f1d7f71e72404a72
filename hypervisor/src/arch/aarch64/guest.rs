//! The EL2 registers that describe the loaded guest: entering and leaving
//! a VM's translation regime, the syndrome of an exit, and the EL1
//! exception registers an injected exception rewrites. The vCPU layer uses
//! these instead of naming the registers.
use super::sysreg::isb;
use super::traps::TrapPolicy;
use crate::{read_sysreg, write_sysreg};
use vmm::inject::El1ExceptionState;

/// Load a VM's stage 2 (VTTBR_EL2), its counter offset and the trap policy
/// its vCPUs run under, before its EL1 context is restored.
pub fn enter_vm(vttbr: u64, cntvoff: u64, policy: TrapPolicy) {
    write_sysreg!(vttbr_el2, vttbr);
    write_sysreg!(cntvoff_el2, cntvoff);
    write_sysreg!(hcr_el2, policy.hcr());
}

/// No guest is loaded: nothing traps, stage 2 is off.
pub fn leave_vm() {
    write_sysreg!(hcr_el2, 0);
    isb();
}

/// ESR_EL2 of the exit being handled.
pub fn exit_syndrome() -> u64 {
    read_sysreg!(esr_el2)
}

/// The faulting virtual address (FAR_EL2) and the IPA (from HPFAR_EL2) of
/// the abort being handled.
pub fn fault_address() -> (u64, u64) {
    let far = read_sysreg!(far_el2);
    (far, vmm::esr::fault_ipa(read_sysreg!(hpfar_el2), far))
}

/// The loaded vCPU's EL1 exception registers, with its `pc` and `pstate`
/// (which live in its saved general registers).
pub fn el1_exception_state(pc: u64, pstate: u64) -> El1ExceptionState {
    El1ExceptionState {
        pc,
        pstate,
        vbar_el1: read_sysreg!(vbar_el1),
        elr_el1: read_sysreg!(elr_el1),
        spsr_el1: read_sysreg!(spsr_el1),
        esr_el1: read_sysreg!(esr_el1),
        far_el1: read_sysreg!(far_el1),
    }
}

/// Write back what taking an exception changed (VBAR_EL1 never changes;
/// pc and pstate go back into the saved general registers).
pub fn set_el1_exception_state(s: &El1ExceptionState) {
    write_sysreg!(elr_el1, s.elr_el1);
    write_sysreg!(spsr_el1, s.spsr_el1);
    write_sysreg!(esr_el1, s.esr_el1);
    write_sysreg!(far_el1, s.far_el1);
}

/// Invalidate every EL1&0 TLB entry on every CPU of the inner shareable
/// domain (a VM restarted: no translation of its previous life survives).
pub fn invalidate_el1_tlbs() {
    // SAFETY: TLB maintenance only.
    unsafe { core::arch::asm!("dsb ishst", "tlbi alle1is", "dsb ish", "isb") };
}
