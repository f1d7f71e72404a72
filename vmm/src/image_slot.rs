//! Hypervisor images kept in the board's image slots for warm reloads.
//!
//! Each board reserves two slots outside the heap. At a cold boot the running
//! image copies itself into slot 0, so `rejuvenate` always has a pristine
//! copy to restart from; the other slot receives a *different* image (placed
//! by the boot loader, or uploaded later) to upgrade into. After an upgrade
//! the slot of the old image is left alone, which makes a rollback one more
//! reload into "the other slot".
//!
//! A slot holds a small header followed, at [`HEADER_SIZE`], by the raw
//! image (the arm64 `Image` the boot loader would load):
//!
//! ```text
//! offset size field
//!  0      8   magic        b"BLINKIMG"
//!  8      4   format       u32 LE, 2
//! 12      4   header_size  u32 LE, 4096 (the image starts page aligned)
//! 16      8   image_len    u64 LE, bytes of image after the header
//! 24      4   image_crc    u32 LE, CRC-32 (IEEE) of those bytes
//! 28      4   header_crc   u32 LE, CRC-32 of bytes 0..128, this field as zero
//! 32     64   version      UTF-8, NUL padded ("blink 0.1.0")
//! 96     32   board        UTF-8, NUL padded: the board it was built for
//!                          ("qemu-virt"); an image for another board is
//!                          refused even if its arm64 header would pass
//! ```
//!
//! Format 1 had no board (those bytes were zero); it is refused as an
//! unknown format, as is any other.
//!
//! The CRC guards against a torn or damaged copy, not against an attacker;
//! authenticating an uploaded image is the maintenance protocol's job.
//! `cargo xtask build` writes `target/images/hypervisor-next.slot` in this
//! format, and the hypervisor writes the same header when it stages itself.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub const MAGIC: [u8; 8] = *b"BLINKIMG";
pub const FORMAT: u32 = 2;
/// Offset of the image in a slot.
pub const HEADER_SIZE: usize = 4096;
/// Bytes covered by `header_crc`; the rest of the header page is unused.
const FIXED_SIZE: usize = 128;
const HEADER_CRC_OFF: usize = 28;
const VERSION_OFF: usize = 32;
pub const MAX_VERSION_LEN: usize = 64;
const BOARD_OFF: usize = 96;
pub const MAX_BOARD_LEN: usize = 32;

/// What a slot holds, once its header and image have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotImage {
    pub version: String,
    /// The board the image was built for.
    pub board: String,
    pub image_len: u64,
    pub image_crc: u32,
}

