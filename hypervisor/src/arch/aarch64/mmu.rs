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
const NORMAL: A = A::VALID
    .union(A::ATTRIBUTE_INDEX_1)
    .union(A::INNER_SHAREABLE)
    .union(A::ACCESSED);
const DEVICE: A = A::VALID
    .union(A::ATTRIBUTE_INDEX_0)
    .union(A::ACCESSED)
    .union(A::XN);

static TTBR: AtomicU64 = AtomicU64::new(0);

/// Build the identity map and turn the MMU and caches on for this CPU.
pub fn init_primary(
    ram: &[(u64, u64)],
    devices: &[(u64, u64)],
) -> Result<(), aarch64_paging::MapError> {
    let mut map = IdMap::new(1, El2);
    for &(base, size) in ram {
        map.map_range(
            &MemoryRegion::new(base as usize, (base + size) as usize),
            NORMAL,
        )?;
    }
    for &(base, size) in devices {
        map.map_range(
            &MemoryRegion::new(base as usize, (base + size) as usize),
            DEVICE,
        )?;
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

/// TCR_EL2 bits that are RES1 (31, 23).
const TCR_RES1: u64 = (1 << 31) | (1 << 23);
/// SCTLR_EL2 bits that are RES1 with E2H = 0 (4, 5, 11, 16, 18, 22, 23, 28, 29).
const SCTLR_RES1: u64 = (1 << 4)
    | (1 << 5)
    | (1 << 11)
    | (1 << 16)
    | (1 << 18)
    | (1 << 22)
    | (1 << 23)
    | (1 << 28)
    | (1 << 29);

fn enable() {
    use aarch64_cpu::registers::{SCTLR_EL2, TCR_EL2};
    let pa_range = read_sysreg!(id_aa64mmfr0_el1) & 0xf;
    // 39-bit VA, write-back cacheable inner-shareable walks, 4 KiB granule,
    // the CPU's physical address size (at most 48 bits).
    let tcr = TCR_RES1
        | (TCR_EL2::T0SZ.val(25)
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::SH0::Inner
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::PS.val(pa_range.min(5)))
        .value;
    write_sysreg!(mair_el2, MAIR);
    write_sysreg!(tcr_el2, tcr);
    dsb_sy();
    isb();
    // SAFETY: invalidating TLBs and the I-cache has no effect on memory.
    unsafe { core::arch::asm!("tlbi alle2", "dsb sy", "ic iallu", "dsb sy", "isb") };
    // MMU, data and instruction caches on, SP alignment checking.
    let sctlr = SCTLR_RES1
        | (SCTLR_EL2::M::SET + SCTLR_EL2::C::SET + SCTLR_EL2::I::SET + SCTLR_EL2::SA::SET).value;
    write_sysreg!(sctlr_el2, sctlr);
    isb();
}
