//! The CPU's random number generator, FEAT_RNG (`RNDR`), for the
//! maintenance link's challenge nonces (services/access.rs). Where the CPU
//! has none, the caller falls back to counter jitter and says so.
use crate::read_sysreg;

/// Whether this CPU implements `RNDR` (ID_AA64ISAR0_EL1.RNDR, bits
/// [63:60], is 1 or more). QEMU's `-cpu max` has it, cortex-a72 not.
pub fn has_rndr() -> bool {
    (read_sysreg!(id_aa64isar0_el1) >> 60) & 0xf >= 1
}

/// 64 random bits from `RNDR`, or `None` when the generator could not
/// deliver in reasonable time (the architecture allows that; the caller
/// tries again or gives up). Only call it when [`has_rndr`] says so: on a
/// CPU without FEAT_RNG the encoding is undefined.
pub fn rndr() -> Option<u64> {
    let v: u64;
    let ok: u64;
    // SAFETY: RNDR (S3_3_C2_C4_0) is readable at every EL when FEAT_RNG is
    // implemented (the caller checked); it touches no memory and only sets
    // NZCV (Z on failure), which the asm declares it clobbers by not
    // promising to preserve flags.
    unsafe {
        core::arch::asm!(
            "mrs {v}, s3_3_c2_c4_0",
            "cset {ok}, ne",
            v = out(reg) v,
            ok = out(reg) ok,
            options(nomem, nostack)
        )
    };
    (ok != 0).then_some(v)
}
