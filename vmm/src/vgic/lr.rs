//! List registers: the interface-neutral [`Lr`] and its GICv2 (GICH_LR<n>)
//! and GICv3 (ICH_LR<n>_EL2) encodings.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrState {
    #[default]
    Invalid,
    Pending,
    Active,
    PendingActive,
}

/// One list register, independent of its GICv2/GICv3 encoding.
/// `Lr::default()` is an empty (Invalid) list register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lr {
    pub intid: u32,
    pub state: LrState,
    pub priority: u8,
    pub group1: bool,
    pub hw: Option<u32>,
    /// Ask for a maintenance interrupt when the guest EOIs it (non-HW only).
    pub eoi_maint: bool,
    /// GICv2 SGIs: the vCPU that sent it (GICH_LR.CPUID, bits 12:10), which
    /// the guest reads in GICC_IAR and must write back to GICC_EOIR. 0 for
    /// everything else; GICv3 list registers have no such field (an SGI's
    /// source is not reported with affinity routing).
    pub source: u8,
}

impl Lr {
    fn state_bits(self) -> u64 {
        match self.state {
            LrState::Invalid => 0,
            LrState::Pending => 1,
            LrState::Active => 2,
            LrState::PendingActive => 3,
        }
    }

    fn state_from(bits: u64) -> LrState {
        match bits & 3 {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    /// ICH_LR<n>_EL2 encoding.
    pub fn encode_v3(self) -> u64 {
        let mut v =
            (self.intid as u64) | ((self.priority as u64) << 48) | (self.state_bits() << 62);
        if self.group1 {
            v |= 1 << 60;
        }
        match self.hw {
            Some(p) => v |= (1 << 61) | ((p as u64 & 0x3ff) << 32),
            None if self.eoi_maint => v |= 1 << 41,
            None => {}
        }
        v
    }

    pub fn decode_v3(v: u64) -> Lr {
        let hw = v & (1 << 61) != 0;
        Lr {
            intid: v as u32,
            state: Self::state_from(v >> 62),
            priority: (v >> 48) as u8,
            group1: v & (1 << 60) != 0,
            hw: hw.then_some(((v >> 32) & 0x3ff) as u32),
            eoi_maint: !hw && v & (1 << 41) != 0,
            source: 0,
        }
    }

    /// GICH_LR<n> encoding (5-bit priority).
    pub fn encode_v2(self) -> u32 {
        let mut v = (self.intid & 0x3ff)
            | (((self.priority as u32) >> 3) << 23)
            | ((self.state_bits() as u32) << 28);
        if self.group1 {
            v |= 1 << 30;
        }
        match self.hw {
            Some(p) => v |= (1 << 31) | ((p & 0x3ff) << 10),
            None => {
                // Without a physical link, bits 19:10 are EOI and CPUID.
                v |= (self.source as u32 & 7) << 10;
                if self.eoi_maint {
                    v |= 1 << 19;
                }
            }
        }
        v
    }

    pub fn decode_v2(v: u32) -> Lr {
        let hw = v & (1 << 31) != 0;
        Lr {
            intid: v & 0x3ff,
            state: Self::state_from((v >> 28) as u64),
            priority: (((v >> 23) & 0x1f) << 3) as u8,
            group1: v & (1 << 30) != 0,
            hw: hw.then_some((v >> 10) & 0x3ff),
            eoi_maint: !hw && v & (1 << 19) != 0,
            source: if hw { 0 } else { ((v >> 10) & 7) as u8 },
        }
    }
}
