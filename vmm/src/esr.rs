//! Decoding of the syndrome (ESR_EL2) of an exit into something the exit
//! handlers can act on. `aarch64-cpu` names the exception classes; the ISS
//! layouts are decoded here (Arm ARM D24.2.40 "ESR_EL2").

/// Exception classes the hypervisor distinguishes.
pub mod ec {
    pub const UNKNOWN: u8 = 0x00;
    pub const WFX: u8 = 0x01;
    pub const FP_ASIMD: u8 = 0x07;
    pub const ILLEGAL_STATE: u8 = 0x0e;
    pub const SVC64: u8 = 0x15;
    pub const HVC64: u8 = 0x16;
    pub const SMC64: u8 = 0x17;
    pub const SYSREG: u8 = 0x18;
    pub const SVE: u8 = 0x19;
    pub const IABT_LOWER: u8 = 0x20;
    pub const IABT_CUR: u8 = 0x21;
    pub const PC_ALIGN: u8 = 0x22;
    pub const DABT_LOWER: u8 = 0x24;
    pub const DABT_CUR: u8 = 0x25;
    pub const SP_ALIGN: u8 = 0x26;
    pub const SERROR: u8 = 0x2f;
    pub const BRK64: u8 = 0x3c;
}

/// Human-readable name of an exception class, for reports.
pub fn ec_name(ec: u8) -> &'static str {
    match ec {
        ec::UNKNOWN => "unknown reason",
        ec::WFX => "WFI/WFE",
        ec::FP_ASIMD => "FP/SIMD access",
        ec::ILLEGAL_STATE => "illegal execution state",
        ec::SVC64 => "SVC",
        ec::HVC64 => "HVC",
        ec::SMC64 => "SMC",
        ec::SYSREG => "system register access",
        ec::SVE => "SVE access",
        ec::IABT_LOWER => "instruction abort from lower EL",
        ec::IABT_CUR => "instruction abort at EL2",
        ec::PC_ALIGN => "PC alignment fault",
        ec::DABT_LOWER => "data abort from lower EL",
        ec::DABT_CUR => "data abort at EL2",
        ec::SP_ALIGN => "SP alignment fault",
        ec::SERROR => "SError",
        ec::BRK64 => "BRK",
        _ => "other",
    }
}

/// Name of a data/instruction fault status code.
pub fn fsc_name(fsc: u8) -> &'static str {
    match fsc & 0x3f {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x08..=0x0b => "access flag fault",
        0x0c..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x21 => "alignment fault",
        0x30 => "TLB conflict",
        _ => "other fault",
    }
}

/// A data abort's ISS (valid instruction syndrome when `isv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// The syndrome describes the access (single load/store of a GPR).
    pub isv: bool,
    /// Access size in bytes (1, 2, 4, 8).
    pub size: u8,
    /// Sign-extend the loaded value.
    pub sign_extend: bool,
    /// Register transferred (31 = XZR/WZR for this purpose).
    pub reg: u8,
    /// Register is 64 bits wide (else 32).
    pub sixty_four: bool,
    /// Write (store) rather than read.
    pub write: bool,
    /// Fault happened on a stage-1 table walk.
    pub s1ptw: bool,
    /// Fault status code.
    pub fsc: u8,
}

/// A trapped MSR/MRS (EC 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
    pub reg: u8,
    /// MRS (read) rather than MSR (write).
    pub read: bool,
}

impl SysRegAccess {
    /// The register's encoding packed as op0:op1:CRn:CRm:op2, comparable with
    /// [`sysreg_id`].
    pub fn id(&self) -> u32 {
        sysreg_id(self.op0, self.op1, self.crn, self.crm, self.op2)
    }
}

