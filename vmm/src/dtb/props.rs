//! Reading properties: a [`Node`]'s raw properties and typed accessors, the
//! decoders for property values (big-endian cells, string lists), and
//! addresses (`#address-cells`/`#size-cells`, `reg` decoding, translation
//! through the `ranges` of every ancestor bus).

use alloc::vec::Vec;

use super::{be32, Node};

impl<'d, 'a> Node<'d, 'a> {
    /// All properties as (name, raw value).
    pub fn props(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'd {
        let r = self.rec();
        self.dtb.props[r.props_start..r.props_end]
            .iter()
            .map(|p| (p.name, p.value))
    }

    /// Raw value of a property (first one with that name).
    pub fn prop(&self, name: &str) -> Option<&'a [u8]> {
        self.props().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn has_prop(&self, name: &str) -> bool {
        self.prop(name).is_some()
    }

    /// A property holding exactly one `u32` cell; `None` if absent or malformed.
    pub fn prop_u32(&self, name: &str) -> Option<u32> {
        self.prop(name).and_then(cell_u32)
    }

    /// First string of a string(-list) property.
    pub fn prop_str(&self, name: &str) -> Option<&'a str> {
        self.prop(name).and_then(|v| str_list(v)?.next())
    }

    /// Whether `compatible` lists `compat`.
    pub fn is_compatible(&self, compat: &str) -> bool {
        self.prop("compatible")
            .and_then(str_list)
            .is_some_and(|mut l| l.any(|c| c == compat))
    }

    /// `status` absent, "okay" or "ok" (the legacy spelling).
    pub fn is_enabled(&self) -> bool {
        match self.prop("status") {
            None => true,
            Some(v) => matches!(str_list(v).and_then(|mut l| l.next()), Some("okay" | "ok")),
        }
    }

    /// `#address-cells` / `#size-cells` this node declares for its children,
    /// with the given defaults when absent. `None` when present but malformed.
    pub fn child_cells(&self, default_ac: u32, default_sc: u32) -> Option<(u32, u32)> {
        let ac = match self.prop("#address-cells") {
            None => default_ac,
            Some(v) => cell_u32(v)?,
        };
        let sc = match self.prop("#size-cells") {
            None => default_sc,
            Some(v) => cell_u32(v)?,
        };
        Some((ac, sc))
    }

    /// Decodes this node's `reg` with the parent's `#address-cells` /
    /// `#size-cells` (spec defaults 2/1), without address translation.
    /// `Ok(None)` when there is no `reg`.
    pub fn reg(&self) -> Result<Option<Vec<(u64, u64)>>, &'static str> {
        let Some(v) = self.prop("reg") else {
            return Ok(None);
        };
        let (ac, sc) = match self.parent() {
            Some(p) => p
                .child_cells(2, 1)
                .ok_or("malformed #address-cells/#size-cells")?,
            None => (2, 1),
        };
        decode_reg(v, ac, sc).map(Some)
    }

    /// Like [`reg`](Self::reg) but with each address translated to a CPU
    /// physical address through the `ranges` of every ancestor bus.
    pub fn reg_translated(&self) -> Result<Option<Vec<(u64, u64)>>, &'static str> {
        let Some(entries) = self.reg()? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(entries.len());
        for (addr, size) in entries {
            out.push((self.translate(addr)?, size));
        }
        Ok(Some(out))
    }

    /// Translates an address in this node's `reg` address space (its
    /// parent's bus) up to the root's.
    pub fn translate(&self, mut addr: u64) -> Result<u64, &'static str> {
        let mut bus = self.parent();
        while let Some(b) = bus {
            let Some(up) = b.parent() else {
                return Ok(addr);
            }; // b is the root
            let ranges = b
                .prop("ranges")
                .ok_or("bus without 'ranges': not memory-mapped")?;
            if !ranges.is_empty() {
                let (cac, csc) = b
                    .child_cells(2, 1)
                    .ok_or("malformed #address-cells/#size-cells")?;
                let (pac, _) = up
                    .child_cells(2, 1)
                    .ok_or("malformed #address-cells/#size-cells")?;
                addr = translate_one(ranges, cac, pac, csc, addr)?;
            }
            bus = Some(up);
        }
        Ok(addr)
    }
}

