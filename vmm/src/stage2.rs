//! Stage-2 translation tables of one VM (guest IPA -> host PA), built with
//! `aarch64-paging`'s Stage2 regime. RAM is mapped with the largest blocks
//! the alignment allows (1 GiB / 2 MiB), so building the tables for a VM is
//! cheap and independent of how its memory is used — which is what lets a
//! freshly reloaded hypervisor rebuild them from a handoff description.
//!
//! The IPA space is 39 bits (VTCR_EL2.T0SZ = 25) with translation starting at
//! level 1 (SL0 = 1): 512 GiB, far more than the guest layout uses.
use aarch64_paging::descriptor::Stage2Attributes as A;
use aarch64_paging::descriptor::{PhysicalAddress, VirtualAddress};
use aarch64_paging::idmap::IdTranslation;
use aarch64_paging::paging::{Constraints, MemoryRegion, Stage2 as Regime};
use aarch64_paging::{MapError, Mapping};

pub const IPA_BITS: u32 = 39;
const ROOT_LEVEL: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// Guest RAM: normal write-back cacheable, inner shareable, executable.
    Ram,
    /// A device frame passed through (e.g. GICV): device-nGnRE, never executable.
    Device,
}

impl MemKind {
    fn attributes(self) -> A {
        let common = A::VALID | A::ACCESS_FLAG | A::S2AP_ACCESS_RW;
        match self {
            MemKind::Ram => {
                common | A::MEMATTR_NORMAL_INNER_WB | A::MEMATTR_NORMAL_OUTER_WB | A::SH_INNER
            }
            MemKind::Device => common | A::MEMATTR_DEVICE_nGnRE | A::XN,
        }
    }
}

pub struct Stage2Tables {
    map: Mapping<IdTranslation<A>, Regime>,
}

impl Default for Stage2Tables {
    fn default() -> Self {
        Self::new()
    }
}

impl Stage2Tables {
    pub fn new() -> Self {
        Self {
            map: Mapping::new(IdTranslation::new(), ROOT_LEVEL, Regime),
        }
    }

    /// Map `size` bytes at guest `ipa` to host `pa`. All three must be page
    /// aligned; the range must fit the 39-bit IPA space.
    pub fn map(&mut self, ipa: u64, pa: u64, size: u64, kind: MemKind) -> Result<(), MapError> {
        let end = ipa
            .checked_add(size)
            .ok_or(MapError::AddressRange(VirtualAddress(ipa as usize)))?;
        if (ipa | pa | size) & 0xfff != 0 || end > 1 << IPA_BITS {
            return Err(MapError::AddressRange(VirtualAddress(ipa as usize)));
        }
        let region = MemoryRegion::new(ipa as usize, end as usize);
        self.map.map_range(
            &region,
            PhysicalAddress(pa as usize),
            kind.attributes(),
            Constraints::empty(),
        )
    }

