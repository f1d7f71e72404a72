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
//!
//! The reader is split by concern: this file holds the format's numbers
//! and the flat index the other parts share; `parse` validates a blob and
//! builds the index (and defines [`DtbError`]); `tree` finds nodes (by
//! path, alias, phandle, `compatible`) and moves between them; `props`
//! reads and decodes property values (cells, string lists, `reg`, `ranges`).

use alloc::vec::Vec;
use core::fmt;

mod parse;
mod props;
mod tree;

pub use parse::DtbError;
pub use props::{cell_u32, cells, decode_reg, read_cells, str_list};

// The format's numbers, shared with the writer (`fdt_writer`).
pub(crate) const FDT_MAGIC: u32 = 0xd00d_feed;
pub(crate) const HEADER_SIZE: usize = 40;
pub(crate) const TOKEN_BEGIN_NODE: u32 = 1;
pub(crate) const TOKEN_END_NODE: u32 = 2;
pub(crate) const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;
pub(crate) const TOKEN_END: u32 = 9;

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
}

fn be32(blob: &[u8], off: usize) -> Option<u32> {
    let b = blob.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
pub(crate) mod tests;
