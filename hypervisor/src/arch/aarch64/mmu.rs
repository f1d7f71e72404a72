//! The hypervisor's own (EL2 stage-1) translation: an identity map, RAM as
//! normal cacheable memory, device windows as device memory.
use super::sysreg::{dsb_sy, isb};
use crate::{read_sysreg, write_sysreg};
use aarch64_paging::descriptor::El23Attributes as A;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

/// MAIR_EL2: index 0 = Device-nGnRE, index 1 = Normal WB RA/WA.
const MAIR: u64 = 0x04 | (0xff << 8);
const NORMAL: A = A::VALID.union(A::ATTRIBUTE_INDEX_1).union(A::INNER_SHAREABLE).union(A::ACCESSED);
const DEVICE: A = A::VALID.union(A::ATTRIBUTE_INDEX_0).union(A::ACCESSED).union(A::XN);

static TTBR: AtomicU64 = AtomicU64::new(0);

/// Build the identity map and turn the MMU and caches on for this CPU.
pub fn init_primary(ram: &[(u64, u64)], devices: &[(u64, u64)]) -> Result<(), aarch64_paging::MapError> {
    let mut map = IdMap::new(1, El2);
    for &(base, size) in ram {
        map.map_range(&MemoryRegion::new(base as usize, (base + size) as usize), NORMAL)?;
    }
    for &(base, size) in devices {
        map.map_range(&MemoryRegion::new(base as usize, (base + size) as usize), DEVICE)?;
    }
    // SAFETY: the map covers all RAM (code, stacks, heap) and every device
    // the hypervisor touches, identity-mapped, so execution continues
    // unchanged once the MMU is on.
    unsafe {
        map.activate();
    }
    TTBR.store(read_sysreg!(ttbr0_el2), Ordering::SeqCst);
    // Secondaries read it with their MMU (and so their caches) still off.
    super::cache::clean_to_poc(&TTBR as *const _ as u64, 8);
    // The tables must live forever; the hypervisor never switches them.
    Box::leak(Box::new(map));
    enable();
    Ok(())
}

/// Secondary CPUs reuse the primary's tables.
pub fn init_secondary() {
    write_sysreg!(ttbr0_el2, TTBR.load(Ordering::SeqCst));
    enable();
}

fn enable() {
    let pa_range = read_sysreg!(id_aa64mmfr0_el1) & 0xf;
    // T0SZ = 25 (39-bit VA), WB cacheable inner-shareable walks, 4 KiB
    // granule, RES1 bits 31 and 23.
    let tcr = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (pa_range.min(5) << 16) | (1 << 23) | (1 << 31);
    write_sysreg!(mair_el2, MAIR);
    write_sysreg!(tcr_el2, tcr);
    dsb_sy();
    isb();
    // SAFETY: invalidating TLBs and the I-cache has no effect on memory.
    unsafe { core::arch::asm!("tlbi alle2", "dsb sy", "ic iallu", "dsb sy", "isb") };
    // SCTLR_EL2: M, C, I; SA; RES1 bits (4,5,11,16,18,22,23,28,29).
    let res1 = (1 << 4) | (1 << 5) | (1 << 11) | (1 << 16) | (1 << 18) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);
    let sctlr = res1 | 1 | (1 << 2) | (1 << 3) | (1 << 12);
    write_sysreg!(sctlr_el2, sctlr);
    isb();
}