/// Exactly one big-endian `u32` cell.
pub fn cell_u32(v: &[u8]) -> Option<u32> {
    if v.len() != 4 {
        return None;
    }
    be32(v, 0)
}

/// The `u32` cells of a property; `None` when its length is not a multiple of 4.
pub fn cells(v: &[u8]) -> Option<impl Iterator<Item = u32> + '_> {
    if !v.len().is_multiple_of(4) {
        return None;
    }
    Some(
        v.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])),
    )
}

/// Combines `n` cells (at most 2) into a number. `None` for `n > 2` unless
/// the extra high cells are zero.
pub fn read_cells(v: &[u8], n: u32) -> Option<u64> {
    let mut acc: u64 = 0;
    for i in 0..n as usize {
        let c = be32(v, i.checked_mul(4)?)?;
        if acc >> 32 != 0 {
            return None; // would shift significant bits out
        }
        acc = (acc << 32) | u64::from(c);
    }
    Some(acc)
}

/// A string-list property: NUL-terminated UTF-8 strings back to back.
/// `None` when not NUL-terminated or not UTF-8.
pub fn str_list(v: &[u8]) -> Option<impl Iterator<Item = &str>> {
    let (&last, body) = v.split_last()?;
    if last != 0 {
        return None;
    }
    let s = core::str::from_utf8(body).ok()?;
    Some(s.split('\0'))
}

/// Decodes a `reg`-style array of (address, size) pairs. Cell counts up to
/// 4 are accepted as long as the values fit in 64 bits.
pub fn decode_reg(v: &[u8], ac: u32, sc: u32) -> Result<Vec<(u64, u64)>, &'static str> {
    if ac > 4 || sc > 4 {
        return Err("unsupported #address-cells/#size-cells");
    }
    let entry = ((ac + sc) * 4) as usize;
    if entry == 0 {
        return Err("#address-cells and #size-cells are both 0");
    }
    if !v.len().is_multiple_of(entry) {
        return Err("reg length is not a multiple of the entry size");
    }
    let mut out = Vec::with_capacity(v.len() / entry);
    for e in v.chunks_exact(entry) {
        let addr = read_cells(e, ac).ok_or("reg address does not fit in 64 bits")?;
        let size =
            read_cells(&e[(ac * 4) as usize..], sc).ok_or("reg size does not fit in 64 bits")?;
        out.push((addr, size));
    }
    Ok(out)
}

/// Maps `addr` through one `ranges` property (child addr, parent addr, size).
fn translate_one(
    ranges: &[u8],
    cac: u32,
    pac: u32,
    csc: u32,
    addr: u64,
) -> Result<u64, &'static str> {
    if cac > 4 || pac > 4 || csc > 4 {
        return Err("unsupported cell count in ranges");
    }
    let entry = ((cac + pac + csc) * 4) as usize;
    if entry == 0 || !ranges.len().is_multiple_of(entry) {
        return Err("malformed ranges");
    }
    for e in ranges.chunks_exact(entry) {
        let child = read_cells(e, cac).ok_or("ranges value does not fit in 64 bits")?;
        let parent = read_cells(&e[(cac * 4) as usize..], pac)
            .ok_or("ranges value does not fit in 64 bits")?;
        let size = read_cells(&e[((cac + pac) * 4) as usize..], csc)
            .ok_or("ranges value does not fit in 64 bits")?;
        if addr >= child && addr - child < size {
            return parent
                .checked_add(addr - child)
                .ok_or("translated address overflows");
        }
    }
    Err("address not covered by the parent bus 'ranges'")
}
