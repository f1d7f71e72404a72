//! Arbitrary bytes as a warm-reboot handoff block: `decode` must return an
//! error or a state within the limits, never panic, loop or overflow
//! (overflow checks are on under cargo-fuzz). Whatever it accepts must
//! re-encode, and decode again to the same value.
//!
//! The fuzzer cannot forge CRC-32s, so each input is also tried with its
//! header made valid (magic, major 1, sizes and both checksums
//! recomputed): mutations then reach the device-tree reader and the schema
//! checks instead of stopping at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::handoff::{decode, encode, peek_header, HandoffLimits, Region, HEADER_SIZE, MAJOR};

fn limits() -> HandoffLimits {
    // QEMU virt with 2 GiB: the hypervisor's 64 MiB region at the bottom.
    HandoffLimits {
        hyp_region: Region::new(0x4000_0000, 0x400_0000),
        ram: vec![Region::new(0x4000_0000, 0x8000_0000)],
        max_vms: 4,
        max_vcpus: 8,
        required_sysregs: &["sctlr_el1"],
    }
}

fn check(bytes: &[u8], l: &HandoffLimits) {
    let Ok(h) = decode(bytes, l) else { return };
    assert!(h.vms.len() <= l.max_vms);
    for vm in &h.vms {
        assert!((1..=l.max_vcpus).contains(&vm.vcpus.len()));
        assert!(!vm.ram.overlaps(&l.hyp_region));
        assert!(l.ram.iter().any(|r| r.contains(&vm.ram)));
    }
    let minor = peek_header(bytes).expect("decoded, so the header is valid").minor;
    let again = encode(&h, minor).expect("an accepted state must be writable");
    assert_eq!(decode(&again, l).as_ref(), Ok(&h));
}

/// `data` with a header that passes every header and checksum check.
fn fix_header(data: &[u8]) -> Vec<u8> {
    let mut b = data.to_vec();
    b[..8].copy_from_slice(b"BLINKHO\0");
    b[8..10].copy_from_slice(&MAJOR.to_le_bytes());
    b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    let total = b.len() as u32;
    b[16..20].copy_from_slice(&total.to_le_bytes());
    let body_crc = crc32fast::hash(&b[HEADER_SIZE..]);
    b[20..24].copy_from_slice(&body_crc.to_le_bytes());
    b[28..32].fill(0);
    let header_crc = crc32fast::hash(&b[..HEADER_SIZE]);
    b[28..32].copy_from_slice(&header_crc.to_le_bytes());
    b
}

fuzz_target!(|data: &[u8]| {
    let l = limits();
    check(data, &l);
    if data.len() >= HEADER_SIZE && data.len() <= 1 << 20 {
        check(&fix_header(data), &l);
    }
});
