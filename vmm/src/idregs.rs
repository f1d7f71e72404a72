//! What a VM sees of the CPU's features: the ID registers it reads
//! (HCR_EL2.TID3 traps every read of the feature ID space to the
//! hypervisor) are the hardware's, with every feature the VM is not given
//! hidden. A feature the hypervisor traps without emulating must not be
//! advertised, or the guest uses it and takes an UNDEF: SVE and SME
//! (CPTR_EL2.TZ/TSM), MTE (HCR_EL2.ATA = 0), the PMU (MDCR_EL2.TPM/TPMCR),
//! the statistical profiling and trace extensions (not context-switched;
//! trace system registers trapped by CPTR_EL2.TTA), MPAM, nested
//! virtualization. Pointer authentication is given (its keys are switched
//! with the vCPU).
//!
//! Pure functions of (register, hardware value), tested on the host.

use crate::esr::sysreg_id;

/// A register of the feature ID space that TID3 traps: op0 = 3, op1 = 0,
/// CRn = 0, CRm = 1..7, any op2 (reserved encodings included; they read
/// as zero).
pub fn is_feature_id(op0: u8, op1: u8, crn: u8, crm: u8) -> bool {
    op0 == 3 && op1 == 0 && crn == 0 && (1..=7).contains(&crm)
}

/// The encodings (as `esr::sysreg_id`) of the registers whose value is
/// changed, for the callers' tables.
pub const ID_DFR0_EL1: u32 = sysreg_id(3, 0, 0, 1, 2);
pub const ID_AA64PFR0_EL1: u32 = sysreg_id(3, 0, 0, 4, 0);
pub const ID_AA64PFR1_EL1: u32 = sysreg_id(3, 0, 0, 4, 1);
pub const ID_AA64ZFR0_EL1: u32 = sysreg_id(3, 0, 0, 4, 4);
pub const ID_AA64SMFR0_EL1: u32 = sysreg_id(3, 0, 0, 4, 5);
pub const ID_AA64DFR0_EL1: u32 = sysreg_id(3, 0, 0, 5, 0);
pub const ID_AA64ISAR1_EL1: u32 = sysreg_id(3, 0, 0, 6, 1);
pub const ID_AA64ISAR2_EL1: u32 = sysreg_id(3, 0, 0, 6, 2);
pub const ID_AA64MMFR2_EL1: u32 = sysreg_id(3, 0, 0, 7, 2);

/// A 4-bit field at `shift`.
const fn field(shift: u32) -> u64 {
    0xf << shift
}

/// Fields cleared (feature "not implemented") in each register.
const HIDDEN: &[(u32, u64)] = &[
    // PerfMon: the PMU, AArch32 view.
    (ID_DFR0_EL1, field(24)),
    // SVE, SEL2 (secure EL2), MPAM, AMU (its counters are not switched
    // between VMs).
    (
        ID_AA64PFR0_EL1,
        field(32) | field(36) | field(40) | field(44),
    ),
    // MTE, SME, MPAM_frac, MTE_frac, NMI.
    (
        ID_AA64PFR1_EL1,
        field(8) | field(24) | field(16) | field(40) | field(36),
    ),
    // The SVE and SME feature registers describe features not given.
    (ID_AA64ZFR0_EL1, u64::MAX),
    (ID_AA64SMFR0_EL1, u64::MAX),
    // TraceVer, PMUVer, PMSVer (SPE), TraceFilt, TraceBuffer, MTPMU.
    (
        ID_AA64DFR0_EL1,
        field(4) | field(8) | field(32) | field(40) | field(44) | field(48),
    ),
    // NV: nested virtualization (a guest runs at EL1 only).
    (ID_AA64MMFR2_EL1, field(24)),
];

