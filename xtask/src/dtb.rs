//! Device-tree editing: rebuild QEMU's own tree node by node with `vm-fdt`
//! and add the Xen dom0less `/chosen/domU*` nodes the hypervisor reads.
//!
//! The tree is rebuilt rather than edited in place because neither crate edits
//! blobs; copying every node and property keeps everything QEMU describes
//! (GIC, timer, PSCI, UARTs, phandles) byte for byte.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use fdt::nodes::Node;
use fdt::parsing::unaligned::UnalignedParser;
use fdt::parsing::NoPanic;
use fdt::Fdt;
use vm_fdt::{FdtReserveEntry, FdtWriter};

use crate::scenario::VmSpec;

type FNode<'a> = Node<'a, (UnalignedParser<'a>, NoPanic)>;

/// What a module node describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Kernel,
    Ramdisk,
}

impl ModuleKind {
    /// The dom0less `compatible` list of a module node of this kind.
    pub fn compatible(self) -> [&'static str; 2] {
        match self {
            ModuleKind::Kernel => ["multiboot,kernel", "multiboot,module"],
            ModuleKind::Ramdisk => ["multiboot,ramdisk", "multiboot,module"],
        }
    }
}

/// A file QEMU loads at a fixed physical address (`-device loader`), described
/// to the hypervisor by a `module@<addr>` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub kind: ModuleKind,
    pub path: PathBuf,
    pub addr: u64,
    pub size: u64,
}

fn vm_fdt_err(e: vm_fdt::Error) -> anyhow::Error {
    anyhow!("device tree writer: {e}")
}

fn parse_err(e: fdt::FdtError) -> anyhow::Error {
    anyhow!("device tree parser: {e}")
}

