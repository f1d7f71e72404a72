//! A small, validating reader for flattened device trees (DTB, spec v17).
//!
//! Why not the `fdt` crate: its 0.2.0-alpha3 "fallible" API still panics on
//! malformed blobs (an unchecked `u32` addition of header offsets that
//! slices out of bounds even in release builds, and a remainder by zero in
//! `Reg` when `#address-cells` and `#size-cells` are both 0). The hypervisor
//! parses the tree before it has anywhere to report a panic, and the tree is
//! input we do not control, so this reader validates the whole blob once,
//! up front, with checked arithmetic only, and builds a flat index of nodes
//! and properties. Every later query is a bounds-checked lookup in that
//! index and cannot fail on structure.
//!
//! Only what the hypervisor needs is provided: node/property lookup by path,
//! alias and phandle, cell decoding, `reg` decoding and `ranges` address
//! translation.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

// The format's numbers, shared with the writer (`fdt_writer`).
pub(crate) const FDT_MAGIC: u32 = 0xd00d_feed;
pub(crate) const HEADER_SIZE: usize = 40;
pub(crate) const TOKEN_BEGIN_NODE: u32 = 1;
pub(crate) const TOKEN_END_NODE: u32 = 2;
pub(crate) const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;
pub(crate) const TOKEN_END: u32 = 9;
/// Deeper trees are refused; real ones are < 10 levels and Linux stops at 64.
const MAX_DEPTH: usize = 64;

/// Why a blob is not a readable device tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtbError {
    pub what: &'static str,
    /// Byte offset into the blob where the problem was found.
    pub offset: usize,
}

impl DtbError {
    const fn at(what: &'static str, offset: usize) -> Self {
        Self { what, offset }
    }
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {:#x})", self.what, self.offset)
    }
}

#[derive(Debug, Clone)]
struct NodeRec<'a> {
    name: &'a str,
    parent: Option<usize>,
    /// Index range into `Dtb::props`.
    props_start: usize,
    props_end: usize,
    /// One past the last node of this node's subtree (nodes are stored in
    /// depth-first order, so a subtree is a contiguous index range).
    subtree_end: usize,
}

#[derive(Debug, Clone, Copy)]
struct PropRec<'a> {
    name: &'a str,
    value: &'a [u8],
}

/// A parsed device tree borrowing the blob.
#[derive(Debug, Clone)]
pub struct Dtb<'a> {
    nodes: Vec<NodeRec<'a>>,
    props: Vec<PropRec<'a>>,
    mem_reserve: Vec<(u64, u64)>,
    boot_cpuid: u32,
}

