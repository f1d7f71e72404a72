//! Physical memory bookkeeping: address ranges and sets of them.
//!
//! The hypervisor uses [`RegionSet`] for "free RAM": it starts from the RAM
//! the device tree describes, removes its own image, the DTB, the guest
//! modules and reserved regions, then carves VM memory out with
//! [`RegionSet::alloc`]. The configuration parser uses it to answer "is this
//! module inside RAM?" and "does it overlap anything reserved?".
//!
//! Everything is overflow-safe: a region whose exclusive end is not
//! representable (reaches or passes 2^64) is rejected instead of wrapping.
//! Physical addresses never get there, so such a region can only come from
//! a corrupt device tree.

use alloc::vec::Vec;
use core::fmt;

/// A half-open physical address range `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// Exclusive end address, or `None` when it would reach 2^64.
    pub const fn end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    pub const fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// True when the two regions share at least one byte. Empty regions
    /// overlap nothing. A region whose end overflows is treated as reaching
    /// the top of the address space so that it is never silently accepted.
    pub fn overlaps(&self, other: &Region) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        let a_end = self.end().unwrap_or(u64::MAX);
        let b_end = other.end().unwrap_or(u64::MAX);
        self.base < b_end && other.base < a_end
    }

    /// True when `other` (non-empty) lies entirely inside `self`.
    pub fn contains(&self, other: &Region) -> bool {
        match (self.end(), other.end()) {
            (Some(a_end), Some(b_end)) => {
                !other.is_empty() && other.base >= self.base && b_end <= a_end
            }
            _ => false,
        }
    }

    /// True when `base` and `size` are both multiples of `align` (a power of
    /// two; other values never match).
    pub fn is_aligned(&self, align: u64) -> bool {
        align.is_power_of_two() && self.base & (align - 1) == 0 && self.size & (align - 1) == 0
    }
}

impl fmt::Display for Region {
    /// `0x40000000..0x44000000` (half-open, like a Rust range).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end() {
            Some(end) => write!(f, "{:#x}..{:#x}", self.base, end),
            None => write!(f, "{:#x}+{:#x}", self.base, self.size),
        }
    }
}

/// The region would extend past the top of the 64-bit address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionOverflow;

impl fmt::Display for RegionOverflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("region extends past the end of the address space")
    }
}

/// A set of addresses, kept as sorted, disjoint, non-adjacent ranges.
///
/// Inserting merges with neighbours (so two adjacent RAM banks count as one
/// range for [`contains`](Self::contains)); removing may split a range.
/// Stored as `(start, end)` pairs with `end` exclusive; every stored pair has
/// `start < end` and the pairs are strictly increasing with gaps between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionSet {
    ranges: Vec<(u64, u64)>,
}

impl RegionSet {
    pub const fn new() -> Self {
        Self { ranges: Vec::new() }
    }

    /// Builds a set from regions (union). Fails if any region overflows.
    pub fn from_regions<I: IntoIterator<Item = Region>>(
        regions: I,
    ) -> Result<Self, RegionOverflow> {
        let mut set = Self::new();
        for r in regions {
            set.insert(r)?;
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Sum of all sizes in bytes (saturating; cannot really overflow since
    /// the ranges are disjoint and below 2^64, but never panic).
    pub fn total(&self) -> u64 {
        self.ranges
            .iter()
            .fold(0u64, |acc, &(s, e)| acc.saturating_add(e - s))
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Region> + '_ {
        self.ranges.iter().map(|&(s, e)| Region::new(s, e - s))
    }

    /// Adds `r` to the set (union). Empty regions are a no-op.
    pub fn insert(&mut self, r: Region) -> Result<(), RegionOverflow> {
        let end = r.end().ok_or(RegionOverflow)?;
        if r.is_empty() {
            return Ok(());
        }
        let (mut start, mut end) = (r.base, end);
        // First range that ends at or after `start`: it is the first that can
        // touch or overlap the new one (adjacent ranges merge too).
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].0 <= end {
            start = start.min(self.ranges[last].0);
            end = end.max(self.ranges[last].1);
            last += 1;
        }
        self.ranges.splice(first..last, [(start, end)]);
        Ok(())
    }

    /// Removes `r` from the set (difference); may split a range in two.
    pub fn remove(&mut self, r: Region) -> Result<(), RegionOverflow> {
        let end = r.end().ok_or(RegionOverflow)?;
        if r.is_empty() {
            return Ok(());
        }
        let start = r.base;
        // Ranges strictly overlapping [start, end): from the first that ends
        // after `start` up to the last that begins before `end`.
        let first = self.ranges.partition_point(|&(_, e)| e <= start);
        let mut last = first;
        while last < self.ranges.len() && self.ranges[last].0 < end {
            last += 1;
        }
        if first == last {
            return Ok(());
        }
        let mut keep: [(u64, u64); 2] = [(0, 0); 2];
        let mut n = 0;
        let (head_start, _) = self.ranges[first];
        let (_, tail_end) = self.ranges[last - 1];
        if head_start < start {
            keep[n] = (head_start, start);
            n += 1;
        }
        if end < tail_end {
            keep[n] = (end, tail_end);
            n += 1;
        }
        self.ranges.splice(first..last, keep[..n].iter().copied());
        Ok(())
    }

    /// True when every byte of `r` is in the set. Empty or overflowing
    /// regions are never "contained": callers use this to validate
    /// untrusted regions and must not accept a degenerate one.
    pub fn contains(&self, r: Region) -> bool {
        let Some(end) = r.end() else { return false };
        if r.is_empty() {
            return false;
        }
        // The set is merged, so a contained region lies inside one range.
        let i = self.ranges.partition_point(|&(_, e)| e <= r.base);
        match self.ranges.get(i) {
            Some(&(s, e)) => s <= r.base && end <= e,
            None => false,
        }
    }

    /// True when `addr` is in the set.
    pub fn contains_addr(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, e)| e <= addr);
        matches!(self.ranges.get(i), Some(&(s, _)) if s <= addr)
    }

