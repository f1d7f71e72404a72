//! The signature block of an image slot: who built the image, for which
//! boards, how new it is, and an ed25519 signature over all of it.
//!
//! It wraps `image_slot` rather than replacing it: a slot keeps its
//! format-2 header (magic, CRC-32s, version text, board) at offset 0, read
//! by every image that exists, and the signature block sits in the unused
//! rest of the header page, at [`SIGNED_OFF`]. Old images ignore it; the
//! CRC-32s keep guarding against torn copies, the block against forgery.
//! The signature covers the slot header's 128 bytes too, so the version
//! text `images` shows is authenticated, and binds the image by its
//! SHA-256 and length.
//!
//! ```text
//! offset size field (within the block; little-endian)
//!   0     8   magic            b"BLINKSIG"
//!   8     4   format           u32, 1
//!  12     4   flags            bit 0: signed with a development key
//!  16     6   version          u16 major, minor, patch
//!  22     2   reserved         0
//!  24     4   security_counter u32: refused below the running image's
//!  28     4   board_count      1..=4
//!  32   128   boards           4 x 32 bytes, UTF-8, NUL padded, unused all zero
//! 160     8   image_len        u64, equals the slot header's
//! 168    32   image_sha256     of the image bytes (slot offset 4096 on)
//! 200    32   public_key       ed25519, the signer's
//! 232    64   signature        ed25519 over slot[0..128] ++ block[0..232]
//! ```
//!
//! Checks run in an order that trusts nothing before the signature: parse,
//! the key is one the caller trusts, the signature, then the signed facts
//! (board, security counter, length, digest).
use crate::image_slot::{self, SlotError, SlotImage, HEADER_SIZE};
use alloc::string::String;
use alloc::vec::Vec;
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use sha2::{Digest, Sha256};

/// Where the block sits in a slot: right after image_slot's fixed header.
pub const SIGNED_OFF: usize = 128;
pub const MAGIC: [u8; 8] = *b"BLINKSIG";
pub const FORMAT: u32 = 1;
pub const BLOCK_LEN: usize = 296;
pub const MAX_BOARDS: usize = 4;
pub const BOARD_LEN: usize = 32;
const SIGNED_LEN: usize = 232;
const FLAG_DEVELOPMENT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the signer states about the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub version: Version,
    pub security_counter: u32,
    pub boards: Vec<String>,
    /// Signed with a development key (said in `status`; a production
    /// image should trust no such key).
    pub development: bool,
}

/// A public key the running image accepts, and whether it is a
/// development key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedKey {
    pub public: [u8; 32],
    pub development: bool,
}

/// What the running image requires of an image it is to run.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub trusted: &'a [TrustedKey],
    /// This board's name.
    pub board: &'a str,
    /// The running image's security counter.
    pub min_security_counter: u32,
}

/// A slot whose block was read (and, from `verify`, checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedImage {
    pub slot: SlotImage,
    pub meta: Meta,
    pub public_key: [u8; 32],
    pub image_sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The slot header itself is refused.
    Slot(SlotError),
    /// No signature block (an unsigned image).
    NotSigned,
    BadFormat(u32),
    /// A field out of its range (which one).
    Malformed(&'static str),
    /// Signed by a key this image does not trust.
    UnknownKey,
    BadSignature,
    WrongBoard {
        boards: Vec<String>,
        this: String,
    },
    CounterTooLow {
        image: u32,
        running: u32,
    },
    LengthMismatch {
        signed: u64,
        slot: u64,
    },
    DigestMismatch,
    /// `sign`: the seed or the metadata cannot be used.
    CannotSign(&'static str),
}

impl core::fmt::Display for SignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SignError::Slot(e) => write!(f, "{e}"),
            SignError::NotSigned => write!(f, "the image is not signed"),
            SignError::BadFormat(v) => write!(f, "unknown signature block format {v}"),
            SignError::Malformed(what) => write!(f, "malformed signature block: {what}"),
            SignError::UnknownKey => write!(f, "signed with a key this image does not trust"),
            SignError::BadSignature => {
                write!(f, "bad signature (the image or its header was changed)")
            }
            SignError::WrongBoard { boards, this } => {
                write!(f, "image for {}, this board is '{this}'", boards.join(", "))
            }
            SignError::CounterTooLow { image, running } => write!(
                f,
                "security counter {image} is below the running image's {running} (a downgrade)"
            ),
            SignError::LengthMismatch { signed, slot } => write!(
                f,
                "signed length {signed} differs from the slot header's {slot}"
            ),
            SignError::DigestMismatch => {
                write!(f, "the image's SHA-256 differs from the signed one")
            }
            SignError::CannotSign(why) => write!(f, "cannot sign: {why}"),
        }
    }
}