/// The value a VM reads from feature ID register `id` (an `esr::sysreg_id`
/// with [`is_feature_id`]) whose hardware value is `hw`.
pub fn guest_view(id: u32, hw: u64) -> u64 {
    HIDDEN
        .iter()
        .filter(|(r, _)| *r == id)
        .fold(hw, |v, (_, mask)| v & !mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ID_AA64PFR0_EL1 and ID_AA64PFR1_EL1 shaped like a CPU that has
    /// SVE, AMU, MTE and SME (QEMU `-cpu max` advertises all four).
    const MAX_PFR0: u64 = 0x1201_1111_1111_2222_u64 | (1 << 32) | (1 << 44);
    const MAX_PFR1: u64 = (3 << 8) | (2 << 24) | (1 << 4) | 1;

    #[test]
    fn feature_id_space_is_crm_1_to_7() {
        assert!(is_feature_id(3, 0, 0, 4));
        assert!(is_feature_id(3, 0, 0, 1));
        assert!(is_feature_id(3, 0, 0, 7));
        // MIDR/MPIDR (CRm 0) are not in TID3's group; other op1/CRn neither.
        assert!(!is_feature_id(3, 0, 0, 0));
        assert!(!is_feature_id(3, 1, 0, 4));
        assert!(!is_feature_id(3, 0, 1, 4));
        assert!(!is_feature_id(2, 0, 0, 4));
    }

    #[test]
    fn trapped_features_are_hidden() {
        let pfr0 = guest_view(ID_AA64PFR0_EL1, MAX_PFR0);
        assert_eq!((pfr0 >> 32) & 0xf, 0, "SVE");
        assert_eq!((pfr0 >> 44) & 0xf, 0, "AMU");
        // EL0..EL3, FP, AdvSIMD, GIC and the rest untouched.
        assert_eq!(pfr0 & 0xffff_ffff, MAX_PFR0 & 0xffff_ffff);
        let pfr1 = guest_view(ID_AA64PFR1_EL1, MAX_PFR1);
        assert_eq!((pfr1 >> 8) & 0xf, 0, "MTE");
        assert_eq!((pfr1 >> 24) & 0xf, 0, "SME");
        assert_eq!(pfr1 & 0xff, MAX_PFR1 & 0xff, "BT, SSBS kept");
        assert_eq!(guest_view(ID_AA64ZFR0_EL1, 0x0110_0000_0011_0011), 0);
        assert_eq!(guest_view(ID_AA64SMFR0_EL1, u64::MAX), 0);
        const DFR0: u64 = 0x0000_0001_f0f1_0706;
        let dfr0 = guest_view(ID_AA64DFR0_EL1, DFR0);
        assert_eq!((dfr0 >> 8) & 0xf, 0, "PMUVer");
        assert_eq!((dfr0 >> 32) & 0xf, 0, "PMSVer");
        assert_eq!((dfr0 >> 4) & 0xf, 0, "TraceVer");
        // DebugVer, BRPs, WRPs, CTX_CMPs stay.
        assert_eq!(dfr0 & 0xf, 6);
        assert_eq!((dfr0 >> 12) & 0xf_ffff, (DFR0 >> 12) & 0xf_ffff);
        assert_eq!((guest_view(ID_DFR0_EL1, 0x0300_0000 | 0x66) >> 24) & 0xf, 0);
        // Pointer authentication is given: ISAR1/ISAR2 pass through.
        const ISAR1: u64 = 0x0011_2110_0121_1151;
        assert_eq!(guest_view(ID_AA64ISAR1_EL1, ISAR1), ISAR1);
        assert_eq!(guest_view(ID_AA64ISAR2_EL1, 0x5100), 0x5100);
    }

    #[test]
    fn other_registers_pass_through() {
        let isar0 = sysreg_id(3, 0, 0, 6, 0);
        assert_eq!(
            guest_view(isar0, 0x1221_1111_2111_2120),
            0x1221_1111_2111_2120
        );
        let mmfr0 = sysreg_id(3, 0, 0, 7, 0);
        assert_eq!(
            guest_view(mmfr0, 0x0000_0000_0010_1125),
            0x0000_0000_0010_1125
        );
    }
}
