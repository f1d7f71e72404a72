//! What the CPU's ID registers promise, and an instruction abort.

use core::arch::asm;

use guests::println;
use guests::rt::{dtb, exception};

use crate::report::Tally;

/// Reads a system register by name (or `s<op0>_<op1>_c<n>_c<m>_<op2>`
/// encoding, for registers the assembler does not know without a feature
/// flag) under [`exception::catch`].
macro_rules! read_sysreg {
    ($reg:literal) => {
        exception::catch(|| {
            let v: u64;
            // SAFETY: a register read; should it trap, the fault is caught
            // and the read skipped.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
            v
        })
    };
}

fn id_register(value: Result<u64, exception::Fault>) -> u64 {
    // The ID registers themselves never fault (an UNDEF here would be
    // reported by the vector code and read as 0).
    value.unwrap_or(0)
}

fn field(reg: u64, shift: u32) -> u64 {
    (reg >> shift) & 0xf
}

/// Sets CPACR_EL1 bits (the EL1/EL0 enables of SVE, SME and FP).
fn cpacr_set(bits: u64) {
    // SAFETY: enabling EL1 access to an extension changes only which
    // instructions trap to EL1.
    unsafe {
        asm!("mrs {t}, cpacr_el1", "orr {t}, {t}, {b}", "msr cpacr_el1, {t}", "isb",
            t = out(reg) _, b = in(reg) bits, options(nomem, nostack));
    }
}

const CPACR_ZEN: u64 = 0b11 << 16;
const CPACR_SMEN: u64 = 0b11 << 24;

/// A feature the ID registers advertise, with a use of it that must not
/// fault if they do.
struct Feature {
    name: &'static str,
    advertised: bool,
    probe: fn() -> Result<u64, exception::Fault>,
}

fn probe_sve() -> Result<u64, exception::Fault> {
    cpacr_set(CPACR_ZEN);
    exception::catch(|| {
        let vl: u64;
        // SAFETY: RDVL x0, #1 (the SVE vector length in bytes) only reads.
        unsafe { asm!(".inst 0x04bf5020", out("x0") vl, options(nomem, nostack)) };
        vl
    })
}

fn probe_sme() -> Result<u64, exception::Fault> {
    cpacr_set(CPACR_SMEN);
    // SMCR_EL1 (CPTR_EL2.TSM traps it).
    read_sysreg!("s3_0_c1_c2_6")
}

fn probe_mte() -> Result<u64, exception::Fault> {
    // GCR_EL1 (HCR_EL2.ATA = 0 traps it).
    read_sysreg!("s3_0_c1_c0_6")
}

fn probe_pauth() -> Result<u64, exception::Fault> {
    // APIAKeyLo_EL1 (HCR_EL2.APK = 0 traps it).
    read_sysreg!("s3_0_c2_c1_0")
}

fn probe_pmu() -> Result<u64, exception::Fault> {
    // PMCR_EL0 (MDCR_EL2.TPM / TPMCR trap it).
    read_sysreg!("s3_3_c9_c12_0")
}

fn probe_spe() -> Result<u64, exception::Fault> {
    // PMSIDR_EL1 (MDCR_EL2.TPMS traps it).
    read_sysreg!("s3_0_c9_c9_7")
}

fn probe_trbe() -> Result<u64, exception::Fault> {
    // TRBIDR_EL1 (MDCR_EL2.E2TB traps it).
    read_sysreg!("s3_0_c9_c11_7")
}

fn probe_amu() -> Result<u64, exception::Fault> {
    // AMCFGR_EL0 (CPTR_EL2.TAM traps it).
    read_sysreg!("s3_3_c13_c2_1")
}

fn probe_trace() -> Result<u64, exception::Fault> {
    // TRCIDR0 (CPTR_EL2.TTA traps it).
    read_sysreg!("s2_1_c0_c8_7")
}

