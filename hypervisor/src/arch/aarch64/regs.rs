//! Register state shared with the assembly in `vectors.S`.

/// General-purpose state of a guest vCPU, saved and restored by
/// `enter_guest`/`guest_exit` on every exit. Layout is fixed by the assembly.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegs {
    pub x: [u64; 31],
    pub pc: u64,
    pub pstate: u64,
}

impl GuestRegs {
    /// Whether the guest runs with IRQs masked (PSTATE.I), e.g. inside
    /// its interrupt handler.
    pub fn irqs_masked(&self) -> bool {
        self.pstate & (1 << 7) != 0
    }
}

/// Frame of a fault taken at EL2 itself (see `fault_entry` in vectors.S).
#[repr(C)]
pub struct FaultFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// Why `enter_guest` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    Sync,
    Irq,
    Fiq,
    SError,
}

impl ExitKind {
    pub fn from_raw(v: u64) -> Self {
        match v {
            0 => ExitKind::Sync,
            1 => ExitKind::Irq,
            2 => ExitKind::Fiq,
            _ => ExitKind::SError,
        }
    }
}

extern "C" {
    fn enter_guest(regs: *mut GuestRegs) -> u64;
}

/// Run the guest until its next exit.
pub fn run_guest(regs: &mut GuestRegs) -> ExitKind {
    // SAFETY: `enter_guest` saves/restores all callee-saved registers and
    // the stack pointer per the AAPCS, touches only `*regs` in memory, and
    // the caller has loaded the vCPU's EL1/EL2 context for this guest.
    ExitKind::from_raw(unsafe { enter_guest(regs) })
}