/// Where images of this board must fit (from the board description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRules {
    /// This board's name: an image must name the same.
    pub board: &'static str,
    /// Physical load address; its offset in a 2 MiB block must equal the
    /// image's `text_offset`.
    pub load_address: u64,
    /// Largest `image_size` (image + bss + stacks) that stays clear of the
    /// memory kept across a reload.
    pub max_image_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    Empty,
    Truncated,
    BadFormat(u32),
    BadHeaderSize(u32),
    HeaderCrc,
    BadVersion,
    /// The board name is missing or not NUL-padded UTF-8.
    BadBoard,
    /// Built for another board.
    WrongBoard {
        image: String,
        this: &'static str,
    },
    TooLarge {
        image_len: u64,
        room: u64,
    },
    ImageCrc {
        expected: u32,
        actual: u32,
    },
    NotArm64Image,
    TextOffset {
        image: u64,
        board: u64,
    },
    ImageSize {
        image: u64,
        max: u64,
    },
    /// `image_size` in the arm64 header smaller than the image itself.
    ImageSizeBelowFile {
        image: u64,
        file: u64,
    },
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotError::Empty => write!(f, "no image (no BLINKIMG header)"),
            SlotError::Truncated => write!(f, "shorter than its header"),
            SlotError::BadFormat(v) => write!(f, "unknown slot format {v}"),
            SlotError::BadHeaderSize(v) => write!(f, "header size {v}, expected {HEADER_SIZE}"),
            SlotError::HeaderCrc => write!(f, "header checksum mismatch"),
            SlotError::BadVersion => write!(f, "version string is not NUL-padded UTF-8"),
            SlotError::BadBoard => write!(f, "board name missing or not NUL-padded UTF-8"),
            SlotError::WrongBoard { image, this } => {
                write!(f, "image built for board '{image}', this is '{this}'")
            }
            SlotError::TooLarge { image_len, room } => {
                write!(
                    f,
                    "image of {image_len} bytes does not fit the slot ({room} bytes)"
                )
            }
            SlotError::ImageCrc { expected, actual } => {
                write!(
                    f,
                    "image checksum mismatch (header {expected:#010x}, image {actual:#010x})"
                )
            }
            SlotError::NotArm64Image => write!(f, "not an arm64 Image (no ARM\\x64 magic)"),
            SlotError::TextOffset { image, board } => {
                write!(
                    f,
                    "image text_offset {image:#x}, this board needs {board:#x}"
                )
            }
            SlotError::ImageSize { image, max } => {
                write!(
                    f,
                    "image needs {image:#x} bytes of memory, at most {max:#x} are free"
                )
            }
            SlotError::ImageSizeBelowFile { image, file } => {
                write!(
                    f,
                    "image header says {image:#x} bytes, smaller than the image ({file:#x} bytes)"
                )
            }
        }
    }
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn fixed_crc(fixed: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&fixed[..HEADER_CRC_OFF]);
    h.update(&[0; 4]);
    h.update(&fixed[HEADER_CRC_OFF + 4..FIXED_SIZE]);
    h.finalize()
}

/// Copies `text` into `field`, cut at a character boundary if too long.
fn put_str(field: &mut [u8], text: &str) {
    let mut end = text.len().min(field.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    field[..end].copy_from_slice(&text.as_bytes()[..end]);
}

/// A NUL-padded UTF-8 field; None if malformed.
fn get_str(field: &[u8]) -> Option<&str> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    if field[len..].iter().any(|&b| b != 0) {
        return None;
    }
    core::str::from_utf8(&field[..len]).ok()
}

/// The header for `image`, labelled `version` and `board` (each truncated
/// to its field at a character boundary).
pub fn header(version: &str, board: &str, image: &[u8]) -> [u8; FIXED_SIZE] {
    let mut h = [0u8; FIXED_SIZE];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(image.len() as u64).to_le_bytes());
    h[24..28].copy_from_slice(&crate::crc32::hash(image).to_le_bytes());
    put_str(&mut h[VERSION_OFF..VERSION_OFF + MAX_VERSION_LEN], version);
    put_str(&mut h[BOARD_OFF..BOARD_OFF + MAX_BOARD_LEN], board);
    let crc = fixed_crc(&h);
    h[HEADER_CRC_OFF..HEADER_CRC_OFF + 4].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A whole slot's content: header page + image (what a boot loader or an
/// upload places at a slot's base).
pub fn package(version: &str, board: &str, image: &[u8]) -> Vec<u8> {
    let mut out = alloc::vec![0u8; HEADER_SIZE];
    out[..FIXED_SIZE].copy_from_slice(&header(version, board, image));
    out.extend_from_slice(image);
    out
}