fn be32(blob: &[u8], off: usize) -> Option<u32> {
    let b = blob.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(blob: &[u8], off: usize) -> Option<u64> {
    let b = blob.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// The NUL-terminated UTF-8 string starting at `off` in `block`.
fn cstr_at(block: &[u8], off: usize) -> Option<&str> {
    let rest = block.get(off..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    core::str::from_utf8(&rest[..len]).ok()
}

impl<'a> Dtb<'a> {
    /// Validates `blob` completely and indexes it.
    pub fn parse(blob: &'a [u8]) -> Result<Self, DtbError> {
        let h = |i: usize| {
            be32(blob, i * 4).ok_or(DtbError::at("blob shorter than the 40-byte header", 0))
        };
        if h(0)? != FDT_MAGIC {
            return Err(DtbError::at("bad magic (not a flattened device tree)", 0));
        }
        let total = h(1)? as usize;
        let (off_struct, off_strings, off_rsv) = (h(2)? as usize, h(3)? as usize, h(4)? as usize);
        let (version, last_comp, boot_cpuid) = (h(5)?, h(6)?, h(7)?);
        let (size_strings, size_struct) = (h(8)? as usize, h(9)? as usize);
        if total < HEADER_SIZE || total > blob.len() {
            return Err(DtbError::at("header totalsize is larger than the blob", 4));
        }
        if version < 17 || last_comp > 17 {
            return Err(DtbError::at(
                "unsupported version (need v17-compatible)",
                20,
            ));
        }
        let blob = &blob[..total];
        let block = |off: usize,
                     size: usize,
                     what: &'static str,
                     hdr: usize|
         -> Result<&'a [u8], DtbError> {
            let end = off.checked_add(size).ok_or(DtbError::at(what, hdr))?;
            if off < HEADER_SIZE || end > total {
                return Err(DtbError::at(what, hdr));
            }
            Ok(&blob[off..end])
        };
        let structs = block(
            off_struct,
            size_struct,
            "structure block outside the blob",
            8,
        )?;
        let strings = block(
            off_strings,
            size_strings,
            "strings block outside the blob",
            12,
        )?;
        if !off_struct.is_multiple_of(4) {
            return Err(DtbError::at("structure block is not 4-byte aligned", 8));
        }
        if off_rsv < HEADER_SIZE || !off_rsv.is_multiple_of(8) {
            return Err(DtbError::at("bad memory reservation block offset", 16));
        }

        let mut mem_reserve = Vec::new();
        let mut off = off_rsv;
        loop {
            let (Some(addr), Some(size)) = (
                be64(blob, off),
                off.checked_add(8).and_then(|o| be64(blob, o)),
            ) else {
                return Err(DtbError::at(
                    "memory reservation block is not terminated",
                    off,
                ));
            };
            if addr == 0 && size == 0 {
                break;
            }
            if size != 0 {
                mem_reserve.push((addr, size));
            }
            off += 16;
        }

        let mut dtb = Dtb {
            nodes: Vec::new(),
            props: Vec::new(),
            mem_reserve,
            boot_cpuid,
        };
        dtb.walk(structs, strings, off_struct)?;
        Ok(dtb)
    }

    /// Walks the structure block, checking every token, length and offset.
    fn walk(&mut self, s: &'a [u8], strings: &'a [u8], base: usize) -> Result<(), DtbError> {
        let err = |what, pos: usize| DtbError::at(what, base.saturating_add(pos));
        let mut stack: Vec<usize> = Vec::new();
        // Whether the node on top of the stack already has a child; the spec
        // requires properties to precede subnodes, which keeps each node's
        // properties contiguous in `props`.
        let mut has_child: Vec<bool> = Vec::new();
        let mut root_closed = false;
        let mut pos = 0usize;
        // Property names repeat: check the strings block as UTF-8 once
        // (then any name in it is valid, as NUL is a character boundary);
        // only a block with a bad byte somewhere needs a check per name.
        let strings_utf8 = core::str::from_utf8(strings).ok();
        let name_at = |off: usize| match strings_utf8 {
            Some(st) => {
                let rest = st.get(off..)?;
                // Names are short: a byte loop beats a general search.
                rest.bytes().position(|b| b == 0).map(|len| &rest[..len])
            }
            None => cstr_at(strings, off),
        };
        loop {
            let tok = be32(s, pos).ok_or(err("structure block ends without FDT_END", pos))?;
            let tok_pos = pos;
            pos += 4;
            match tok {
                TOKEN_BEGIN_NODE => {
                    if root_closed {
                        return Err(err("node after the end of the root node", tok_pos));
                    }
                    if stack.len() >= MAX_DEPTH {
                        return Err(err("nodes nested too deeply", tok_pos));
                    }
                    let name = cstr_at(s, pos).ok_or(err("bad node name", pos))?;
                    pos = align4(pos + name.len() + 1).ok_or(err("bad node name", pos))?;
                    if let Some(top) = has_child.last_mut() {
                        *top = true;
                    }
                    let idx = self.nodes.len();
                    self.nodes.push(NodeRec {
                        name,
                        parent: stack.last().copied(),
                        props_start: self.props.len(),
                        props_end: self.props.len(),
                        subtree_end: idx + 1,
                    });
                    stack.push(idx);
                    has_child.push(false);
                }
                TOKEN_END_NODE => {
                    let idx = stack.pop().ok_or(err("unbalanced FDT_END_NODE", tok_pos))?;
                    has_child.pop();
                    self.nodes[idx].subtree_end = self.nodes.len();
                    root_closed = stack.is_empty();
                }
                TOKEN_PROP => {
                    let &cur = stack
                        .last()
                        .ok_or(err("property outside any node", tok_pos))?;
                    if has_child.last() == Some(&true) {
                        return Err(err("property after a subnode", tok_pos));
                    }
                    let len = be32(s, pos).ok_or(err("truncated property", pos))? as usize;
                    let nameoff = be32(s, pos + 4).ok_or(err("truncated property", pos))? as usize;
                    pos += 8;
                    let end = pos
                        .checked_add(len)
                        .ok_or(err("property value overruns the structure block", pos))?;
                    let value = s
                        .get(pos..end)
                        .ok_or(err("property value overruns the structure block", pos))?;
                    let name =
                        name_at(nameoff).ok_or(err("bad property name offset", tok_pos))?;
                    pos = align4(end)
                        .ok_or(err("property value overruns the structure block", pos))?;
                    self.props.push(PropRec { name, value });
                    self.nodes[cur].props_end = self.props.len();
                }
                TOKEN_NOP => {}
                TOKEN_END => {
                    if !root_closed {
                        return Err(err("FDT_END inside a node or before any node", tok_pos));
                    }
                    return Ok(());
                }
                _ => return Err(err("invalid structure token", tok_pos)),
            }
        }
    }

    /// The root node (a parsed tree always has one).
    pub fn root(&self) -> Node<'_, 'a> {
        Node { dtb: self, idx: 0 }
    }

    /// `/memreserve/` entries (address, size), zero-sized ones dropped.
    pub fn mem_reserve(&self) -> &[(u64, u64)] {
        &self.mem_reserve
    }

    pub fn boot_cpuid(&self) -> u32 {
        self.boot_cpuid
    }

    /// All nodes in depth-first order.
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_, 'a>> + '_ {
        (0..self.nodes.len()).map(move |idx| Node { dtb: self, idx })
    }

    /// Looks a node up by absolute path (`/chosen/domU0`) or by alias
    /// (`serial0`, `serial0/sub`). A path component without `@` matches a
    /// node whose name before the `@` is equal (first match), as in Linux.
    /// Anything from the first `:` on is ignored (`stdout-path` options).
    pub fn find(&self, path: &str) -> Option<Node<'_, 'a>> {
        let path = path.split(':').next().unwrap_or(path);
        if path.starts_with('/') {
            return self.find_from(self.root(), path);
        }
        // Alias: the first component names a property of /aliases whose
        // value is an absolute path; resolve exactly one level.
        let (alias, rest) = path.split_once('/').unwrap_or((path, ""));
        let aliases = self.find_from(self.root(), "/aliases")?;
        let target = aliases.prop_str(alias)?;
        if !target.starts_with('/') {
            return None;
        }
        let start = self.find_from(self.root(), target)?;
        self.find_from(start, rest)
    }

    fn find_from<'d>(&'d self, start: Node<'d, 'a>, path: &str) -> Option<Node<'d, 'a>> {
        let mut cur = start;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur = cur.child(comp)?;
        }
        Some(cur)
    }

    /// The node whose `phandle` (or legacy `linux,phandle`) is `ph`.
    pub fn by_phandle(&self, ph: u32) -> Option<Node<'_, 'a>> {
        if ph == 0 || ph == u32::MAX {
            return None;
        }
        self.nodes().find(|n| {
            n.prop("phandle").and_then(cell_u32) == Some(ph)
                || n.prop("linux,phandle").and_then(cell_u32) == Some(ph)
        })
    }

    /// First node (depth-first) whose `compatible` lists any of `compats`
    /// and whose `status` is not disabled.
    pub fn find_compatible(&self, compats: &[&str]) -> Option<Node<'_, 'a>> {
        self.nodes()
            .find(|n| n.is_enabled() && compats.iter().any(|c| n.is_compatible(c)))
    }
}