pub const fn sysreg_id(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> u32 {
    ((op0 as u32) << 14)
        | ((op1 as u32) << 11)
        | ((crn as u32) << 7)
        | ((crm as u32) << 3)
        | op2 as u32
}

/// What a guest exit is, decoded from ESR_EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Wfi,
    Wfe,
    Hvc(u16),
    Smc(u16),
    SysReg(SysRegAccess),
    DataAbort(DataAbort),
    InstructionAbort {
        fsc: u8,
        s1ptw: bool,
    },
    /// Anything else: reported and contained.
    Other {
        ec: u8,
        iss: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Esr(pub u64);

impl Esr {
    pub fn ec(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }
    /// Trapped instruction was 32 bits long.
    pub fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }
    pub fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    pub fn decode(self) -> Exit {
        let iss = self.iss();
        match self.ec() {
            ec::WFX => {
                if iss & 1 == 0 {
                    Exit::Wfi
                } else {
                    Exit::Wfe
                }
            }
            ec::HVC64 => Exit::Hvc(iss as u16),
            ec::SMC64 => Exit::Smc(iss as u16),
            ec::SYSREG => Exit::SysReg(SysRegAccess {
                op0: ((iss >> 20) & 3) as u8,
                op2: ((iss >> 17) & 7) as u8,
                op1: ((iss >> 14) & 7) as u8,
                crn: ((iss >> 10) & 0xf) as u8,
                reg: ((iss >> 5) & 0x1f) as u8,
                crm: ((iss >> 1) & 0xf) as u8,
                read: iss & 1 != 0,
            }),
            ec::DABT_LOWER => Exit::DataAbort(DataAbort {
                isv: iss & (1 << 24) != 0,
                size: 1 << ((iss >> 22) & 3),
                sign_extend: iss & (1 << 21) != 0,
                reg: ((iss >> 16) & 0x1f) as u8,
                sixty_four: iss & (1 << 15) != 0,
                write: iss & (1 << 6) != 0,
                s1ptw: iss & (1 << 7) != 0,
                fsc: (iss & 0x3f) as u8,
            }),
            ec::IABT_LOWER => Exit::InstructionAbort {
                fsc: (iss & 0x3f) as u8,
                s1ptw: iss & (1 << 7) != 0,
            },
            ec => Exit::Other { ec, iss },
        }
    }
}

/// Intermediate physical address of a stage-2 fault, from HPFAR_EL2
/// (IPA[47:12] in bits [43:4]) and the page offset from FAR_EL2.
pub fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar >> 4) & 0xff_ffff_ffff) << 12 | (far & 0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esr(ec: u8, il: bool, iss: u32) -> Esr {
        Esr(((ec as u64) << 26) | ((il as u64) << 25) | iss as u64)
    }

    #[test]
    fn wfi_and_wfe() {
        assert_eq!(esr(ec::WFX, true, 0).decode(), Exit::Wfi);
        assert_eq!(esr(ec::WFX, true, 1).decode(), Exit::Wfe);
    }

    #[test]
    fn hvc_immediate() {
        let e = esr(ec::HVC64, true, 0x1234);
        assert_eq!(e.decode(), Exit::Hvc(0x1234));
        assert!(e.il());
        assert_eq!(e.ec(), 0x16);
    }

    #[test]
    fn data_abort_str_w1_word() {
        // `str w1, [x0]`: ISV, SAS=2 (word), SRT=1, SF=0, WnR, FSC=translation L3.
        let iss = (1 << 24) | (2 << 22) | (1 << 16) | (1 << 6) | 0x07;
        match esr(ec::DABT_LOWER, true, iss).decode() {
            Exit::DataAbort(d) => {
                assert!(d.isv && d.write && !d.sixty_four && !d.sign_extend && !d.s1ptw);
                assert_eq!((d.size, d.reg, d.fsc), (4, 1, 7));
                assert_eq!(fsc_name(d.fsc), "translation fault");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_abort_ldrsh_x3_sign_extended_load() {
        let iss = (1 << 24) | (1 << 22) | (1 << 21) | (3 << 16) | (1 << 15) | 0x06;
        match esr(ec::DABT_LOWER, true, iss).decode() {
            Exit::DataAbort(d) => {
                assert!(d.isv && !d.write && d.sixty_four && d.sign_extend);
                assert_eq!((d.size, d.reg), (2, 3));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_abort_without_syndrome() {
        match esr(ec::DABT_LOWER, true, 0x07).decode() {
            Exit::DataAbort(d) => assert!(!d.isv),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn msr_hcr_el2_style_sysreg_trap() {
        // MRS x5, CNTP_CTL_EL0: op0=3 op1=3 CRn=14 CRm=2 op2=1, read.
        let iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (5 << 5) | (2 << 1) | 1;
        match esr(ec::SYSREG, true, iss).decode() {
            Exit::SysReg(s) => {
                assert_eq!(
                    (s.op0, s.op1, s.crn, s.crm, s.op2, s.reg, s.read),
                    (3, 3, 14, 2, 1, 5, true)
                );
                assert_eq!(s.id(), sysreg_id(3, 3, 14, 2, 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_classes_are_other() {
        assert_eq!(
            esr(0x3f, true, 5).decode(),
            Exit::Other { ec: 0x3f, iss: 5 }
        );
        assert_eq!(ec_name(0x3f), "other");
    }

    #[test]
    fn ipa_from_hpfar() {
        assert_eq!(
            fault_ipa(0x0900_0000 >> 8, 0xffff_0000_0000_0018),
            0x0900_0018
        );
        assert_eq!(
            fault_ipa((0x1_0000_0000u64 >> 12) << 4, 0x123),
            0x1_0000_0123
        );
    }
}