/// `id_registers_usable`: every feature in this list that ID_AA64PFR0/1,
/// ID_AA64ISAR1/2 or ID_AA64DFR0 advertise can be used (its probe does
/// not fault); a feature the VM is not given must read as absent. An INFO
/// line lists each as hidden, usable or faulting.
pub fn id_registers_usable(t: &mut Tally) {
    let name = "id_registers_usable";
    let pfr0 = id_register(read_sysreg!("id_aa64pfr0_el1"));
    let pfr1 = id_register(read_sysreg!("id_aa64pfr1_el1"));
    let isar1 = id_register(read_sysreg!("id_aa64isar1_el1"));
    // ID_AA64ISAR2_EL1 (Armv8.7; reads as 0 where not implemented).
    let isar2 = id_register(read_sysreg!("s3_0_c0_c6_2"));
    let dfr0 = id_register(read_sysreg!("id_aa64dfr0_el1"));
    let pmu_ver = field(dfr0, 8);
    let features = [
        Feature {
            name: "sve",
            advertised: field(pfr0, 32) != 0,
            probe: probe_sve,
        },
        Feature {
            name: "sme",
            advertised: field(pfr1, 24) != 0,
            probe: probe_sme,
        },
        Feature {
            // MTE2 and up: tag storage and its registers (MTE = 1 is the
            // EL0 instructions only).
            name: "mte",
            advertised: field(pfr1, 8) >= 2,
            probe: probe_mte,
        },
        Feature {
            name: "pauth",
            advertised: field(isar1, 4) != 0 || field(isar1, 8) != 0 || field(isar2, 12) != 0,
            probe: probe_pauth,
        },
        Feature {
            // 0xf is an IMPLEMENTATION DEFINED PMU, not PMUv3.
            name: "pmu",
            advertised: pmu_ver != 0 && pmu_ver != 0xf,
            probe: probe_pmu,
        },
        Feature {
            name: "spe",
            advertised: field(dfr0, 32) != 0,
            probe: probe_spe,
        },
        Feature {
            name: "trbe",
            advertised: field(dfr0, 44) != 0,
            probe: probe_trbe,
        },
        Feature {
            name: "amu",
            advertised: field(pfr0, 44) != 0,
            probe: probe_amu,
        },
        Feature {
            name: "trace",
            advertised: field(dfr0, 4) != 0,
            probe: probe_trace,
        },
    ];
    let mut broken = None;
    guests::print!("INFO id_registers:");
    for f in &features {
        if !f.advertised {
            guests::print!(" {}=hidden", f.name);
            continue;
        }
        match (f.probe)() {
            Ok(_) => guests::print!(" {}=usable", f.name),
            Err(fault) => {
                guests::print!(" {}=FAULT", f.name);
                broken.get_or_insert((f.name, fault));
            }
        }
    }
    println!("");
    match broken {
        None => t.pass(name),
        Some((feature, fault)) => t.fail(
            name,
            format_args!(
                "{feature} is advertised, but its use raised {} (ESR {:#x})",
                exception::class_name(fault.class()),
                fault.esr
            ),
        ),
    }
}

/// `instruction_abort`: a call to the first address past the guest's RAM
/// (nothing is there) raises an instruction abort at EL1 with FAR = that
/// address, which the guest handles (it returns to the caller).
pub fn instruction_abort(t: &mut Tally, dtb_addr: usize) {
    let name = "instruction_abort";
    let target = match dtb::parse(dtb_addr) {
        Ok(info) => info.ram_end(),
        Err(e) => return t.fail(name, format_args!("no RAM range in the device tree: {e}")),
    };
    let result = exception::catch(|| {
        // SAFETY: the call faults at its first instruction fetch; the
        // handler returns to x30 (see rt::exception). Should something be
        // there after all, it is called like a C function.
        unsafe { asm!("blr {}", in(reg) target, clobber_abi("C")) };
    });
    match result {
        Err(f) if f.class() == exception::EC_INSN_ABORT_SAME && f.far == target => {
            println!(
                "INFO instruction_abort: at {target:#x}: ESR {:#x} (IFSC {:#x})",
                f.esr,
                f.esr & 0x3f
            );
            t.pass(name)
        }
        Err(f) => t.fail(
            name,
            format_args!(
                "a call to {target:#x} (past RAM) raised {} (ESR {:#x}, FAR {:#x}); expected \
                 an instruction abort with FAR = {target:#x}",
                exception::class_name(f.class()),
                f.esr,
                f.far
            ),
        ),
        Ok(()) => t.fail(
            name,
            format_args!("a call to {target:#x} (past RAM) returned without a fault"),
        ),
    }
}