    /// Physical address of the root table, for VTTBR_EL2.BADDR.
    pub fn root_pa(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// Walk the tables like the MMU would: host PA for `ipa`, if mapped.
    pub fn translate(&self, ipa: u64) -> Option<u64> {
        let mut found = None;
        let page = ipa & !0xfff;
        let region = MemoryRegion::new(page as usize, page as usize + 0x1000);
        let _ = self.map.walk_range(&region, &mut |_mr, d, level| {
            let leaf = level == 3 || !d.is_table_or_page();
            if d.is_valid() && leaf {
                // `_mr` is clipped to the walked range, so take the offset
                // within the block from the block size of its level.
                let block = 1u64 << (12 + 9 * (3 - level as u64));
                found = Some(d.output_address().0 as u64 + (ipa & (block - 1)));
            }
            Ok(())
        });
        found
    }

    /// Count (level-1 blocks, level-2 blocks, pages) of valid leaf entries in
    /// `[ipa, ipa+size)`: how coarse the mapping is.
    pub fn leaf_counts(&self, ipa: u64, size: u64) -> [usize; 3] {
        let mut counts = [0; 3];
        let region = MemoryRegion::new(ipa as usize, (ipa + size) as usize);
        let _ = self.map.walk_range(&region, &mut |_mr, d, level| {
            if d.is_valid() && (level == 3 || !d.is_table_or_page()) {
                counts[level - 1] += 1;
            }
            Ok(())
        });
        counts
    }
}

/// VTCR_EL2 for these tables, given ID_AA64MMFR0_EL1.PARange.
pub fn vtcr(pa_range: u64) -> u64 {
    let t0sz = 64 - IPA_BITS as u64;
    let sl0 = 1; // start at level 1 (4 KiB granule)
    let irgn0 = 1; // normal WB RA WA
    let orgn0 = 1;
    let sh0 = 3; // inner shareable
    let tg0 = 0; // 4 KiB
    let ps = pa_range.min(5); // at most 48-bit PA
    (1 << 31)
        | (ps << 16)
        | (tg0 << 14)
        | (sh0 << 12)
        | (orgn0 << 10)
        | (irgn0 << 8)
        | (sl0 << 6)
        | t0sz
}

/// VTTBR_EL2 value: root table and 8-bit VMID.
pub fn vttbr(root_pa: u64, vmid: u8) -> u64 {
    ((vmid as u64) << 48) | root_pa
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn ram_uses_2mib_blocks_and_translates() {
        let mut s = Stage2Tables::new();
        s.map(0x4000_0000, 0x5000_0000, 64 * MIB, MemKind::Ram)
            .unwrap();
        assert_eq!(s.leaf_counts(0x4000_0000, 64 * MIB), [0, 32, 0]);
        assert_eq!(s.translate(0x4000_0000), Some(0x5000_0000));
        assert_eq!(s.translate(0x4123_4567), Some(0x5123_4567));
        assert_eq!(s.translate(0x4000_0000 + 64 * MIB), None);
        assert_eq!(
            s.translate(0x0900_0000),
            None,
            "devices stay unmapped (trapped)"
        );
    }

    #[test]
    fn gib_aligned_ram_uses_1gib_blocks() {
        let mut s = Stage2Tables::new();
        s.map(0x4000_0000, 0x1_0000_0000, 2 * GIB, MemKind::Ram)
            .unwrap();
        assert_eq!(s.leaf_counts(0x4000_0000, 2 * GIB), [2, 0, 0]);
        assert_eq!(s.translate(0xbfff_fff8), Some(0x1_7fff_fff8));
    }

    #[test]
    fn device_page_maps_as_pages() {
        let mut s = Stage2Tables::new();
        s.map(0x0801_0000, 0x0804_0000, 0x2000, MemKind::Device)
            .unwrap();
        assert_eq!(s.leaf_counts(0x0801_0000, 0x2000), [0, 0, 2]);
        assert_eq!(s.translate(0x0801_1004), Some(0x0804_1004));
    }

    #[test]
    fn misaligned_or_too_large_is_refused() {
        let mut s = Stage2Tables::new();
        assert!(s
            .map(0x4000_0100, 0x5000_0000, 0x1000, MemKind::Ram)
            .is_err());
        assert!(s
            .map(0x4000_0000, 0x5000_0010, 0x1000, MemKind::Ram)
            .is_err());
        assert!(s.map(1 << 39, 0, 0x1000, MemKind::Ram).is_err());
        assert!(s.map(u64::MAX - 0xfff, 0, 0x2000, MemKind::Ram).is_err());
    }

    #[test]
    fn vtcr_fields() {
        let v = vtcr(2); // 40-bit PA
        assert_eq!(v & 0x3f, 25);
        assert_eq!(v >> 6 & 3, 1);
        assert_eq!(v >> 16 & 7, 2);
        assert_eq!(vtcr(6) >> 16 & 7, 5);
        assert_eq!(vttbr(0x4010_0000, 3), (3 << 48) | 0x4010_0000);
    }
}
