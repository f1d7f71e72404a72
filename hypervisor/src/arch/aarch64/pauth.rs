//! The pointer authentication keys of a vCPU: five 128-bit keys (APIA,
//! APIB, APDA, APDB, APGA), each a Lo/Hi pair of EL1 registers the guest
//! programs directly (HCR_EL2.APK = API = 1). They are switched with the
//! vCPU, so VMs sharing a physical CPU never sign or authenticate with each
//! other's keys nor read them, and carried across a warm reload as optional
//! system register entries (only those not zero; absent means zero), which
//! an older image ignores. On a CPU without pointer authentication there is
//! nothing to switch (and the registers do not exist).

/// The ten key registers of one vCPU, in [`NAMES`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PauthKeys {
    pub keys: [u64; 10],
}

/// Register names, as carried in a handoff block.
const NAMES: [&str; 10] = [
    "apiakeylo_el1",
    "apiakeyhi_el1",
    "apibkeylo_el1",
    "apibkeyhi_el1",
    "apdakeylo_el1",
    "apdakeyhi_el1",
    "apdbkeylo_el1",
    "apdbkeyhi_el1",
    "apgakeylo_el1",
    "apgakeyhi_el1",
];

/// Whether this CPU implements pointer authentication: any of APA, API,
/// GPA, GPI (ID_AA64ISAR1_EL1) or APA3, GPA3 (ID_AA64ISAR2_EL1, which
/// reads as zero before Armv8.7).
pub fn implemented() -> bool {
    let isar1 = crate::read_sysreg!(id_aa64isar1_el1);
    let isar2 = crate::read_sysreg!("s3_0_c0_c6_2");
    isar1 & 0xff00_0ff0 != 0 || isar2 & 0xff00 != 0
}

impl PauthKeys {
    /// Read the loaded vCPU's keys (nothing on a CPU without them).
    pub fn save(&mut self) {
        if !implemented() {
            return;
        }
        // The encodings: the assembler knows the names only with +pauth.
        self.keys = [
            crate::read_sysreg!("s3_0_c2_c1_0"),
            crate::read_sysreg!("s3_0_c2_c1_1"),
            crate::read_sysreg!("s3_0_c2_c1_2"),
            crate::read_sysreg!("s3_0_c2_c1_3"),
            crate::read_sysreg!("s3_0_c2_c2_0"),
            crate::read_sysreg!("s3_0_c2_c2_1"),
            crate::read_sysreg!("s3_0_c2_c2_2"),
            crate::read_sysreg!("s3_0_c2_c2_3"),
            crate::read_sysreg!("s3_0_c2_c3_0"),
            crate::read_sysreg!("s3_0_c2_c3_1"),
        ];
    }

    /// Load these keys for the vCPU being loaded.
    pub fn restore(&self) {
        if !implemented() {
            return;
        }
        let k = &self.keys;
        crate::write_sysreg!("s3_0_c2_c1_0", k[0]);
        crate::write_sysreg!("s3_0_c2_c1_1", k[1]);
        crate::write_sysreg!("s3_0_c2_c1_2", k[2]);
        crate::write_sysreg!("s3_0_c2_c1_3", k[3]);
        crate::write_sysreg!("s3_0_c2_c2_0", k[4]);
        crate::write_sysreg!("s3_0_c2_c2_1", k[5]);
        crate::write_sysreg!("s3_0_c2_c2_2", k[6]);
        crate::write_sysreg!("s3_0_c2_c2_3", k[7]);
        crate::write_sysreg!("s3_0_c2_c3_0", k[8]);
        crate::write_sysreg!("s3_0_c2_c3_1", k[9]);
    }

    /// (name, value) of every key register that is not zero.
    pub fn named(&self) -> alloc::vec::Vec<(alloc::string::String, u64)> {
        NAMES
            .iter()
            .zip(self.keys)
            .filter(|&(_, v)| v != 0)
            .map(|(n, v)| (alloc::string::String::from(*n), v))
            .collect()
    }

    /// From a handoff block's (name, value) system register entries;
    /// registers not given are zero.
    pub fn from_entries<'a>(entries: impl Iterator<Item = (&'a str, u64)>) -> Self {
        let mut p = PauthKeys::default();
        for (name, v) in entries {
            if let Some(i) = NAMES.iter().position(|&n| n == name) {
                p.keys[i] = v;
            }
        }
        p
    }
}
