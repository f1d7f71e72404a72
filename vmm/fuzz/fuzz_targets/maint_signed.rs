//! Arbitrary bytes as an uploaded slot: the signature-block reader and
//! verifier must refuse with a typed error, never panic or read outside
//! the slot. The fuzzer cannot forge CRC-32s (or signatures), so each
//! input is also tried with the slot header's checksum made valid and the
//! block's magic in place, which reaches the block's own checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::image_slot::{HEADER_SIZE, MAGIC};
use vmm::maint::signed::{self, Policy, TrustedKey, SIGNED_OFF};

fn check(slot: &[u8]) {
    let keys = [TrustedKey { public: signed::public_key(&[7; 32]), development: true }];
    let p = Policy { trusted: &keys, board: "qemu-virt", min_security_counter: 1 };
    if let Ok(r) = signed::read(slot) {
        assert!(!r.meta.boards.is_empty() && r.meta.boards.len() <= 4);
        assert!(HEADER_SIZE as u64 + r.slot.image_len <= slot.len() as u64);
        // Trusting the block's own key gets garbage signatures (and
        // garbage keys) into ed25519 verification.
        let own = [TrustedKey { public: r.public_key, development: r.meta.development }];
        let p = Policy { trusted: &own, board: "qemu-virt", min_security_counter: 0 };
        assert!(signed::verify(slot, &p).is_err());
    }
    // Nothing the fuzzer writes carries a valid signature by a trusted key.
    assert!(signed::verify(slot, &p).is_err());
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The first bytes are the header page's meaningful part (slot header
    // and signature block), the rest the image: short inputs reach every
    // field without the fuzzer having to grow past the 4 KiB page.
    let head = data.len().min(SIGNED_OFF + signed::BLOCK_LEN);
    let mut b = vec![0u8; HEADER_SIZE];
    b[..head].copy_from_slice(&data[..head]);
    b.extend_from_slice(&data[head..]);
    b.push(0);
    b[..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    let room = (b.len() - HEADER_SIZE) as u64;
    let len = u64::from_le_bytes(b[16..24].try_into().unwrap()) % room + 1;
    b[16..24].copy_from_slice(&len.to_le_bytes());
    b[SIGNED_OFF..SIGNED_OFF + 8].copy_from_slice(b"BLINKSIG");
    b[SIGNED_OFF + 8..SIGNED_OFF + 12].copy_from_slice(&1u32.to_le_bytes());
    b[28..32].fill(0);
    let crc = crc32fast::hash(&b[..128]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    check(&b);
});
