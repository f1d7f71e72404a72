//! Arbitrary bytes as the content of an image slot (what a boot loader or,
//! later, an upload over the UART leaves there): `read_header` and `verify`
//! must return an error or a consistent description, never panic or read
//! outside the slot. The fuzzer cannot forge CRC-32s, so each input is also
//! tried with its header checksum made valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::image_slot::{read_header, verify, ImageRules, HEADER_SIZE, MAGIC};

const RULES: ImageRules = ImageRules { board: "qemu-virt", load_address: 0x4008_0000, max_image_size: 0x2f8_0000 };

fn check(slot: &[u8]) {
    if let Ok(h) = read_header(slot) {
        assert!(h.image_len > 0 && HEADER_SIZE as u64 + h.image_len <= slot.len() as u64);
        assert!(h.version.len() <= 64);
        assert!(!h.board.is_empty() && h.board.len() <= 32);
    }
    if let Ok(v) = verify(slot, &RULES) {
        let img = &slot[HEADER_SIZE..HEADER_SIZE + v.image_len as usize];
        assert_eq!(crc32fast::hash(img), v.image_crc);
        assert_eq!(&img[56..60], b"ARM\x64");
        assert_eq!(v.board, RULES.board);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 128 {
        let mut b = data.to_vec();
        b[..8].copy_from_slice(&MAGIC);
        b[28..32].fill(0);
        let crc = crc32fast::hash(&b[..128]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        check(&b);
    }
});
