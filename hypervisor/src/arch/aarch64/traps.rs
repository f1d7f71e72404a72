//! What a guest may do without the hypervisor and what traps to EL2, as a
//! value: `TrapPolicy` turned into HCR_EL2, plus the EL2 controls every CPU
//! sets once (CPTR_EL2, CNTHCTL_EL2, VTCR_EL2). Named fields come from
//! `aarch64-cpu` where it models them; CPTR_EL2 and CNTHCTL_EL2's event
//! stream are not modelled there (v11), so their fields are declared here
//! with `tock-registers`.
use aarch64_cpu::registers::HCR_EL2;
use tock_registers::fields::FieldValue;
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// CPTR_EL2 with HCR_EL2.E2H = 0.
    CPTR [
        /// Trap SVE (and SVE state in FP/SIMD) to EL2.
        TZ OFFSET(8) NUMBITS(1) [],
        /// Trap FP/SIMD to EL2.
        TFP OFFSET(10) NUMBITS(1) [],
        /// Trap SME to EL2.
        TSM OFFSET(12) NUMBITS(1) [],
        /// Trap the trace system registers to EL2.
        TTA OFFSET(20) NUMBITS(1) [],
    ],
    CNTHCTL [
        /// EL1/EL0 may read the physical counter.
        EL1PCTEN OFFSET(0) NUMBITS(1) [],
        /// EL1/EL0 may use the physical timer.
        EL1PCEN OFFSET(1) NUMBITS(1) [],
        /// Event stream from the physical counter.
        EVNTEN OFFSET(2) NUMBITS(1) [],
        /// Which counter bit (0..15) triggers an event.
        EVNTI OFFSET(4) NUMBITS(4) [],
    ]
}

/// CPTR_EL2 bits that are RES1 with E2H = 0 (7:0, 9, 13).
const CPTR_RES1: u64 = 0xff | (1 << 9) | (1 << 13);

/// How much of the machine traps to EL2 while a guest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapPolicy {
    /// Physical IRQs, FIQs and SErrors go to EL2 (the guest gets virtual
    /// ones through the GIC's list registers).
    pub interrupts: bool,
    /// WFI traps, so a waiting vCPU gives up its physical CPU.
    pub wfi: bool,
    /// SMC traps (PSCI calls by SMC are answered by the hypervisor).
    pub smc: bool,
    /// Reads of the feature ID registers trap (TID3), so that features a
    /// VM is not given are hidden (`vmm::idregs`).
    pub id_regs: bool,
}

impl TrapPolicy {
    /// Every VM today: fully virtualized interrupts, WFI and SMC trapped,
    /// ID registers filtered.
    pub const VIRTUALIZED: TrapPolicy = TrapPolicy {
        interrupts: true,
        wfi: true,
        smc: true,
        id_regs: true,
    };

    /// HCR_EL2 while a guest runs under this policy: stage 2 on, set/way
    /// invalidation upgraded to clean+invalidate, broadcast of TLB and
    /// barrier operations to the inner shareable domain, EL1 in AArch64,
    /// pointer authentication left to the guest (its keys are switched with
    /// the vCPU, `pauth.rs`).
    pub fn hcr(self) -> u64 {
        let mut v: FieldValue<u64, HCR_EL2::Register> = HCR_EL2::VM::Enable
            + HCR_EL2::SWIO::SET
            + HCR_EL2::FB::SET
            + HCR_EL2::BSU::InnerShareable
            + HCR_EL2::RW::EL1IsAarch64
            + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2
            + HCR_EL2::API::DisableTrapPointerAuthInstToEl2;
        if self.interrupts {
            v +=
                HCR_EL2::IMO::EnableVirtualIRQ + HCR_EL2::FMO::EnableVirtualFIQ + HCR_EL2::AMO::SET;
        }
        if self.wfi {
            v += HCR_EL2::TWI::SET;
        }
        if self.smc {
            v += HCR_EL2::TSC::EnableTrapEl1SmcToEl2;
        }
        if self.id_regs {
            v += HCR_EL2::TID3::SET;
        }
        v.value
    }
}

/// CPTR_EL2 for every CPU: FP/SIMD not trapped (the hypervisor switches
/// that state itself), SVE, SME and trace trapped (not given to VMs, and
/// hidden from their ID registers).
pub fn cptr() -> u64 {
    CPTR_RES1 | (CPTR::TZ::SET + CPTR::TSM::SET + CPTR::TTA::SET + CPTR::TFP::CLEAR).value
}

