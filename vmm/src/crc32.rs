//! CRC-32 (IEEE) of image slots and handoff blocks.
//!
//! `crc32fast` is the implementation, except in the hypervisor itself:
//! its target (`aarch64-unknown-none-softfloat`) is built with
//! `strict-align`, so crc32fast's reads of unaligned 8-byte words turn into
//! eight byte loads each, and checking a 360 KB image took ~2.4 instructions
//! per byte, ~0.9 ms of a guest's time right before every reload. Here the
//! aligned middle of the buffer is read as whole words and fed to the CRC32X
//! instruction, ~0.4 instructions per byte. Same polynomial, same result
//! (host tests compare with crc32fast; the hypervisor checks slots that the
//! host packaged with crc32fast).
#![allow(unsafe_code)] // the CRC32 intrinsics and align_to, each justified below

/// CRC-32 (IEEE 802.3, as zlib and crc32fast) of `bytes`.
pub fn hash(bytes: &[u8]) -> u32 {
    #[cfg(all(target_arch = "aarch64", target_feature = "crc"))]
    {
        aligned_words(bytes)
    }
    #[cfg(not(all(target_arch = "aarch64", target_feature = "crc")))]
    {
        crc32fast::hash(bytes)
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "crc"))]
fn aligned_words(bytes: &[u8]) -> u32 {
    use core::arch::aarch64::{__crc32b, __crc32d};
    // SAFETY: every bit pattern is a valid u64; align_to only reinterprets
    // the 8-byte aligned middle of the slice and leaves the rest as bytes.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    let mut c = !0u32;
    // SAFETY: the CRC32 instructions exist: this is compiled only with the
    // `crc` target feature, which the hypervisor's target enables for CPUs
    // that all have them (see .cargo/config.toml).
    #[allow(unused_unsafe)]
    unsafe {
        for &b in head {
            c = __crc32b(c, b);
        }
        // Little-endian words: CRC32X consumes the lowest-addressed byte
        // first, as the byte-wise definition does.
        for &w in words {
            c = __crc32d(c, u64::from_le(w));
        }
        for &b in tail {
            c = __crc32b(c, b);
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn known_value() {
        // The standard check value of CRC-32/IEEE.
        assert_eq!(hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(hash(b""), 0);
    }

    #[test]
    fn matches_crc32fast_at_every_alignment_and_length() {
        let data: alloc::vec::Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..16 {
            for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4000] {
                let s = &data[start..start + len];
                assert_eq!(hash(s), crc32fast::hash(s), "start {start} len {len}");
            }
        }
    }
}