impl SignError {
    /// How an upload refused for this is answered on the link (the
    /// device's log carries the full sentence).
    pub fn upload_error(&self) -> crate::maint::proto::UploadError {
        use crate::maint::proto::UploadError as U;
        match self {
            SignError::NotSigned => U::NotSigned,
            SignError::UnknownKey => U::UnknownKey,
            SignError::BadSignature => U::BadSignature,
            SignError::WrongBoard { .. } => U::WrongBoard,
            SignError::CounterTooLow { image, running } => U::CounterTooLow {
                image: *image,
                running: *running,
            },
            SignError::Slot(_)
            | SignError::BadFormat(_)
            | SignError::Malformed(_)
            | SignError::LengthMismatch { .. }
            | SignError::DigestMismatch
            | SignError::CannotSign(_) => U::BadImage,
        }
    }
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// A NUL-padded UTF-8 field, as image_slot's (None if malformed).
fn text(field: &[u8]) -> Option<&str> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    if field[len..].iter().any(|&b| b != 0) {
        return None;
    }
    core::str::from_utf8(&field[..len]).ok()
}

/// The public half of the key pair `seed` makes.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    *KeyPair::from_seed(Seed::new(*seed)).pk
}

/// Writes the signature block into `slot`, a slot's content as
/// `image_slot::package` made it (header page, then the image).
pub fn sign(slot: &mut [u8], meta: &Meta, seed: &[u8; 32]) -> Result<(), SignError> {
    let s = image_slot::read_header(slot).map_err(SignError::Slot)?;
    if meta.boards.is_empty() || meta.boards.len() > MAX_BOARDS {
        return Err(SignError::CannotSign("1 to 4 boards"));
    }
    if meta
        .boards
        .iter()
        .any(|b| b.is_empty() || b.len() > BOARD_LEN || b.contains('\0'))
    {
        return Err(SignError::CannotSign(
            "board names are 1 to 32 bytes without NUL",
        ));
    }
    let kp = KeyPair::from_seed(Seed::new(*seed));
    let image = &slot[HEADER_SIZE..HEADER_SIZE + s.image_len as usize];
    let sha = Sha256::digest(image);
    let mut b = [0u8; BLOCK_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    let flags = if meta.development {
        FLAG_DEVELOPMENT
    } else {
        0
    };
    b[12..16].copy_from_slice(&flags.to_le_bytes());
    b[16..18].copy_from_slice(&meta.version.major.to_le_bytes());
    b[18..20].copy_from_slice(&meta.version.minor.to_le_bytes());
    b[20..22].copy_from_slice(&meta.version.patch.to_le_bytes());
    b[24..28].copy_from_slice(&meta.security_counter.to_le_bytes());
    b[28..32].copy_from_slice(&(meta.boards.len() as u32).to_le_bytes());
    for (i, name) in meta.boards.iter().enumerate() {
        let o = 32 + i * BOARD_LEN;
        b[o..o + name.len()].copy_from_slice(name.as_bytes());
    }
    b[160..168].copy_from_slice(&s.image_len.to_le_bytes());
    b[168..200].copy_from_slice(&sha);
    b[200..232].copy_from_slice(&kp.pk[..]);
    let sig = kp
        .sk
        .sign(message(&slot[..SIGNED_OFF], &b[..SIGNED_LEN]), None);
    b[232..296].copy_from_slice(&sig[..]);
    slot[SIGNED_OFF..SIGNED_OFF + BLOCK_LEN].copy_from_slice(&b);
    Ok(())
}

fn message(header: &[u8], block: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(header.len() + block.len());
    m.extend_from_slice(header);
    m.extend_from_slice(block);
    m
}

/// Reads the slot header and the block without any cryptography (for
/// listing what a slot claims); `verify` is the check.
pub fn read(slot: &[u8]) -> Result<SignedImage, SignError> {
    let s = image_slot::read_header(slot).map_err(SignError::Slot)?;
    // read_header has checked the slot holds its whole header page.
    let b = &slot[SIGNED_OFF..SIGNED_OFF + BLOCK_LEN];
    if b[0..8] != MAGIC {
        return Err(SignError::NotSigned);
    }
    let format = le32(b, 8);
    if format != FORMAT {
        return Err(SignError::BadFormat(format));
    }
    let flags = le32(b, 12);
    if flags & !FLAG_DEVELOPMENT != 0 {
        return Err(SignError::Malformed("unknown flags"));
    }
    if le16(b, 22) != 0 {
        return Err(SignError::Malformed("reserved bytes"));
    }
    let count = le32(b, 28) as usize;
    if count == 0 || count > MAX_BOARDS {
        return Err(SignError::Malformed("board count"));
    }
    let mut boards = Vec::new();
    for i in 0..MAX_BOARDS {
        let field = &b[32 + i * BOARD_LEN..32 + (i + 1) * BOARD_LEN];
        let name = text(field).ok_or(SignError::Malformed("board name"))?;
        if (i < count) == name.is_empty() {
            return Err(SignError::Malformed("board names"));
        }
        if i < count {
            boards.push(String::from(name));
        }
    }
    let mut image_sha256 = [0u8; 32];
    image_sha256.copy_from_slice(&b[168..200]);
    let mut public_key = [0u8; 32];
    public_key.copy_from_slice(&b[200..232]);
    let signed_len = u64::from_le_bytes(b[160..168].try_into().unwrap());
    if signed_len != s.image_len {
        return Err(SignError::LengthMismatch {
            signed: signed_len,
            slot: s.image_len,
        });
    }
    Ok(SignedImage {
        slot: s,
        meta: Meta {
            version: Version {
                major: le16(b, 16),
                minor: le16(b, 18),
                patch: le16(b, 20),
            },
            security_counter: le32(b, 24),
            boards,
            development: flags & FLAG_DEVELOPMENT != 0,
        },
        public_key,
        image_sha256,
    })
}

/// Everything a running image checks before it runs an image it was given.
pub fn verify(slot: &[u8], policy: &Policy<'_>) -> Result<SignedImage, SignError> {
    let img = read(slot)?;
    let key = policy
        .trusted
        .iter()
        .find(|k| k.public == img.public_key)
        .ok_or(SignError::UnknownKey)?;
    let b = &slot[SIGNED_OFF..SIGNED_OFF + BLOCK_LEN];
    let pk = PublicKey::new(img.public_key);
    let sig = Signature::from_slice(&b[232..296]).map_err(|_| SignError::BadSignature)?;
    pk.verify(message(&slot[..SIGNED_OFF], &b[..SIGNED_LEN]), &sig)
        .map_err(|_| SignError::BadSignature)?;
    // Signed facts from here on.
    if img.meta.development != key.development {
        return Err(SignError::Malformed(
            "development flag disagrees with the key",
        ));
    }
    if !img.meta.boards.iter().any(|b| b == policy.board) {
        return Err(SignError::WrongBoard {
            boards: img.meta.boards.clone(),
            this: String::from(policy.board),
        });
    }
    if img.meta.security_counter < policy.min_security_counter {
        return Err(SignError::CounterTooLow {
            image: img.meta.security_counter,
            running: policy.min_security_counter,
        });
    }
    let image = &slot[HEADER_SIZE..HEADER_SIZE + img.slot.image_len as usize];
    if Sha256::digest(image)[..] != img.image_sha256[..] {
        return Err(SignError::DigestMismatch);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const SEED: [u8; 32] = [7; 32];
    const OTHER: [u8; 32] = [8; 32];

    fn meta() -> Meta {
        Meta {
            version: Version {
                major: 0,
                minor: 2,
                patch: 0,
            },
            security_counter: 5,
            boards: vec![String::from("qemu-virt"), String::from("raspi4b")],
            development: true,
        }
    }

    fn signed(seed: &[u8; 32]) -> Vec<u8> {
        let image: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
        let mut slot = image_slot::package("blink 0.2.0", "qemu-virt", &image);
        sign(&mut slot, &meta(), seed).unwrap();
        slot
    }

    fn keys() -> [TrustedKey; 1] {
        [TrustedKey {
            public: public_key(&SEED),
            development: true,
        }]
    }

    fn policy(keys: &[TrustedKey]) -> Policy<'_> {
        Policy {
            trusted: keys,
            board: "raspi4b",
            min_security_counter: 5,
        }
    }

    #[test]
    fn a_signed_image_verifies_and_old_readers_still_read_it() {
        let slot = signed(&SEED);
        let k = keys();
        let v = verify(&slot, &policy(&k)).unwrap();
        assert_eq!(v.meta, meta());
        assert_eq!(v.slot.version, "blink 0.2.0");
        // The format-2 header is untouched: today's hypervisor lists it.
        assert_eq!(image_slot::read_header(&slot).unwrap(), v.slot);
    }

    #[test]
    fn each_refusal_is_typed() {
        let k = keys();
        let p = policy(&k);
        let slot = signed(&SEED);
        // Another key.
        assert_eq!(verify(&signed(&OTHER), &p), Err(SignError::UnknownKey));
        // A changed image byte: the signed digest no longer matches.
        let mut t = slot.clone();
        t[HEADER_SIZE + 5] ^= 1;
        assert_eq!(verify(&t, &p), Err(SignError::DigestMismatch));
        // The same with the slot's CRCs fixed up, as an attacker would.
        let mut t = slot.clone();
        t[HEADER_SIZE + 5] ^= 1;
        let img = t[HEADER_SIZE..].to_vec();
        t[..128].copy_from_slice(&image_slot::header("blink 0.2.0", "qemu-virt", &img));
        assert_eq!(verify(&t, &p), Err(SignError::BadSignature));
        // A changed security counter (signed field).
        let mut t = slot.clone();
        t[SIGNED_OFF + 24] = 9;
        assert_eq!(verify(&t, &p), Err(SignError::BadSignature));
        // A changed signature.
        let mut t = slot.clone();
        t[SIGNED_OFF + 240] ^= 1;
        assert_eq!(verify(&t, &p), Err(SignError::BadSignature));
        // Wrong board, counter below the running one's.
        let other_board = Policy {
            board: "rock5b",
            ..p
        };
        assert!(matches!(
            verify(&slot, &other_board),
            Err(SignError::WrongBoard { .. })
        ));
        let newer = Policy {
            min_security_counter: 6,
            ..p
        };
        assert_eq!(
            verify(&slot, &newer),
            Err(SignError::CounterTooLow {
                image: 5,
                running: 6
            })
        );
        // Unsigned, truncated, garbage.
        let plain = image_slot::package("v", "qemu-virt", &[1; 100]);
        assert_eq!(verify(&plain, &p), Err(SignError::NotSigned));
        assert!(matches!(verify(&slot[..100], &p), Err(SignError::Slot(_))));
        assert!(matches!(
            verify(&[0u8; 5000], &p),
            Err(SignError::Slot(SlotError::Empty))
        ));
        let mut t = slot.clone();
        t[SIGNED_OFF + 28] = 0;
        assert_eq!(verify(&t, &p), Err(SignError::Malformed("board count")));
        // A key trusted as production, image flagged development.
        let prod = [TrustedKey {
            public: public_key(&SEED),
            development: false,
        }];
        assert!(matches!(
            verify(&slot, &policy(&prod)),
            Err(SignError::Malformed(_))
        ));
    }

    #[test]
    fn sign_refuses_bad_metadata() {
        let mut slot = image_slot::package("v", "qemu-virt", &[1; 100]);
        let mut m = meta();
        m.boards.clear();
        assert!(matches!(
            sign(&mut slot, &m, &SEED),
            Err(SignError::CannotSign(_))
        ));
        m.boards = vec![String::from("x").repeat(33)];
        assert!(matches!(
            sign(&mut slot, &m, &SEED),
            Err(SignError::CannotSign(_))
        ));
    }
}
