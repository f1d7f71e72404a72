//! Arbitrary bytes as the host device tree: the parsers must return errors,
//! never panic, loop or overflow (overflow checks are on under cargo-fuzz).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::config::{host_info, parse_vms, Limits, Region};

fuzz_target!(|data: &[u8]| {
    // What the hypervisor passes on QEMU virt: 1 GiB of RAM, its own image
    // and the DTB reserved.
    let limits = Limits {
        max_vcpus: 8,
        max_vms: 4,
        reserved: vec![
            Region::new(0x4000_0000, 0x400_0000),
            Region::new(0x4800_0000, 0x10_0000),
        ],
        ram: vec![Region::new(0x4000_0000, 0x4000_0000)],
    };
    if let Ok(parsed) = parse_vms(data, &limits) {
        // Everything accepted must satisfy the documented rules.
        for vm in &parsed.vms {
            assert!(vm.memory > 0 && vm.memory % (2 << 20) == 0);
            assert!((1..=limits.max_vcpus).contains(&vm.vcpus));
            assert!(vm.kernel.size > 0);
        }
        assert!(parsed.vms.len() <= limits.max_vms);
    }
    if let Ok(info) = host_info(data) {
        assert!(!info.ram.is_empty() && !info.cpus.is_empty());
    }
});
