//! Finding nodes and moving between them: lookups on the whole tree (by
//! absolute path, alias, phandle, `compatible`) and a [`Node`]'s name,
//! parent, children, path and interrupt parent.

use alloc::string::String;
use alloc::vec::Vec;

use super::{cell_u32, Dtb, Node};

impl<'a> Dtb<'a> {
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

impl<'d, 'a> Node<'d, 'a> {
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