/// Reads a slot's header (not the image): cheap, for listing and for the
/// last check just before a reload. `slot` is the whole slot.
pub fn read_header(slot: &[u8]) -> Result<SlotImage, SlotError> {
    if slot.len() < FIXED_SIZE {
        return Err(SlotError::Truncated);
    }
    if slot[..8] != MAGIC {
        return Err(SlotError::Empty);
    }
    let fixed = &slot[..FIXED_SIZE];
    if le32(fixed, HEADER_CRC_OFF) != fixed_crc(fixed) {
        return Err(SlotError::HeaderCrc);
    }
    let format = le32(fixed, 8);
    if format != FORMAT {
        return Err(SlotError::BadFormat(format));
    }
    let header_size = le32(fixed, 12);
    if header_size as usize != HEADER_SIZE {
        return Err(SlotError::BadHeaderSize(header_size));
    }
    let image_len = le64(fixed, 16);
    let room = slot.len().saturating_sub(HEADER_SIZE) as u64;
    if image_len == 0 || image_len > room {
        return Err(SlotError::TooLarge { image_len, room });
    }
    let version =
        get_str(&fixed[VERSION_OFF..VERSION_OFF + MAX_VERSION_LEN]).ok_or(SlotError::BadVersion)?;
    let board = get_str(&fixed[BOARD_OFF..BOARD_OFF + MAX_BOARD_LEN])
        .filter(|b| !b.is_empty())
        .ok_or(SlotError::BadBoard)?;
    Ok(SlotImage {
        version: String::from(version),
        board: String::from(board),
        image_len,
        image_crc: le32(fixed, 24),
    })
}

/// Fully checks a slot: header, built for this board, the image's
/// checksum, and that the image is an arm64 `Image` this board can run.
pub fn verify(slot: &[u8], rules: &ImageRules) -> Result<SlotImage, SlotError> {
    let s = read_header(slot)?;
    if s.board != rules.board {
        return Err(SlotError::WrongBoard {
            image: s.board,
            this: rules.board,
        });
    }
    let image = &slot[HEADER_SIZE..HEADER_SIZE + s.image_len as usize];
    let actual = crate::crc32::hash(image);
    if actual != s.image_crc {
        return Err(SlotError::ImageCrc {
            expected: s.image_crc,
            actual,
        });
    }
    check_arm64_image(image, rules)?;
    Ok(s)
}

