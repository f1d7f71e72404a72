//! The fixed header in front of the device-tree body.
//!
//! ```text
//! offset size field
//!  0      8   magic        b"BLINKHO\0"
//!  8      2   major        u16 LE
//! 10      2   minor        u16 LE
//! 12      4   header_size  u32 LE  (32 in every version so far; body starts here)
//! 16      4   total_size   u32 LE  (header + body)
//! 20      4   body_crc     u32 LE  CRC-32 (IEEE) of bytes header_size..total_size
//! 24      4   reserved     0 when written, ignored when read
//! 28      4   header_crc   u32 LE  CRC-32 of bytes 0..header_size, this field as zero
//! ```
//!
//! This layout is frozen for all majors, so any image can tell a block of
//! another major from a corrupt one.

use alloc::vec::Vec;

use super::{HandoffError, MAX_TOTAL_SIZE};

pub const MAGIC: [u8; 8] = *b"BLINKHO\0";
/// Size of the header this image writes.
pub const HEADER_SIZE: usize = 32;
/// Larger header sizes (a later minor may append fields) are accepted up
/// to this; the body starts at `header_size`, 8-byte aligned.
const MAX_HEADER_SIZE: usize = 4096;
/// Smallest valid flattened device tree (its header).
const MIN_BODY: usize = 40;
const HEADER_CRC_OFF: usize = 28;

/// A validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub header_size: u32,
    pub total_size: u32,
    pub body_crc: u32,
    pub header_crc: u32,
}

fn le16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

fn le32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// CRC of a header (`bytes` is exactly the header), its CRC field as zero.
fn header_crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes.get(..HEADER_CRC_OFF).unwrap_or(&[]));
    h.update(&[0; 4]);
    h.update(bytes.get(HEADER_CRC_OFF + 4..).unwrap_or(&[]));
    h.finalize()
}

/// Reads and checks the header only (magic, sizes, header CRC), to learn
/// how many bytes the whole block takes before reading it. Does not look
/// at the major version or the body: [`super::decode`] does.
pub fn peek_header(bytes: &[u8]) -> Result<Header, HandoffError> {
    let m = bytes.len().min(MAGIC.len());
    if bytes.get(..m) != MAGIC.get(..m) {
        return Err(HandoffError::BadMagic);
    }
    if bytes.len() < HEADER_SIZE {
        return Err(HandoffError::Truncated {
            needed: HEADER_SIZE,
            available: bytes.len(),
        });
    }
    let h = Header {
        major: le16(bytes, 8),
        minor: le16(bytes, 10),
        header_size: le32(bytes, 12),
        total_size: le32(bytes, 16),
        body_crc: le32(bytes, 20),
        header_crc: le32(bytes, HEADER_CRC_OFF),
    };
    let hs = h.header_size as usize;
    if !(HEADER_SIZE..=MAX_HEADER_SIZE).contains(&hs) || !hs.is_multiple_of(8) {
        return Err(HandoffError::BadHeader(
            "header size not a multiple of 8 in 32..=4096",
        ));
    }
    let Some(hdr) = bytes.get(..hs) else {
        return Err(HandoffError::Truncated {
            needed: hs,
            available: bytes.len(),
        });
    };
    let computed = header_crc(hdr);
    if computed != h.header_crc {
        return Err(HandoffError::HeaderCrc {
            stored: h.header_crc,
            computed,
        });
    }
    let total = h.total_size as usize;
    if total < hs + MIN_BODY {
        return Err(HandoffError::BadHeader(
            "total size leaves no room for a device-tree body",
        ));
    }
    if total > MAX_TOTAL_SIZE {
        return Err(HandoffError::BadHeader("total size above the 16 MiB limit"));
    }
    Ok(h)
}

/// A block: header for `body` with the given versions, then `body`.
pub(crate) fn wrap(body: &[u8], major: u16, minor: u16) -> Result<Vec<u8>, HandoffError> {
    let total = HEADER_SIZE + body.len();
    if total > MAX_TOTAL_SIZE {
        return Err(HandoffError::Encode(alloc::format!(
            "block of {total} bytes exceeds the {MAX_TOTAL_SIZE}-byte limit"
        )));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&major.to_le_bytes());
    out.extend_from_slice(&minor.to_le_bytes());
    out.extend_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&crate::crc32::hash(body).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0; 4]);
    let crc = header_crc(&out);
    out[HEADER_CRC_OFF..].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    Ok(out)
}
