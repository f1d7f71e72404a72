//! Injecting a synchronous exception into a guest's EL1 — how a guest is told
//! that an access it made was refused (an external abort) or that an
//! instruction it ran is not available (undefined). Pure computation over the
//! register values so it can be tested on the host.

/// The guest registers involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct El1ExceptionState {
    pub pc: u64,
    pub pstate: u64,
    pub vbar_el1: u64,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub esr_el1: u64,
    pub far_el1: u64,
}

/// PSTATE.M values.
const M_EL0T: u64 = 0b0000;
const M_EL1T: u64 = 0b0100;
const M_EL1H: u64 = 0b0101;
/// D, A, I, F masked.
const DAIF: u64 = 0b1111 << 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// Synchronous external abort on a data access at `far`.
    DataAbort { far: u64 },
    /// Synchronous external abort on an instruction fetch at `far`.
    InstructionAbort { far: u64 },
    /// Undefined instruction.
    Undefined,
}

/// Returns the state after taking `what` to EL1, as the architecture would.
/// An exception from AArch32 or from a mode we do not model goes to EL1h
/// like one from EL1h (the guest cannot be in such a mode: HCR_EL2.RW=1).
pub fn inject(s: &El1ExceptionState, what: Injected) -> El1ExceptionState {
    let mode = s.pstate & 0b1111;
    let from_el0 = mode == M_EL0T;
    let vector_offset = match mode {
        M_EL1T => 0x000,
        M_EL1H => 0x200,
        M_EL0T => 0x400,
        _ => 0x200,
    };
    let il = 1u64 << 25;
    let (ec, iss, far) = match what {
        Injected::DataAbort { far } => (if from_el0 { 0x24 } else { 0x25 }, 0x10, Some(far)),
        Injected::InstructionAbort { far } => (if from_el0 { 0x20 } else { 0x21 }, 0x10, Some(far)),
        Injected::Undefined => (0x00, 0, None),
    };
    El1ExceptionState {
        pc: s.vbar_el1 + vector_offset,
        pstate: M_EL1H | DAIF,
        vbar_el1: s.vbar_el1,
        elr_el1: s.pc,
        spsr_el1: s.pstate,
        esr_el1: (ec << 26) | il | iss,
        far_el1: far.unwrap_or(s.far_el1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pstate: u64) -> El1ExceptionState {
        El1ExceptionState {
            pc: 0x4008_1234,
            pstate,
            vbar_el1: 0x4009_0000,
            far_el1: 7,
            ..Default::default()
        }
    }

    #[test]
    fn data_abort_from_el1h_goes_to_current_el_spx_vector() {
        let out = inject(
            &state(M_EL1H | DAIF),
            Injected::DataAbort { far: 0x1_0000_0000 },
        );
        assert_eq!(out.pc, 0x4009_0200);
        assert_eq!(out.elr_el1, 0x4008_1234);
        assert_eq!(out.spsr_el1, M_EL1H | DAIF);
        assert_eq!(out.esr_el1 >> 26, 0x25);
        assert_eq!(out.esr_el1 & 0x3f, 0x10);
        assert_eq!(out.far_el1, 0x1_0000_0000);
        assert_eq!(out.pstate, M_EL1H | DAIF);
    }

    #[test]
    fn data_abort_from_el0_uses_lower_el_vector_and_class() {
        let out = inject(&state(M_EL0T), Injected::DataAbort { far: 8 });
        assert_eq!(out.pc, 0x4009_0400);
        assert_eq!(out.esr_el1 >> 26, 0x24);
    }

    #[test]
    fn undefined_keeps_far_and_has_class_zero() {
        let out = inject(&state(M_EL1T), Injected::Undefined);
        assert_eq!(out.pc, 0x4009_0000);
        assert_eq!(out.esr_el1, 1 << 25);
        assert_eq!(out.far_el1, 7);
    }
}