/// The memory reservation block of a blob (the `fdt` crate does not expose
/// it): pairs of big-endian u64 (address, size) ending with (0, 0).
pub fn mem_reservations(blob: &[u8]) -> Result<Vec<(u64, u64)>> {
    let be32 = |off: usize| -> Result<u32> {
        let b = blob
            .get(off..off + 4)
            .context("device tree header truncated")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let be64 = |off: usize| -> Result<u64> {
        let b = blob
            .get(off..off + 8)
            .context("memory reservation block truncated")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    };
    let mut off = be32(16)? as usize;
    let mut out = Vec::new();
    loop {
        let (addr, size) = (be64(off)?, be64(off + 8)?);
        if addr == 0 && size == 0 {
            return Ok(out);
        }
        out.push((addr, size));
        off += 16;
    }
}

/// Copies `base` and adds one `/chosen/<vm.name>` node per VM; `modules[i]`
/// are the modules of `vms[i]`. `/chosen` is created if QEMU had none.
pub fn patch_dtb(base: &[u8], vms: &[VmSpec], modules: &[Vec<Module>]) -> Result<Vec<u8>> {
    patch_dtb_with(base, vms, modules, &[])
}

/// [`patch_dtb`], plus properties for `/chosen` itself (hypervisor
/// settings such as `blink,rejuvenate-interval-ms`).
pub fn patch_dtb_with(
    base: &[u8],
    vms: &[VmSpec],
    modules: &[Vec<Module>],
    chosen: &[(String, Vec<u8>)],
) -> Result<Vec<u8>> {
    if vms.len() != modules.len() {
        bail!("{} VMs but {} module lists", vms.len(), modules.len());
    }
    let fdt = Fdt::new_unaligned_fallible(base).map_err(parse_err)?;
    let reservations = mem_reservations(base)?
        .into_iter()
        .map(|(a, s)| FdtReserveEntry::new(a, s))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(vm_fdt_err)?;
    let mut w = FdtWriter::new_with_mem_reserv(&reservations).map_err(vm_fdt_err)?;
    w.set_boot_cpuid_phys(fdt.header().boot_cpuid);

    let root: FNode = fdt::nodes::AsNode::as_node(&fdt.root().map_err(parse_err)?);
    let root_handle = w.begin_node("").map_err(vm_fdt_err)?;
    copy_props(&mut w, root)?;
    let mut saw_chosen = false;
    for child in root.children().map_err(parse_err)? {
        let child = child.map_err(parse_err)?;
        let name = child.name().map_err(parse_err)?.to_string();
        if name == "chosen" {
            saw_chosen = true;
            let h = w.begin_node("chosen").map_err(vm_fdt_err)?;
            copy_props(&mut w, child)?;
            for (name, value) in chosen {
                for prop in child.properties().map_err(parse_err)? {
                    if prop.map_err(parse_err)?.name == name.as_str() {
                        bail!("/chosen/{name} already exists in the base device tree");
                    }
                }
                w.property(name, value).map_err(vm_fdt_err)?;
            }
            for grandchild in child.children().map_err(parse_err)? {
                let grandchild = grandchild.map_err(parse_err)?;
                let gname = grandchild.name().map_err(parse_err)?.to_string();
                if vms.iter().any(|vm| vm.name == gname) {
                    bail!("/chosen/{gname} already exists in the base device tree");
                }
                copy_node(&mut w, grandchild, &gname)?;
            }
            write_domus(&mut w, vms, modules)?;
            w.end_node(h).map_err(vm_fdt_err)?;
        } else {
            copy_node(&mut w, child, &name)?;
        }
    }
    if !saw_chosen && (!vms.is_empty() || !chosen.is_empty()) {
        let h = w.begin_node("chosen").map_err(vm_fdt_err)?;
        for (name, value) in chosen {
            w.property(name, value).map_err(vm_fdt_err)?;
        }
        write_domus(&mut w, vms, modules)?;
        w.end_node(h).map_err(vm_fdt_err)?;
    }
    w.end_node(root_handle).map_err(vm_fdt_err)?;
    w.finish().map_err(vm_fdt_err)
}

fn copy_props(w: &mut FdtWriter, node: FNode) -> Result<()> {
    for prop in node.properties().map_err(parse_err)? {
        let prop = prop.map_err(parse_err)?;
        w.property(prop.name, prop.value)
            .map_err(vm_fdt_err)
            .with_context(|| format!("copying property {}", prop.name))?;
    }
    Ok(())
}

/// Recursion is bounded: vm-fdt refuses to open a node deeper than 64 levels,
/// and that error ends the walk.
fn copy_node(w: &mut FdtWriter, node: FNode, name: &str) -> Result<()> {
    let h = w
        .begin_node(name)
        .map_err(vm_fdt_err)
        .with_context(|| format!("copying node {name}"))?;
    copy_props(w, node)?;
    for child in node.children().map_err(parse_err)? {
        let child = child.map_err(parse_err)?;
        let child_name = child.name().map_err(parse_err)?.to_string();
        copy_node(w, child, &child_name)?;
    }
    w.end_node(h).map_err(vm_fdt_err)
}

fn be_u32(v: u32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn be_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn string_list(items: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in items {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

/// The properties of a domU node, before `extra_props` are applied.
fn domu_props(vm: &VmSpec) -> Vec<(String, Vec<u8>)> {
    let mut props = vec![
        ("compatible".to_string(), string_list(&["xen,domain"])),
        ("#address-cells".to_string(), be_u32(2)),
        ("#size-cells".to_string(), be_u32(2)),
        // Xen encodes the size in KiB as a 64-bit (two-cell) value.
        ("memory".to_string(), be_u64s(&[vm.mem_kib])),
        ("cpus".to_string(), be_u32(vm.cpus)),
        ("vpl011".to_string(), Vec::new()),
    ];
    if let Some((addr, size)) = vm.static_mem {
        props.push(("#xen,static-mem-address-cells".to_string(), be_u32(2)));
        props.push(("#xen,static-mem-size-cells".to_string(), be_u32(2)));
        props.push(("xen,static-mem".to_string(), be_u64s(&[addr, size])));
    }
    // An extra property with a standard name replaces it: a node must not
    // carry the same property twice, and negative tests need overrides.
    for (name, value) in &vm.extra_props {
        match props.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => props.push((name.clone(), value.clone())),
        }
    }
    props
}

fn write_domus(w: &mut FdtWriter, vms: &[VmSpec], modules: &[Vec<Module>]) -> Result<()> {
    for (vm, mods) in vms.iter().zip(modules) {
        let h = w
            .begin_node(&vm.name)
            .map_err(vm_fdt_err)
            .with_context(|| format!("VM name {:?} is not a valid node name", vm.name))?;
        for (name, value) in domu_props(vm) {
            w.property(&name, &value)
                .map_err(vm_fdt_err)
                .with_context(|| format!("/chosen/{}: property {name:?}", vm.name))?;
        }
        for m in mods {
            let mh = w
                .begin_node(&format!("module@{:x}", m.addr))
                .map_err(vm_fdt_err)?;
            w.property("compatible", &string_list(&m.kind.compatible()))
                .map_err(vm_fdt_err)?;
            w.property("reg", &be_u64s(&[m.addr, m.size]))
                .map_err(vm_fdt_err)?;
            if m.kind == ModuleKind::Kernel {
                if let Some(args) = &vm.bootargs {
                    w.property_string("bootargs", args).map_err(vm_fdt_err)?;
                }
            }
            w.end_node(mh).map_err(vm_fdt_err)?;
        }
        w.end_node(h).map_err(vm_fdt_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdt::nodes::AsNode;

    /// A small QEMU-like tree: root props, memory, a GIC with a phandle,
    /// nested nodes, `/chosen` with a property, and a memory reservation.
    fn sample_base(with_chosen: bool) -> Vec<u8> {
        let mut w =
            FdtWriter::new_with_mem_reserv(
                &[FdtReserveEntry::new(0x4800_0000, 0x10_0000).unwrap()],
            )
            .unwrap();
        w.set_boot_cpuid_phys(0);
        let root = w.begin_node("").unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", 0x8003).unwrap();
        let mem = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000])
            .unwrap();
        w.end_node(mem).unwrap();
        let intc = w.begin_node("intc@8000000").unwrap();
        w.property_phandle(0x8003).unwrap();
        w.property_null("interrupt-controller").unwrap();
        let its = w.begin_node("its@8080000").unwrap();
        w.property_null("msi-controller").unwrap();
        w.end_node(its).unwrap();
        w.end_node(intc).unwrap();
        if with_chosen {
            let chosen = w.begin_node("chosen").unwrap();
            w.property_string("stdout-path", "/pl011@9000000").unwrap();
            w.end_node(chosen).unwrap();
        }
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    fn vm(name: &str) -> VmSpec {
        VmSpec::new(name, "/nonexistent/kernel.bin")
    }

    fn kernel(addr: u64, size: u64) -> Module {
        Module {
            kind: ModuleKind::Kernel,
            path: "k".into(),
            addr,
            size,
        }
    }

    fn prop<'a>(node: FNode<'a>, name: &str) -> Option<&'a [u8]> {
        node.properties()
            .unwrap()
            .find(name)
            .unwrap()
            .map(|p| p.value)
    }

    fn node<'a>(fdt: &Fdt<'a, (UnalignedParser<'a>, NoPanic)>, path: &str) -> FNode<'a> {
        fdt.find_node(path)
            .unwrap()
            .unwrap_or_else(|| panic!("{path} missing"))
    }

    #[test]
    fn adds_domus_and_keeps_everything_else() {
        let base = sample_base(true);
        let vms = vec![
            vm("domU0").mem_mib(64).bootargs("console=ttyAMA0"),
            vm("domU1")
                .cpus(4)
                .static_mem(0x6000_0000, 0x0200_0000)
                .ramdisk("/r"),
        ];
        let mods = vec![
            vec![kernel(0x4900_0000, 0x1234)],
            vec![
                kernel(0x4920_0000, 0x10),
                Module {
                    kind: ModuleKind::Ramdisk,
                    path: "r".into(),
                    addr: 0x4940_0000,
                    size: 0x20,
                },
            ],
        ];
        let out = patch_dtb(&base, &vms, &mods).unwrap();
        let fdt = Fdt::new_unaligned_fallible(&out).unwrap();

        // Original content survives, byte for byte.
        let root = fdt.root().unwrap().as_node();
        assert_eq!(prop(root, "compatible"), Some(&b"linux,dummy-virt\0"[..]));
        assert_eq!(
            prop(root, "interrupt-parent"),
            Some(&0x8003u32.to_be_bytes()[..])
        );
        let mem = node(&fdt, "/memory@40000000");
        assert_eq!(
            prop(mem, "reg"),
            Some(&be_u64s(&[0x4000_0000, 0x4000_0000])[..])
        );
        let intc = node(&fdt, "/intc@8000000");
        assert_eq!(prop(intc, "phandle"), Some(&0x8003u32.to_be_bytes()[..]));
        assert_eq!(prop(intc, "interrupt-controller"), Some(&[][..]));
        assert!(prop(node(&fdt, "/intc@8000000/its@8080000"), "msi-controller").is_some());
        let chosen = node(&fdt, "/chosen");
        assert_eq!(prop(chosen, "stdout-path"), Some(&b"/pl011@9000000\0"[..]));
        assert_eq!(mem_reservations(&out).unwrap(), [(0x4800_0000, 0x10_0000)]);

        // domU0: the contract's properties and one kernel module with bootargs.
        let d0 = node(&fdt, "/chosen/domU0");
        assert_eq!(prop(d0, "compatible"), Some(&b"xen,domain\0"[..]));
        assert_eq!(prop(d0, "#address-cells"), Some(&be_u32(2)[..]));
        assert_eq!(prop(d0, "#size-cells"), Some(&be_u32(2)[..]));
        assert_eq!(prop(d0, "memory"), Some(&[0, 0, 0, 0, 0, 1, 0, 0][..]));
        assert_eq!(prop(d0, "cpus"), Some(&be_u32(1)[..]));
        assert_eq!(prop(d0, "vpl011"), Some(&[][..]));
        assert!(prop(d0, "xen,static-mem").is_none());
        let k0 = node(&fdt, "/chosen/domU0/module@49000000");
        assert_eq!(
            prop(k0, "compatible"),
            Some(&b"multiboot,kernel\0multiboot,module\0"[..])
        );
        assert_eq!(prop(k0, "reg"), Some(&be_u64s(&[0x4900_0000, 0x1234])[..]));
        assert_eq!(prop(k0, "bootargs"), Some(&b"console=ttyAMA0\0"[..]));
        let regs: Vec<_> = k0.reg().unwrap().unwrap().iter::<u64, u64>().collect();
        assert_eq!(regs.len(), 1);

        // domU1: static memory, 4 CPUs, a ramdisk, no bootargs.
        let d1 = node(&fdt, "/chosen/domU1");
        assert_eq!(prop(d1, "cpus"), Some(&be_u32(4)[..]));
        assert_eq!(
            prop(d1, "xen,static-mem"),
            Some(&be_u64s(&[0x6000_0000, 0x0200_0000])[..])
        );
        assert_eq!(
            prop(d1, "#xen,static-mem-address-cells"),
            Some(&be_u32(2)[..])
        );
        assert!(prop(node(&fdt, "/chosen/domU1/module@49200000"), "bootargs").is_none());
        let rd = node(&fdt, "/chosen/domU1/module@49400000");
        assert_eq!(
            prop(rd, "compatible"),
            Some(&b"multiboot,ramdisk\0multiboot,module\0"[..])
        );
        let modules: Vec<String> = d1
            .children()
            .unwrap()
            .iter()
            .map(|c| c.unwrap().name().unwrap().to_string())
            .collect();
        assert_eq!(modules, ["module@49200000", "module@49400000"]);
    }

    #[test]
    fn creates_chosen_when_missing() {
        let out = patch_dtb(
            &sample_base(false),
            &[vm("domU0")],
            &[vec![kernel(0x4900_0000, 8)]],
        )
        .unwrap();
        let fdt = Fdt::new_unaligned_fallible(&out).unwrap();
        assert!(fdt
            .find_node("/chosen/domU0/module@49000000")
            .unwrap()
            .is_some());
    }

    #[test]
    fn omitted_kernel_means_no_module_node() {
        let out = patch_dtb(&sample_base(true), &[vm("domU0").omit_kernel()], &[vec![]]).unwrap();
        let fdt = Fdt::new_unaligned_fallible(&out).unwrap();
        let d0 = node(&fdt, "/chosen/domU0");
        assert_eq!(d0.children().unwrap().iter().count(), 0);
    }

    #[test]
    fn extra_props_add_or_override() {
        let spec = vm("domU0")
            .prop("cpus", 64u32.to_be_bytes().to_vec())
            .prop("blink,test", b"x\0".to_vec());
        let out = patch_dtb(&sample_base(true), &[spec], &[vec![]]).unwrap();
        let fdt = Fdt::new_unaligned_fallible(&out).unwrap();
        let d0 = node(&fdt, "/chosen/domU0");
        let cpus: Vec<_> = d0
            .properties()
            .unwrap()
            .iter()
            .map(|p| p.unwrap())
            .filter(|p| p.name == "cpus")
            .collect();
        assert_eq!(cpus.len(), 1, "a property must not appear twice");
        assert_eq!(cpus[0].value, be_u32(64));
        assert_eq!(prop(d0, "blink,test"), Some(&b"x\0"[..]));
    }

    #[test]
    fn chosen_settings_are_added_once() {
        let setting = [("blink,rejuvenate-interval-ms".to_string(), be_u32(3000))];
        for with_chosen in [true, false] {
            let out = patch_dtb_with(
                &sample_base(with_chosen),
                &[vm("domU0")],
                &[vec![]],
                &setting,
            )
            .unwrap();
            let fdt = Fdt::new_unaligned_fallible(&out).unwrap();
            let chosen = node(&fdt, "/chosen");
            assert_eq!(
                prop(chosen, "blink,rejuvenate-interval-ms"),
                Some(&be_u32(3000)[..])
            );
            // Applying it twice would duplicate the property: refused.
            assert!(patch_dtb_with(&out, &[], &[], &setting).is_err());
        }
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        assert!(patch_dtb(b"not a device tree", &[], &[]).is_err());
        assert!(patch_dtb(&[], &[], &[]).is_err());
        let mut truncated = sample_base(true);
        truncated.truncate(truncated.len() / 2);
        assert!(patch_dtb(&truncated, &[], &[]).is_err());
        // A VM name that is not a valid node name.
        assert!(patch_dtb(&sample_base(true), &[vm("9bad name")], &[vec![]]).is_err());
        // A name clash with an existing /chosen child.
        let once = patch_dtb(&sample_base(true), &[vm("domU0")], &[vec![]]).unwrap();
        assert!(patch_dtb(&once, &[vm("domU0")], &[vec![]]).is_err());
    }
}
