//! Image chunks as LZ4 blocks on the wire, so fewer bytes cross the line
//! than the image holds.
//!
//! Each chunk is compressed on its own (`lz4_flex`'s block format, safe
//! code only, no_std): the device decompresses a chunk into its place in
//! the staging slot without any state from other chunks, so chunks may
//! still arrive in any order and be resent one by one. A chunk that does
//! not shrink is sent raw. LZ4 rather than DEFLATE (`miniz_oxide`): its
//! decoder needs no tables or window beyond the output chunk and is fast
//! enough to keep up with any UART, at some cost in ratio.
use alloc::vec::Vec;

/// The LZ4 block of `raw`, or `None` when it would not be smaller.
pub fn compress_chunk(raw: &[u8]) -> Option<Vec<u8>> {
    let c = lz4_flex::block::compress(raw);
    (c.len() < raw.len()).then_some(c)
}

/// A block that is not LZ4, or does not fill its chunk exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadBlock;

/// Decompresses one chunk into `out`, which must be filled exactly (the
/// chunk's length is known from its index).
pub fn decompress_chunk(block: &[u8], out: &mut [u8]) -> Result<(), BadBlock> {
    match lz4_flex::block::decompress_into(block, out) {
        Ok(n) if n == out.len() => Ok(()),
        _ => Err(BadBlock),
    }
}

/// Bytes of payload an image takes on the wire when cut into chunks of
/// `chunk_size`, each compressed if that helps.
pub fn compressed_payload_len(image: &[u8], chunk_size: usize) -> usize {
    image
        .chunks(chunk_size)
        .map(|c| compress_chunk(c).map_or(c.len(), |b| b.len()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_garbage_is_refused() {
        let raw: Vec<u8> = (0..4096u32).map(|i| (i / 64) as u8).collect();
        let c = compress_chunk(&raw).expect("repetitive data shrinks");
        assert!(c.len() < raw.len() / 4);
        let mut out = alloc::vec![0u8; 4096];
        decompress_chunk(&c, &mut out).unwrap();
        assert_eq!(out, raw);
        // Too short an output, garbage input: errors, no panic.
        assert!(decompress_chunk(&c, &mut [0u8; 100]).is_err());
        assert!(decompress_chunk(&[0xff; 50], &mut out).is_err());
        // Random data does not shrink and is sent raw.
        let mut x = 99u32;
        let rnd: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(compress_chunk(&rnd).is_none());
    }

    /// The ratio on the real hypervisor image, when one has been built
    /// (`cargo xtask build`); skipped with a note otherwise.
    #[test]
    fn ratio_on_the_hypervisor_image() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/images/hypervisor.bin"
        );
        let Ok(image) = std::fs::read(path) else {
            std::println!("skipped: no {path} (run `cargo xtask build` first)");
            return;
        };
        for chunk in [1024usize, 4096] {
            let wire = compressed_payload_len(&image, chunk);
            std::println!(
                "hypervisor.bin: {} bytes, {} bytes as {}-byte LZ4 chunks: {:.1}% of the image",
                image.len(),
                wire,
                chunk,
                100.0 * wire as f64 / image.len() as f64
            );
            assert!(wire < image.len());
        }
    }
}
