//! Exceptions taken at EL2 itself are hypervisor bugs: report everything
//! useful and stop this CPU (the other CPUs and their guests keep running
//! as long as they do not need this one).
use super::regs::FaultFrame;
use crate::drivers::uart::EmergencyWriter;
use core::fmt::Write;
use vmm::esr::{ec_name, fsc_name, Esr};

#[no_mangle]
extern "C" fn el2_fault(frame: &FaultFrame, kind: u64) {
    let esr = crate::read_sysreg!(esr_el2);
    let far = crate::read_sysreg!(far_el2);
    let e = Esr(esr);
    let mut w = EmergencyWriter;
    let kind = ["synchronous", "IRQ", "FIQ", "SError"][kind as usize & 3];
    let _ = write!(
        w,
        "\r\n[hv] FATAL: unexpected exception at EL2 on cpu {}: {} ({}), ESR={:#x} (EC {:#x}: {}, ISS {:#x}{})",
        super::sysreg::cpu_index(),
        kind,
        if e.ec() == 0x25 || e.ec() == 0x21 { fsc_name(e.iss() as u8) } else { "-" },
        esr,
        e.ec(),
        ec_name(e.ec()),
        e.iss(),
        if e.il() { ", 32-bit insn" } else { "" },
    );
    let _ = write!(w, "\r\n");
    let _ = write!(
        w,
        "[hv]   ELR={:#018x} FAR={:#018x} SPSR={:#x}\r\n",
        frame.elr, far, frame.spsr
    );
    for row in 0..8 {
        let _ = write!(w, "[hv]  ");
        for col in 0..4 {
            let i = row * 4 + col;
            if i < 31 {
                let _ = write!(w, " x{:<2}={:#018x}", i, frame.x[i]);
            }
        }
        let _ = write!(w, "\r\n");
    }
    let _ = write!(w, "[hv] cpu {} stopped\r\n", super::sysreg::cpu_index());
}