/// The arm64 boot header of `image`: magic, `text_offset` matching the
/// board's load address, memory footprint within what the board leaves.
pub fn check_arm64_image(image: &[u8], rules: &ImageRules) -> Result<(), SlotError> {
    if image.len() < 64 || image[56..60] != *b"ARM\x64" {
        return Err(SlotError::NotArm64Image);
    }
    let text_offset = le64(image, 8);
    let board = rules.load_address & 0x1f_ffff;
    if text_offset != board {
        return Err(SlotError::TextOffset {
            image: text_offset,
            board,
        });
    }
    let size = le64(image, 16);
    if size == 0 || size > rules.max_image_size {
        return Err(SlotError::ImageSize {
            image: size,
            max: rules.max_image_size,
        });
    }
    if size < image.len() as u64 {
        return Err(SlotError::ImageSizeBelowFile {
            image: size,
            file: image.len() as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: ImageRules = ImageRules {
        board: "qemu-virt",
        load_address: 0x4008_0000,
        max_image_size: 0x2f8_0000,
    };

    fn image(len: usize) -> Vec<u8> {
        let mut i: Vec<u8> = (0..len).map(|x| (x * 7 + 3) as u8).collect();
        i[8..16].copy_from_slice(&0x80000u64.to_le_bytes());
        i[16..24].copy_from_slice(&0x40_0000u64.to_le_bytes());
        i[56..60].copy_from_slice(b"ARM\x64");
        i
    }

    fn slot_with(pkg: &[u8]) -> Vec<u8> {
        let mut s = alloc::vec![0u8; 1 << 20];
        s[..pkg.len()].copy_from_slice(pkg);
        s
    }

    #[test]
    fn package_round_trips() {
        let img = image(300_000);
        let s = slot_with(&package("blink 0.1.0+next", "qemu-virt", &img));
        let got = verify(&s, &RULES).unwrap();
        assert_eq!(got.version, "blink 0.1.0+next");
        assert_eq!(got.image_len, 300_000);
        assert_eq!(read_header(&s).unwrap(), got);
    }

    #[test]
    fn empty_and_damaged_slots_are_refused() {
        let img = image(5000);
        assert_eq!(read_header(&[0u8; 8192]), Err(SlotError::Empty));
        assert_eq!(read_header(&[0u8; 16]), Err(SlotError::Truncated));
        let good = slot_with(&package("v", "qemu-virt", &img));
        // A flipped image byte: only the full check sees it.
        let mut s = good.clone();
        s[HEADER_SIZE + 100] ^= 1;
        assert!(read_header(&s).is_ok());
        assert!(matches!(
            verify(&s, &RULES),
            Err(SlotError::ImageCrc { .. })
        ));
        // A flipped header byte anywhere in the checked part.
        for off in [9, 13, 17, 25, 40, 100] {
            let mut s = good.clone();
            s[off] ^= 0x10;
            assert_eq!(read_header(&s), Err(SlotError::HeaderCrc), "offset {off}");
        }
    }

    #[test]
    fn image_must_fit_and_suit_the_board() {
        let img = image(5000);
        let small = package("v", "qemu-virt", &img);
        assert!(matches!(
            read_header(&small[..HEADER_SIZE + 100]),
            Err(SlotError::TooLarge { .. })
        ));
        let mut bad = img.clone();
        bad[56] = b'X';
        assert_eq!(
            verify(&slot_with(&package("v", "qemu-virt", &bad)), &RULES),
            Err(SlotError::NotArm64Image)
        );
        let mut bad = img.clone();
        bad[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            verify(&slot_with(&package("v", "qemu-virt", &bad)), &RULES),
            Err(SlotError::TextOffset { .. })
        ));
        let mut bad = img.clone();
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            verify(&slot_with(&package("v", "qemu-virt", &bad)), &RULES),
            Err(SlotError::ImageSize { .. })
        ));
        let mut bad = img;
        bad[16..24].copy_from_slice(&100u64.to_le_bytes());
        assert!(matches!(
            verify(&slot_with(&package("v", "qemu-virt", &bad)), &RULES),
            Err(SlotError::ImageSizeBelowFile { .. })
        ));
    }

    #[test]
    fn image_for_another_board_is_refused() {
        let img = image(5000);
        let s = slot_with(&package("v", "raspi4b", &img));
        assert_eq!(read_header(&s).unwrap().board, "raspi4b");
        assert_eq!(
            verify(&s, &RULES),
            Err(SlotError::WrongBoard {
                image: String::from("raspi4b"),
                this: "qemu-virt"
            })
        );
        // No board named (as format 1 wrote the field): refused.
        assert_eq!(
            read_header(&slot_with(&package("v", "", &img))),
            Err(SlotError::BadBoard)
        );
        // A format-1 header (valid checksum) is an unknown format.
        let mut old = slot_with(&package("v", "", &img));
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = fixed_crc(&old[..FIXED_SIZE]);
        old[HEADER_CRC_OFF..HEADER_CRC_OFF + 4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(read_header(&old), Err(SlotError::BadFormat(1)));
    }

    #[test]
    fn long_versions_are_cut_at_a_character_boundary() {
        let v = "é".repeat(40); // 80 bytes
        let s = slot_with(&package(&v, "qemu-virt", &image(100)));
        let got = read_header(&s).unwrap();
        assert_eq!(got.version.len(), 64);
        assert!(v.starts_with(&got.version));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let mut s = alloc::vec![0u8; 8192];
            for b in s.iter_mut().take(200) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            s[..8].copy_from_slice(&MAGIC);
            let _ = verify(&s, &RULES);
            // With a valid header checksum, so the fields behind it are
            // exercised too (the random bytes almost never pass it).
            s[8..12].copy_from_slice(&FORMAT.to_le_bytes());
            s[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
            let crc = fixed_crc(&s[..FIXED_SIZE]);
            s[HEADER_CRC_OFF..HEADER_CRC_OFF + 4].copy_from_slice(&crc.to_le_bytes());
            match read_header(&s) {
                Ok(h) => assert!(HEADER_SIZE as u64 + h.image_len <= s.len() as u64),
                Err(e) => assert!(
                    matches!(
                        e,
                        SlotError::TooLarge { .. } | SlotError::BadVersion | SlotError::BadBoard
                    ),
                    "{e:?}"
                ),
            }
            let _ = verify(&s, &RULES);
        }
    }
}