/// MDCR_EL2 for every CPU, from its reset value `reset` (which holds HPMN,
/// the counters EL1 may use): with a PMU, every PMU register access traps
/// (TPM, TPMCR), so a guest that ignores the hidden PMUVer gets an UNDEF
/// rather than the physical counters of whoever ran before it.
pub fn mdcr(reset: u64) -> u64 {
    use aarch64_cpu::registers::MDCR_EL2;
    let pmuver = (crate::read_sysreg!(id_aa64dfr0_el1) >> 8) & 0xf;
    // 0: no PMU; 0xf: an IMPLEMENTATION DEFINED one (TPM is RES0 then).
    if pmuver == 0 || pmuver == 0xf {
        return reset;
    }
    reset | (MDCR_EL2::TPM::SET + MDCR_EL2::TPMCR::SET).value
}

/// `mrs` of feature ID register op0=3, op1=0, CRn=0, CRm=`$crm`, op2=`$op2`.
macro_rules! mrs_feature_id {
    ($crm:literal, $op2:literal) => {{
        let v: u64;
        // SAFETY: reading an ID register (op0=3, op1=0, CRn=0, CRm=1..7:
        // unallocated ones read as zero) has no side effects.
        unsafe {
            core::arch::asm!(
                concat!("mrs {}, s3_0_c0_c", $crm, "_", $op2),
                out(reg) v,
                options(nomem, nostack, preserves_flags)
            )
        };
        v
    }};
}

/// One function per CRm: `fn $name(op2) -> u64` (an `mrs` needs its
/// register name at build time).
macro_rules! feature_id_row {
    ($name:ident, $crm:literal) => {
        fn $name(op2: u8) -> u64 {
            match op2 {
                0 => mrs_feature_id!($crm, 0),
                1 => mrs_feature_id!($crm, 1),
                2 => mrs_feature_id!($crm, 2),
                3 => mrs_feature_id!($crm, 3),
                4 => mrs_feature_id!($crm, 4),
                5 => mrs_feature_id!($crm, 5),
                6 => mrs_feature_id!($crm, 6),
                _ => mrs_feature_id!($crm, 7),
            }
        }
    };
}

feature_id_row!(id_crm1, 1);
feature_id_row!(id_crm2, 2);
feature_id_row!(id_crm3, 3);
feature_id_row!(id_crm4, 4);
feature_id_row!(id_crm5, 5);
feature_id_row!(id_crm6, 6);
feature_id_row!(id_crm7, 7);

/// The hardware value of feature ID register op0=3, op1=0, CRn=0, `crm`
/// (1..7), `op2` (0..7); 0 outside that space.
pub fn read_feature_id(crm: u8, op2: u8) -> u64 {
    match crm {
        1 => id_crm1(op2),
        2 => id_crm2(op2),
        3 => id_crm3(op2),
        4 => id_crm4(op2),
        5 => id_crm5(op2),
        6 => id_crm6(op2),
        7 => id_crm7(op2),
        _ => 0,
    }
}

/// CNTHCTL_EL2 for every CPU: guests read the physical counter but do not
/// program the physical timer (they have the virtual one); an event stream
/// at counter bit 15 (every ~0.5 ms at 62.5 MHz) so that WFE-based waits
/// between CPUs cannot sleep forever.
pub fn cnthctl() -> u64 {
    (CNTHCTL::EL1PCTEN::SET + CNTHCTL::EVNTEN::SET + CNTHCTL::EVNTI.val(15)).value
}

/// EL2 controls every CPU needs before running guests.
pub fn init_el2() {
    crate::write_sysreg!(cptr_el2, cptr());
    crate::write_sysreg!(cnthctl_el2, cnthctl());
    crate::write_sysreg!(mdcr_el2, mdcr(crate::read_sysreg!(mdcr_el2)));
    crate::write_sysreg!(cntvoff_el2, 0);
    let pa_range = crate::read_sysreg!(id_aa64mmfr0_el1) & 0xf;
    crate::write_sysreg!(vtcr_el2, vmm::stage2::vtcr(pa_range));
    crate::write_sysreg!(hcr_el2, 0);
    super::sysreg::isb();
}