/// A node of a [`Dtb`]. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Node<'d, 'a> {
    dtb: &'d Dtb<'a>,
    idx: usize,
}

impl fmt::Debug for Node<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", self.path())
    }
}

impl PartialEq for Node<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self.dtb, other.dtb) && self.idx == other.idx
    }
}

impl<'d, 'a> Node<'d, 'a> {
    fn rec(&self) -> &'d NodeRec<'a> {
        &self.dtb.nodes[self.idx]
    }

    /// Full node name including any unit address (`module@49000000`).
    pub fn name(&self) -> &'a str {
        self.rec().name
    }

    /// Name without the unit address (`module`).
    pub fn base_name(&self) -> &'a str {
        let n = self.name();
        n.split('@').next().unwrap_or(n)
    }

    pub fn parent(&self) -> Option<Node<'d, 'a>> {
        self.rec().parent.map(|idx| Node { dtb: self.dtb, idx })
    }

    pub fn is_root(&self) -> bool {
        self.idx == 0
    }

    /// Absolute path, `/` for the root.
    pub fn path(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        let mut cur = Some(*self);
        while let Some(n) = cur {
            if n.is_root() {
                break;
            }
            parts.push(n.name());
            cur = n.parent();
        }
        if parts.is_empty() {
            return String::from("/");
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(p);
        }
        s
    }

    /// Direct children in tree order.
    pub fn children(&self) -> impl Iterator<Item = Node<'d, 'a>> + 'd {
        let dtb = self.dtb;
        let end = self.rec().subtree_end;
        let mut next = self.idx + 1;
        core::iter::from_fn(move || {
            if next >= end {
                return None;
            }
            let idx = next;
            next = dtb.nodes[idx].subtree_end;
            Some(Node { dtb, idx })
        })
    }

    /// Child by exact name, else (when `name` has no `@`) by base name.
    pub fn child(&self, name: &str) -> Option<Node<'d, 'a>> {
        self.children().find(|c| c.name() == name).or_else(|| {
            if name.contains('@') {
                None
            } else {
                self.children().find(|c| c.base_name() == name)
            }
        })
    }

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

    /// The interrupt parent: the nearest `interrupt-parent` on this node or
    /// an ancestor, resolved by phandle. `None` when none is declared or the
    /// phandle does not resolve.
    pub fn interrupt_parent(&self) -> Option<Node<'d, 'a>> {
        let mut cur = Some(*self);
        while let Some(n) = cur {
            if let Some(ph) = n.prop("interrupt-parent") {
                return self.dtb.by_phandle(cell_u32(ph)?);
            }
            cur = n.parent();
        }
        None
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;
    use vm_fdt::FdtWriter;

    /// A small tree exercising most of the reader.
    fn sample() -> Vec<u8> {
        let mut w =
            FdtWriter::new_with_mem_reserv(&[
                vm_fdt::FdtReserveEntry::new(0x4800_0000, 0x10_0000).unwrap()
            ])
            .unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let aliases = w.begin_node("aliases").unwrap();
        w.property_string("serial0", "/soc/serial@7e201000")
            .unwrap();
        w.end_node(aliases).unwrap();
        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_u32("phandle", 5).unwrap();
        w.end_node(gic).unwrap();
        let soc = w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        w.property_array_u32("ranges", &[0x7e00_0000, 0x0, 0xfe00_0000, 0x0180_0000])
            .unwrap();
        w.property_u32("interrupt-parent", 5).unwrap();
        let uart = w.begin_node("serial@7e201000").unwrap();
        w.property_string_list(
            "compatible",
            vec!["arm,pl011".into(), "arm,primecell".into()],
        )
        .unwrap();
        w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
        w.property_string("status", "okay").unwrap();
        w.end_node(uart).unwrap();
        let off = w.begin_node("serial@7e215040").unwrap();
        w.property_string("status", "disabled").unwrap();
        w.end_node(off).unwrap();
        w.end_node(soc).unwrap();
        let nomap = w.begin_node("bus").unwrap();
        let dev = w.begin_node("dev@10").unwrap();
        w.property_array_u32("reg", &[0, 0x10, 0x1]).unwrap();
        w.end_node(dev).unwrap();
        w.end_node(nomap).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn lookup_paths_aliases_phandles() {
        let blob = sample();
        let dt = Dtb::parse(&blob).unwrap();
        assert_eq!(dt.mem_reserve(), &[(0x4800_0000, 0x10_0000)]);
        let root = dt.root();
        assert_eq!(root.path(), "/");
        assert_eq!(
            root.children().map(|c| c.name()).collect::<Vec<_>>(),
            ["aliases", "intc@8000000", "soc", "bus"]
        );
        let uart = dt.find("/soc/serial@7e201000").unwrap();
        assert_eq!(uart.path(), "/soc/serial@7e201000");
        assert_eq!(dt.find("/soc/serial"), Some(uart)); // base-name match, first one
        assert_eq!(dt.find("serial0:115200n8"), Some(uart));
        assert_eq!(dt.find("/soc/serial@7e201000:115200"), Some(uart));
        assert!(dt.find("serial1").is_none());
        assert!(dt.find("/nope").is_none());
        assert!(uart.is_compatible("arm,primecell"));
        assert!(!uart.is_compatible("arm,pl01"));
        assert!(uart.is_enabled());
        assert!(!dt.find("/soc/serial@7e215040").unwrap().is_enabled());
        assert_eq!(
            uart.interrupt_parent().map(|n| n.name()),
            Some("intc@8000000")
        );
        assert_eq!(dt.find_compatible(&["arm,pl011"]), Some(uart));
        assert_eq!(uart.parent().unwrap().name(), "soc");
        assert_eq!(dt.by_phandle(5).unwrap().name(), "intc@8000000");
        assert!(dt.by_phandle(6).is_none());
    }

    #[test]
    fn reg_and_translation() {
        let blob = sample();
        let dt = Dtb::parse(&blob).unwrap();
        let uart = dt.find("serial0").unwrap();
        assert_eq!(uart.reg().unwrap(), Some(vec![(0x7e20_1000, 0x200)]));
        assert_eq!(
            uart.reg_translated().unwrap(),
            Some(vec![(0xfe20_1000, 0x200)])
        );
        // Address outside the bus window.
        assert!(uart.translate(0x1000).is_err());
        // A bus without `ranges` does not map its children.
        let dev = dt.find("/bus/dev@10").unwrap();
        assert_eq!(dev.reg().unwrap(), Some(vec![(0x10, 0x1)])); // defaults 2/1
        assert!(dev.reg_translated().is_err());
    }

    #[test]
    fn cell_helpers() {
        assert_eq!(
            read_cells(&[0, 0, 0, 1, 0, 0, 0, 2], 2),
            Some(0x1_0000_0002)
        );
        assert_eq!(
            read_cells(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2], 3),
            Some(0x1_0000_0002)
        );
        assert_eq!(read_cells(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2], 3), None);
        assert_eq!(read_cells(&[0, 0, 0, 1], 2), None);
        assert_eq!(read_cells(&[], 0), Some(0));
        assert_eq!(cell_u32(&[0, 0, 1, 0]), Some(256));
        assert_eq!(cell_u32(&[0, 0, 1]), None);
        assert_eq!(
            str_list(b"a\0bc\0").unwrap().collect::<Vec<_>>(),
            ["a", "bc"]
        );
        assert!(str_list(b"abc").is_none());
        assert!(str_list(b"").is_none());
        assert!(str_list(b"\xff\0").is_none());
        assert_eq!(
            decode_reg(&[0; 8], 0, 0),
            Err("#address-cells and #size-cells are both 0")
        );
        assert!(decode_reg(&[0; 12], 2, 2).is_err());
        assert_eq!(
            decode_reg(&[0, 0, 0, 1, 0, 0, 0, 2], 1, 1),
            Ok(vec![(1, 2)])
        );
        assert!(decode_reg(&[0; 8], 5, 0).is_err());
        assert_eq!(
            cells(&[0, 0, 0, 1, 0, 0, 0, 2])
                .unwrap()
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(cells(&[0]).is_none());
    }

    fn set_be32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn rejects_malformed_headers() {
        let good = sample();
        assert!(Dtb::parse(&good[..39]).is_err());
        assert!(Dtb::parse(&good[..good.len() - 1]).is_err()); // totalsize > blob
        let cases: &[(usize, u32)] = &[
            (0, 0xdeadbeef),   // magic
            (4, 8),            // totalsize below the header
            (8, 0xffff_fff0),  // struct offset huge
            (12, 0xffff_fff0), // strings offset: would overflow u32 arithmetic
            (32, 0xffff_ffff), // strings size
            (36, 0xffff_ffff), // struct size
            (16, 0x4),         // memreserve inside the header
            (16, 0x2c),        // memreserve misaligned
            (20, 16),          // version
            (24, 18),          // last compatible version
        ];
        for &(off, v) in cases {
            let mut b = good.clone();
            set_be32(&mut b, off, v);
            let e = Dtb::parse(&b);
            assert!(e.is_err(), "header field {off:#x} = {v:#x} accepted");
        }
    }

    #[test]
    fn rejects_malformed_structure() {
        let good = sample();
        let off_struct = be32(&good, 8).unwrap() as usize;
        let size_struct = be32(&good, 36).unwrap() as usize;
        // Every word of the structure block replaced by each token value or
        // garbage must never panic (and mostly errors).
        for word in (off_struct..off_struct + size_struct).step_by(4) {
            for v in [0, 1, 2, 3, 4, 9, 0x7fff_ffff, 0xffff_ffff, 0x100] {
                let mut b = good.clone();
                set_be32(&mut b, word, v);
                let _ = Dtb::parse(&b).map(|dt| {
                    // Exercise queries on whatever was accepted.
                    for n in dt.nodes() {
                        let _ = (n.path(), n.reg(), n.reg_translated(), n.interrupt_parent());
                    }
                    let _ = dt.find("serial0");
                });
            }
        }
        // Truncating the structure block anywhere is an error.
        for cut in (4..size_struct).step_by(4) {
            let mut b = good.clone();
            set_be32(&mut b, 36, cut as u32);
            assert!(Dtb::parse(&b).is_err(), "struct cut at {cut}");
        }
    }

    #[test]
    fn property_after_subnode_and_depth() {
        // Hand-built structure: root { sub {}; prop }.
        let mut s: Vec<u8> = Vec::new();
        let mut tok = |v: u32| s.extend_from_slice(&v.to_be_bytes());
        tok(TOKEN_BEGIN_NODE);
        tok(0);
        tok(TOKEN_BEGIN_NODE);
        tok(u32::from_be_bytes(*b"sub\0"));
        tok(TOKEN_END_NODE);
        tok(TOKEN_PROP);
        tok(0);
        tok(0);
        tok(TOKEN_END_NODE);
        tok(TOKEN_END);
        let blob = assemble(&s, b"x\0");
        assert_eq!(
            Dtb::parse(&blob).unwrap_err().what,
            "property after a subnode"
        );

        // 100 nested nodes exceed MAX_DEPTH.
        let mut s: Vec<u8> = Vec::new();
        for _ in 0..100 {
            s.extend_from_slice(&TOKEN_BEGIN_NODE.to_be_bytes());
            s.extend_from_slice(b"n\0\0\0");
        }
        for _ in 0..100 {
            s.extend_from_slice(&TOKEN_END_NODE.to_be_bytes());
        }
        s.extend_from_slice(&TOKEN_END.to_be_bytes());
        assert_eq!(
            Dtb::parse(&assemble(&s, b"")).unwrap_err().what,
            "nodes nested too deeply"
        );
    }

    /// Builds a blob from a raw structure block and strings block.
    pub(crate) fn assemble(structs: &[u8], strings: &[u8]) -> Vec<u8> {
        let rsv = HEADER_SIZE; // 40, 8-aligned
        let off_struct = rsv + 16;
        let off_strings = off_struct + structs.len();
        let total = off_strings + strings.len();
        let mut b = vec![0u8; total];
        for (i, v) in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            rsv as u32,
            17,
            16,
            0,
            strings.len() as u32,
            structs.len() as u32,
        ]
        .into_iter()
        .enumerate()
        {
            set_be32(&mut b, i * 4, v);
        }
        b[off_struct..off_strings].copy_from_slice(structs);
        b[off_strings..].copy_from_slice(strings);
        b
    }

    #[test]
    fn unterminated_memreserve() {
        let mut s: Vec<u8> = Vec::new();
        for v in [TOKEN_BEGIN_NODE, 0, TOKEN_END_NODE, TOKEN_END] {
            s.extend_from_slice(&u32::to_be_bytes(v));
        }
        let mut b = assemble(&s, b"");
        assert!(Dtb::parse(&b).is_ok());
        // Point the reservation map at the structure block (non-zero words
        // all the way to the end): no terminator within the blob.
        let len = b.len() as u32;
        set_be32(&mut b, 16, len - 8);
        b[len as usize - 8..].fill(0xff);
        assert_eq!(
            Dtb::parse(&b).unwrap_err().what,
            "memory reservation block is not terminated"
        );
    }
}