    /// True when `r` shares at least one byte with the set.
    pub fn overlaps(&self, r: Region) -> bool {
        self.first_overlap(r).is_some()
    }

    /// The lowest range of the set that shares a byte with `r` (the whole
    /// stored range, for error messages). An overflowing `r` is treated as
    /// reaching the top of the address space.
    pub fn first_overlap(&self, r: Region) -> Option<Region> {
        if r.is_empty() {
            return None;
        }
        let end = r.end().unwrap_or(u64::MAX);
        let i = self.ranges.partition_point(|&(_, e)| e <= r.base);
        match self.ranges.get(i) {
            Some(&(s, e)) if s < end => Some(Region::new(s, e - s)),
            _ => None,
        }
    }

    /// Takes the lowest `size` bytes starting at a multiple of `align` out of
    /// the set and returns their base. `align` must be a power of two (0 is
    /// treated as 1); `size` must be non-zero.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let align = if align == 0 { 1 } else { align };
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let mask = align - 1;
        let base = self.ranges.iter().find_map(|&(s, e)| {
            let base = s.checked_add(mask)? & !mask;
            let end = base.checked_add(size)?;
            (end <= e).then_some(base)
        })?;
        // Cannot fail: the range was found inside the set and cannot overflow.
        self.remove(Region::new(base, size)).ok()?;
        Some(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(regions: &[(u64, u64)]) -> RegionSet {
        RegionSet::from_regions(regions.iter().map(|&(b, s)| Region::new(b, s))).unwrap()
    }

    fn list(s: &RegionSet) -> Vec<(u64, u64)> {
        s.iter().map(|r| (r.base, r.size)).collect()
    }

    #[test]
    fn region_basics() {
        let r = Region::new(0x1000, 0x1000);
        assert_eq!(r.end(), Some(0x2000));
        assert!(r.overlaps(&Region::new(0x1fff, 1)));
        assert!(!r.overlaps(&Region::new(0x2000, 1)));
        assert!(!r.overlaps(&Region::new(0x1000, 0)));
        assert!(r.contains(&Region::new(0x1000, 0x1000)));
        assert!(!r.contains(&Region::new(0x1000, 0x1001)));
        assert!(!r.contains(&Region::new(0x1800, 0)));
        assert!(Region::new(u64::MAX, 2).end().is_none());
        // An overflowing region reaches the top of the address space.
        assert!(Region::new(u64::MAX - 1, 10).overlaps(&Region::new(u64::MAX - 1, 1)));
        assert!(Region::new(0x20_0000, 0x40_0000).is_aligned(0x20_0000));
        assert!(!Region::new(0x20_0000, 0x1000).is_aligned(0x20_0000));
        assert!(!Region::new(0, 0).is_aligned(3));
        assert_eq!(alloc::format!("{}", r), "0x1000..0x2000");
    }

    #[test]
    fn insert_merges_overlapping_and_adjacent() {
        let mut s = set(&[(0x3000, 0x1000), (0x1000, 0x1000)]);
        assert_eq!(list(&s), [(0x1000, 0x1000), (0x3000, 0x1000)]);
        s.insert(Region::new(0x2000, 0x1000)).unwrap(); // fills the gap exactly
        assert_eq!(list(&s), [(0x1000, 0x3000)]);
        s.insert(Region::new(0x800, 0x4000)).unwrap(); // covers everything
        assert_eq!(list(&s), [(0x800, 0x4000)]);
        s.insert(Region::new(0x10000, 0)).unwrap(); // empty: no-op
        assert_eq!(s.len(), 1);
        assert_eq!(s.insert(Region::new(u64::MAX, 2)), Err(RegionOverflow));
        // The exclusive end must be representable: ending at 2^64 is refused.
        assert_eq!(
            s.insert(Region::new(u64::MAX - 0xfff, 0x1000)),
            Err(RegionOverflow)
        );
        s.insert(Region::new(u64::MAX - 0x1fff, 0x1000)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.total(), 0x5000);
    }

    #[test]
    fn remove_splits_and_trims() {
        let mut s = set(&[(0x1000, 0x4000)]);
        s.remove(Region::new(0x2000, 0x1000)).unwrap(); // middle: split
        assert_eq!(list(&s), [(0x1000, 0x1000), (0x3000, 0x2000)]);
        s.remove(Region::new(0x0, 0x1800)).unwrap(); // trims the head
        assert_eq!(list(&s), [(0x1800, 0x800), (0x3000, 0x2000)]);
        s.remove(Region::new(0x4800, 0x10000)).unwrap(); // trims the tail
        assert_eq!(list(&s), [(0x1800, 0x800), (0x3000, 0x1800)]);
        s.remove(Region::new(0x1c00, 0x1800)).unwrap(); // spans two ranges
        assert_eq!(list(&s), [(0x1800, 0x400), (0x3400, 0x1400)]);
        s.remove(Region::new(0x9000, 0x1000)).unwrap(); // nothing there
        s.remove(Region::new(0x0, 0)).unwrap();
        assert_eq!(s.len(), 2);
        s.remove(Region::new(0, 0x10000)).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.remove(Region::new(u64::MAX, 2)), Err(RegionOverflow));
    }

