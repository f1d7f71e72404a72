//! Validation and indexing of a blob: [`Dtb::parse`] checks the header, the
//! memory reservation block and every token, length and offset of the
//! structure block, with checked arithmetic only, and records the nodes and
//! properties in the flat index; [`DtbError`] says what was wrong and where.
//!
//! Hand-written rather than taken from the `fdt` crate, which panics on
//! malformed blobs (see the `dtb` module documentation): the tree is input
//! the hypervisor does not control and parses before it can report a panic.

use alloc::vec::Vec;
use core::fmt;

use super::{
    be32, Dtb, NodeRec, PropRec, FDT_MAGIC, HEADER_SIZE, TOKEN_BEGIN_NODE, TOKEN_END,
    TOKEN_END_NODE, TOKEN_NOP, TOKEN_PROP,
};

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
                    let name = name_at(nameoff).ok_or(err("bad property name offset", tok_pos))?;
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
}