    #[test]
    fn contains_and_overlaps() {
        let s = set(&[(0x1000, 0x1000), (0x2000, 0x1000), (0x5000, 0x1000)]);
        // Adjacent inserts merged, so a region spanning both is contained.
        assert!(s.contains(Region::new(0x1800, 0x1000)));
        assert!(!s.contains(Region::new(0x2800, 0x1000)));
        assert!(!s.contains(Region::new(0x1000, 0)));
        assert!(!s.contains(Region::new(u64::MAX, 2)));
        assert!(s.contains_addr(0x5fff));
        assert!(!s.contains_addr(0x6000));
        assert!(!s.contains_addr(0x0));
        assert!(s.overlaps(Region::new(0x0, 0x1001)));
        assert!(!s.overlaps(Region::new(0x3000, 0x2000)));
        assert_eq!(
            s.first_overlap(Region::new(0x3000, 0x2001)),
            Some(Region::new(0x5000, 0x1000))
        );
        assert!(s.overlaps(Region::new(0x5800, u64::MAX))); // overflowing probe
        assert!(!s.overlaps(Region::new(0x5800, 0)));
    }

    #[test]
    fn alloc_lowest_fit_with_alignment() {
        let mut s = set(&[(0x1000, 0x1000), (0x10_0000, 0x40_0000)]);
        // Too big for the first range: comes from the second, aligned.
        assert_eq!(s.alloc(0x20_0000, 0x20_0000), Some(0x20_0000));
        assert_eq!(
            list(&s),
            [
                (0x1000, 0x1000),
                (0x10_0000, 0x10_0000),
                (0x40_0000, 0x10_0000)
            ]
        );
        assert_eq!(s.alloc(0x100, 0x1000), Some(0x1000));
        assert_eq!(s.alloc(0x100, 0), Some(0x1100));
        assert_eq!(s.alloc(0x100, 3), None); // not a power of two
        assert_eq!(s.alloc(0, 1), None);
        assert_eq!(s.alloc(0x100_0000, 1), None); // does not fit anywhere
        assert_eq!(s.alloc(0x10_0000, 0x10_0000), Some(0x10_0000));
        assert_eq!(s.alloc(0x10_0000, 1), Some(0x40_0000));
        assert_eq!(list(&s), [(0x1200, 0xe00)]);
        // Alignment rounding must not overflow at the top.
        let mut top = set(&[(u64::MAX - 0x1ff, 0x100)]);
        assert_eq!(top.alloc(0x10, 1 << 63), None);
        assert_eq!(top.alloc(0x100, 0x100), Some(u64::MAX - 0x1ff));
        assert!(top.is_empty());
    }

    /// Cross-check against a bitmap model on a small address space.
    #[test]
    fn matches_bitmap_model() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut s = RegionSet::new();
        let mut bits = [false; 256];
        for _ in 0..5000 {
            let base = rnd() % 256;
            let size = rnd() % (257 - base);
            let r = Region::new(base, size);
            match rnd() % 4 {
                0 | 1 => {
                    s.insert(r).unwrap();
                    bits[base as usize..(base + size) as usize].fill(true);
                }
                2 => {
                    s.remove(r).unwrap();
                    bits[base as usize..(base + size) as usize].fill(false);
                }
                _ => {
                    let want = size > 0
                        && bits[base as usize..(base + size) as usize]
                            .iter()
                            .all(|&b| b);
                    assert_eq!(s.contains(r), want, "contains {r:?}");
                    let any = bits[base as usize..(base + size) as usize]
                        .iter()
                        .any(|&b| b);
                    assert_eq!(s.overlaps(r), any, "overlaps {r:?}");
                }
            }
            // Invariants: sorted, disjoint, non-adjacent, non-empty.
            let v = list(&s);
            for w in v.windows(2) {
                assert!(w[0].0 + w[0].1 < w[1].0);
            }
            assert!(v.iter().all(|&(_, sz)| sz > 0));
            let model: usize = bits.iter().filter(|&&b| b).count();
            assert_eq!(s.total(), model as u64);
        }
    }
}
