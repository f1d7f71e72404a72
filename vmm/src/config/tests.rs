use super::*;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use vm_fdt::FdtWriter;

const MIB: u64 = 1 << 20;

static QEMU_V3: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv3.dtb");
static QEMU_V2: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv2.dtb");
static QEMU_V3_DOMUS: &[u8] = include_bytes!("../../testdata/qemu-virt-gicv3-domus.dtb");

fn limits() -> Limits {
    Limits {
        max_vcpus: 8,
        max_vms: 4,
        // Hypervisor image and the DTB, as on QEMU virt.
        reserved: vec![
            Region::new(0x4000_0000, 0x400_0000),
            Region::new(0x4800_0000, MIB),
        ],
        ram: vec![Region::new(0x4000_0000, 0x4000_0000)],
    }
}

fn cells(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|c| c.to_be_bytes()).collect()
}

fn strs(v: &[&str]) -> Vec<u8> {
    v.iter().flat_map(|s| s.bytes().chain([0])).collect()
}

fn reg22(base: u64, size: u64) -> Vec<u8> {
    cells(&[
        (base >> 32) as u32,
        base as u32,
        (size >> 32) as u32,
        size as u32,
    ])
}

type Props = Vec<(String, Vec<u8>)>;

fn set(props: &mut Props, name: &str, value: Vec<u8>) {
    match props.iter_mut().find(|(n, _)| n == name) {
        Some(p) => p.1 = value,
        None => props.push((name.into(), value)),
    }
}

/// A `xen,domain` node under construction: starts as a valid 64 MiB, 1 vCPU
/// VM with a kernel at 0x4900_0000.
#[derive(Clone)]
struct Dom {
    name: String,
    props: Props,
    modules: Vec<(String, Props)>,
}

impl Dom {
    fn new(name: &str) -> Self {
        Dom {
            name: name.into(),
            props: vec![
                ("compatible".into(), strs(&["xen,domain"])),
                ("#address-cells".into(), cells(&[2])),
                ("#size-cells".into(), cells(&[2])),
                ("memory".into(), cells(&[0, 0x10000])),
                ("cpus".into(), cells(&[1])),
                ("vpl011".into(), vec![]),
            ],
            modules: vec![],
        }
        .kernel(0x4900_0000, 2 * MIB)
    }
    fn set(mut self, name: &str, value: Vec<u8>) -> Self {
        set(&mut self.props, name, value);
        self
    }
    fn unset(mut self, name: &str) -> Self {
        self.props.retain(|(n, _)| n != name);
        self
    }
    fn no_modules(mut self) -> Self {
        self.modules.clear();
        self
    }
    fn module(mut self, name: &str, compat: &[&str], reg: Vec<u8>) -> Self {
        self.modules.push((
            name.into(),
            vec![("compatible".into(), strs(compat)), ("reg".into(), reg)],
        ));
        self
    }
    fn kernel(self, base: u64, size: u64) -> Self {
        self.module(
            &format!("module@{base:x}"),
            &["multiboot,kernel", "multiboot,module"],
            reg22(base, size),
        )
    }
    fn ramdisk(self, base: u64, size: u64) -> Self {
        self.module(
            &format!("module@{base:x}"),
            &["multiboot,ramdisk", "multiboot,module"],
            reg22(base, size),
        )
    }
    /// Sets a property on the most recently added module.
    fn module_prop(mut self, name: &str, value: Vec<u8>) -> Self {
        let m = self.modules.last_mut().expect("no module");
        set(&mut m.1, name, value);
        self
    }
    fn write(&self, w: &mut FdtWriter) {
        let n = w.begin_node(&self.name).unwrap();
        for (k, v) in &self.props {
            w.property(k, v).unwrap();
        }
        for (name, props) in &self.modules {
            let m = w.begin_node(name).unwrap();
            for (k, v) in props {
                w.property(k, v).unwrap();
            }
            w.end_node(m).unwrap();
        }
        w.end_node(n).unwrap();
    }
}

/// A host tree whose /chosen holds `doms`.
fn tree(doms: &[Dom]) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let chosen = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "/pl011@9000000").unwrap();
    for d in doms {
        d.write(&mut w);
    }
    w.end_node(chosen).unwrap();
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn parse(doms: &[Dom]) -> ParsedVms {
    parse_vms(&tree(doms), &limits()).unwrap()
}

/// Parses a single domain that must be refused; returns the problem.
fn refused(d: Dom) -> String {
    let p = parse(&[d]);
    assert!(p.vms.is_empty(), "accepted: {:?}", p.vms);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(p.errors[0].path, "/chosen/domU0");
    p.errors[0].problem.clone()
}

fn accepted(d: Dom) -> VmConfig {
    let p = parse(&[d]);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.vms.len(), 1);
    p.vms.into_iter().next().unwrap()
}

#[test]
fn contract_example() {
    let d = Dom::new("domU0").module_prop("bootargs", strs(&["console=ttyAMA0"]));
    let vm = accepted(d);
    assert_eq!(
        vm,
        VmConfig {
            name: "domU0".into(),
            path: "/chosen/domU0".into(),
            memory: 64 * MIB,
            vcpus: 1,
            kernel: Module {
                base: 0x4900_0000,
                size: 0x20_0000
            },
            ramdisk: None,
            bootargs: Some("console=ttyAMA0".into()),
            static_mem: None,
            passthrough: Vec::new(),
        }
    );
}

#[test]
fn qemu_tree_with_domus() {
    let p = parse_vms(QEMU_V3_DOMUS, &limits()).unwrap();
    assert_eq!(p.vms.len(), 2);
    assert_eq!(p.vms[0].name, "domU0");
    assert_eq!(p.vms[0].bootargs.as_deref(), Some("console=ttyAMA0"));
    // domU1 uses 1/1 cells for its modules.
    assert_eq!(p.vms[1].memory, 128 * MIB);
    assert_eq!(p.vms[1].vcpus, 2);
    assert_eq!(
        p.vms[1].kernel,
        Module {
            base: 0x4920_0000,
            size: 0x20_0000
        }
    );
    assert_eq!(
        p.vms[1].ramdisk,
        Some(Module {
            base: 0x4940_0000,
            size: 0x10_0000
        })
    );
    assert_eq!(p.errors.len(), 1);
    assert_eq!(p.errors[0].to_string(), "/chosen/domU2: cpus is 0");
    // The plain QEMU tree has a /chosen without VMs.
    assert_eq!(parse_vms(QEMU_V3, &limits()).unwrap(), ParsedVms::default());
}

#[test]
fn good_vms_survive_bad_ones() {
    let p = parse(&[
        Dom::new("domU0"),
        Dom::new("domU1").set("cpus", cells(&[0])),
        Dom::new("domU2")
            .no_modules()
            .kernel(0x4a00_0000, 4 * MIB)
            .ramdisk(0x4a40_0000, MIB),
    ]);
    assert_eq!(
        p.vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["domU0", "domU2"]
    );
    assert_eq!(
        p.vms[1].ramdisk,
        Some(Module {
            base: 0x4a40_0000,
            size: MIB
        })
    );
    assert_eq!(
        p.errors,
        [ConfigError {
            path: "/chosen/domU1".into(),
            problem: "cpus is 0".into()
        }]
    );
}

#[test]
fn only_xen_domain_children_are_vms() {
    let mut not_vm = Dom::new("module@49000000");
    not_vm.props[0].1 = strs(&["multiboot,kernel"]);
    let p = parse(&[
        not_vm,
        Dom::new("domU0").unset("compatible"),
        Dom::new("domU1"),
    ]);
    assert_eq!(p.vms.len(), 1);
    assert_eq!(p.vms[0].path, "/chosen/domU1");
    assert!(p.errors.is_empty());
    // Extra compatibles are fine.
    let vm = accepted(Dom::new("domU0").set("compatible", strs(&["vendor,thing", "xen,domain"])));
    assert_eq!(vm.name, "domU0");
}

#[test]
fn no_chosen_means_no_vms() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    assert_eq!(parse_vms(&blob, &limits()).unwrap(), ParsedVms::default());
}

#[test]
fn unreadable_tree_is_a_dt_error() {
    let e = parse_vms(b"not a device tree at all, just some bytes....", &limits()).unwrap_err();
    assert!(e.reason.contains("bad magic"), "{e}");
    let mut blob = tree(&[Dom::new("domU0")]);
    blob.truncate(blob.len() - 8);
    assert!(parse_vms(&blob, &limits()).is_err());
    assert!(parse_vms(&[], &limits()).is_err());
}

#[test]
fn memory_rules() {
    assert_eq!(
        refused(Dom::new("domU0").unset("memory")),
        "no memory property"
    );
    assert_eq!(
        refused(Dom::new("domU0").set("memory", cells(&[0, 0]))),
        "memory is 0"
    );
    assert_eq!(
        refused(Dom::new("domU0").set("memory", cells(&[0, 3072]))),
        "memory 3072 KiB is not a multiple of 2 MiB (2048 KiB)"
    );
    assert_eq!(
        refused(Dom::new("domU0").set("memory", cells(&[0, 0, 1]))),
        "memory must be a 64-bit KiB count (2 cells), got 12 bytes"
    );
    assert!(
        refused(Dom::new("domU0").set("memory", cells(&[0xffff_ffff, 0xffff_f800])))
            .contains("too large")
    );
    // One cell is tolerated; 64-bit values above 4 GiB KiB work.
    assert_eq!(
        accepted(Dom::new("domU0").set("memory", cells(&[0x800]))).memory,
        2 * MIB
    );
    assert_eq!(
        accepted(Dom::new("domU0").set("memory", cells(&[1, 0]))).memory,
        1 << 42
    );
}

#[test]
fn cpus_rules() {
    assert_eq!(accepted(Dom::new("domU0").unset("cpus")).vcpus, 1);
    assert_eq!(
        accepted(Dom::new("domU0").set("cpus", cells(&[8]))).vcpus,
        8
    );
    assert_eq!(
        refused(Dom::new("domU0").set("cpus", cells(&[0]))),
        "cpus is 0"
    );
    assert_eq!(
        refused(Dom::new("domU0").set("cpus", cells(&[9]))),
        "cpus = 9 exceeds the maximum of 8 vCPUs"
    );
    assert_eq!(
        refused(Dom::new("domU0").set("cpus", cells(&[0, 1]))),
        "cpus must be one 32-bit cell"
    );
}

#[test]
fn kernel_rules() {
    assert_eq!(
        refused(Dom::new("domU0").no_modules()),
        "no multiboot,kernel module"
    );
    assert_eq!(
        refused(Dom::new("domU0").no_modules().ramdisk(0x4a00_0000, MIB)),
        "no multiboot,kernel module"
    );
    assert_eq!(
        refused(Dom::new("domU0").kernel(0x4a00_0000, MIB)),
        "two multiboot,kernel modules (module@49000000 and module@4a000000)"
    );
    assert_eq!(
        refused(
            Dom::new("domU0")
                .ramdisk(0x4a00_0000, MIB)
                .ramdisk(0x4b00_0000, MIB)
        ),
        "two multiboot,ramdisk modules (module@4a000000 and module@4b000000)"
    );
    assert_eq!(
        refused(Dom::new("domU0").ramdisk(0x4910_0000, MIB)),
        "kernel 0x49000000..0x49200000 and ramdisk 0x49100000..0x49200000 overlap"
    );
    // A generic multiboot,module without kernel/ramdisk is ignored.
    let d = Dom::new("domU0").module("module@4c000000", &["multiboot,module"], vec![1, 2, 3]);
    assert_eq!(accepted(d).ramdisk, None);
}

#[test]
fn module_reg_rules() {
    let with_reg = |reg: Vec<u8>| {
        Dom::new("domU0")
            .no_modules()
            .module("module@0", &["multiboot,kernel"], reg)
    };
    assert_eq!(
        refused(with_reg(cells(&[0, 0x4900_0000, 0x20_0000]))),
        "module@0: reg malformed: reg length is not a multiple of the entry size"
    );
    assert_eq!(
        refused(with_reg(
            [reg22(0x4900_0000, MIB), reg22(0x4a00_0000, MIB)].concat()
        )),
        "module@0: reg must be exactly one (address, size) pair of 2+2 cells, got 32 bytes"
    );
    assert_eq!(
        refused(with_reg(vec![])),
        "module@0: reg must be exactly one (address, size) pair of 2+2 cells, got 0 bytes"
    );
    assert_eq!(
        refused(with_reg(reg22(0x4900_0000, 0))),
        "module@0: reg size is 0"
    );
    assert!(refused(with_reg(reg22(u64::MAX - 10, MIB))).contains("wraps"));
    assert_eq!(
        refused(
            Dom::new("domU0")
                .no_modules()
                .module("module@0", &["multiboot,kernel"], vec![])
                .unset_module_reg()
        ),
        "module@0: no reg property"
    );
    // Outside RAM: entirely, and straddling the end of RAM.
    assert_eq!(
        refused(Dom::new("domU0").no_modules().kernel(0x1000_0000, MIB)),
        "module@10000000: 0x10000000..0x10100000 is outside RAM"
    );
    assert!(
        refused(Dom::new("domU0").no_modules().kernel(0x7ff0_0000, 2 * MIB))
            .contains("outside RAM")
    );
    // Overlapping the hypervisor or the DTB.
    assert_eq!(
        refused(Dom::new("domU0").no_modules().kernel(0x43f0_0000, 2 * MIB)),
        "module@43f00000: 0x43f00000..0x44100000 overlaps reserved region 0x40000000..0x44000000"
    );
    assert!(
        refused(Dom::new("domU0").no_modules().kernel(0x4800_0000, 0x1000))
            .contains("overlaps reserved")
    );
    // A ramdisk is checked the same way.
    assert!(refused(Dom::new("domU0").ramdisk(0x8000_0000, MIB)).contains("outside RAM"));
}

impl Dom {
    fn unset_module_reg(mut self) -> Self {
        self.modules
            .last_mut()
            .unwrap()
            .1
            .retain(|(n, _)| n != "reg");
        self
    }
}

#[test]
fn domain_cells_are_respected() {
    let d = Dom::new("domU0")
        .set("#address-cells", cells(&[1]))
        .set("#size-cells", cells(&[1]))
        .no_modules()
        .module(
            "module@49000000",
            &["multiboot,kernel"],
            cells(&[0x4900_0000, 0x30_0000]),
        );
    assert_eq!(
        accepted(d.clone()).kernel,
        Module {
            base: 0x4900_0000,
            size: 0x30_0000
        }
    );
    // 2+2 data with 1/1 cells is two entries: refused.
    let d2 = d
        .set("#address-cells", cells(&[1]))
        .no_modules()
        .kernel(0x4900_0000, MIB);
    assert!(refused(d2).contains("exactly one"));
    // Absent cells default to 2/2 (not the spec's 2/1).
    let d3 = Dom::new("domU0")
        .unset("#address-cells")
        .unset("#size-cells");
    assert_eq!(accepted(d3).kernel.size, 2 * MIB);
    // Mixed 2/1.
    let d4 = Dom::new("domU0")
        .set("#size-cells", cells(&[1]))
        .no_modules()
        .module(
            "module@49000000",
            &["multiboot,kernel"],
            cells(&[0, 0x4900_0000, 0x1000]),
        );
    assert_eq!(
        accepted(d4).kernel,
        Module {
            base: 0x4900_0000,
            size: 0x1000
        }
    );
    assert_eq!(
        refused(Dom::new("domU0").set("#address-cells", cells(&[3]))),
        "#address-cells/#size-cells must be 1 or 2 (got 3/2)"
    );
    assert_eq!(
        refused(Dom::new("domU0").set("#size-cells", vec![0])),
        "malformed #address-cells/#size-cells"
    );
}

#[test]
fn bootargs() {
    let d = Dom::new("domU0").module_prop("bootargs", b"root=/dev/ram \xff\0".to_vec());
    assert_eq!(refused(d), "bootargs is not valid UTF-8");
    // On the domain node when the kernel module has none.
    let vm = accepted(Dom::new("domU0").set("bootargs", strs(&["quiet"])));
    assert_eq!(vm.bootargs.as_deref(), Some("quiet"));
    // The module's wins.
    let vm = accepted(
        Dom::new("domU0")
            .set("bootargs", strs(&["a"]))
            .module_prop("bootargs", strs(&["b"])),
    );
    assert_eq!(vm.bootargs.as_deref(), Some("b"));
    // Missing terminator and empty values are tolerated.
    assert_eq!(
        accepted(Dom::new("domU0").module_prop("bootargs", b"x".to_vec()))
            .bootargs
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        accepted(Dom::new("domU0").module_prop("bootargs", vec![]))
            .bootargs
            .as_deref(),
        Some("")
    );
}

#[test]
fn static_mem() {
    let sm = |base: u64, size: u64| Dom::new("domU0").set("xen,static-mem", reg22(base, size));
    let vm = accepted(sm(0x5000_0000, 64 * MIB));
    assert_eq!(vm.static_mem, Some(Region::new(0x5000_0000, 64 * MIB)));
    assert_eq!(
        refused(sm(0x5010_0000, 64 * MIB)),
        "xen,static-mem 0x50100000..0x54100000 is not 2 MiB aligned"
    );
    assert_eq!(
        refused(sm(0x5000_0000, 32 * MIB)),
        "memory (65536 KiB) differs from the xen,static-mem size (32768 KiB)"
    );
    assert_eq!(
        refused(sm(0x7e00_0000, 64 * MIB)),
        "xen,static-mem 0x7e000000..0x82000000 is outside RAM"
    );
    assert_eq!(
        refused(sm(0x4200_0000, 64 * MIB)),
        "xen,static-mem 0x42000000..0x46000000 overlaps reserved region 0x40000000..0x44000000"
    );
    assert_eq!(
        refused(sm(0x4800_0000, 64 * MIB)),
        "xen,static-mem 0x48000000..0x4c000000 overlaps reserved region 0x48000000..0x48100000"
    );
    assert_eq!(
        refused(sm(0x4a00_0000, 64 * MIB).no_modules().kernel(0x4c00_0000, MIB)),
        "xen,static-mem 0x4a000000..0x4e000000 overlaps module /chosen/domU0/module@4c000000 (0x4c000000..0x4c100000)"
    );
    assert!(refused(sm(0, 0)).contains("empty or wraps"));
    assert!(
        refused(Dom::new("domU0").set("xen,static-mem", cells(&[0, 0x5000_0000, 0x400_0000])))
            .contains("malformed")
    );
    assert!(refused(Dom::new("domU0").set(
        "xen,static-mem",
        [reg22(0x5000_0000, 32 * MIB), reg22(0x6000_0000, 32 * MIB)].concat()
    ))
    .contains("exactly one"));
    assert_eq!(
        refused(sm(0x5000_0000, 64 * MIB).set("#xen,static-mem-address-cells", cells(&[1]))),
        "#xen,static-mem-address-cells must be 2"
    );
    assert!(
        accepted(sm(0x5000_0000, 64 * MIB).set("#xen,static-mem-size-cells", cells(&[2])))
            .static_mem
            .is_some()
    );
}

#[test]
fn static_mem_against_other_vms() {
    let a = Dom::new("domU0").set("xen,static-mem", reg22(0x5000_0000, 64 * MIB));
    let b = Dom::new("domU1").set("xen,static-mem", reg22(0x5200_0000, 64 * MIB));
    let c = Dom::new("domU2").set("xen,static-mem", reg22(0x5400_0000, 64 * MIB));
    let p = parse(&[a.clone(), b, c]);
    assert_eq!(
        p.vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["domU0", "domU2"]
    );
    assert_eq!(
        p.errors[0].to_string(),
        "/chosen/domU1: xen,static-mem 0x52000000..0x56000000 overlaps the static memory of VM 'domU0' (0x50000000..0x54000000)"
    );
    // A refused VM's static memory does not block later ones.
    let bad = Dom::new("domU0")
        .set("xen,static-mem", reg22(0x5000_0000, 64 * MIB))
        .set("cpus", cells(&[0]));
    let p = parse(&[
        bad,
        Dom::new("domU1").set("xen,static-mem", reg22(0x5000_0000, 64 * MIB)),
    ]);
    assert_eq!(p.vms.len(), 1);
    assert_eq!(p.vms[0].name, "domU1");
    // Static memory must not cover another VM's (later) module either.
    let p = parse(&[
        Dom::new("domU0").set("xen,static-mem", reg22(0x4a00_0000, 64 * MIB)),
        Dom::new("domU1").no_modules().kernel(0x4c00_0000, MIB),
    ]);
    assert_eq!(p.vms.len(), 1);
    assert_eq!(p.vms[0].name, "domU1");
    assert!(p.errors[0]
        .problem
        .contains("overlaps module /chosen/domU1/module@4c000000"));
}

#[test]
fn max_vms() {
    let doms: Vec<Dom> = (0..6).map(|i| Dom::new(&format!("domU{i}"))).collect();
    let mut l = limits();
    l.max_vms = 4;
    let mut with_bad = doms.clone();
    with_bad[1] = with_bad[1].clone().set("cpus", cells(&[0]));
    let p = parse_vms(&tree(&with_bad), &l).unwrap();
    // The refused domU1 does not take a slot: domU0, 2, 3, 4 are created.
    assert_eq!(
        p.vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["domU0", "domU2", "domU3", "domU4"]
    );
    assert_eq!(p.errors.len(), 2);
    assert_eq!(p.errors[0].problem, "cpus is 0");
    assert_eq!(
        p.errors[1].to_string(),
        "/chosen/domU5: too many VMs: at most 4 supported"
    );
    l.max_vms = 0;
    let p = parse_vms(&tree(&doms), &l).unwrap();
    assert!(p.vms.is_empty());
    assert_eq!(p.errors.len(), 6);
}

#[test]
fn empty_limits_refuse_everything_politely() {
    let p = parse_vms(&tree(&[Dom::new("domU0")]), &Limits::default()).unwrap();
    assert!(p.vms.is_empty());
    assert_eq!(
        p.errors[0].problem,
        "cpus = 1 exceeds the maximum of 0 vCPUs"
    );
    // Wrapping RAM regions in the limits are ignored, not a panic.
    let l = Limits {
        ram: vec![Region::new(u64::MAX, 10)],
        ..limits()
    };
    assert!(
        parse_vms(&tree(&[Dom::new("domU0")]), &l).unwrap().errors[0]
            .problem
            .contains("outside RAM")
    );
}

// ---------------------------------------------------------------------------
// host_info

#[test]
fn host_info_qemu_gicv3() {
    let h = host_info(QEMU_V3).unwrap();
    // The board is chosen by it (platform::by_compatible).
    assert_eq!(h.compatible, ["linux,dummy-virt"]);
    assert_eq!(h.ram, [Region::new(0x4000_0000, 0x4000_0000)]);
    assert_eq!(
        h.cpus.iter().map(|c| c.mpidr).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert!(h.cpus.iter().all(|c| c.release_addr.is_none()));
    assert_eq!(h.psci, Some(PsciMethod::Smc));
    assert_eq!(h.gic.version(), GicVersion::V3);
    assert_eq!(h.gic.gicd, Region::new(0x0800_0000, 0x1_0000));
    assert_eq!(
        h.gic.regs,
        GicRegs::V3 {
            gicr: Region::new(0x080a_0000, 0xf6_0000)
        }
    );
    assert_eq!(h.gic.maintenance_intid, Some(25));
    assert_eq!(
        h.uart,
        HostUart {
            base: 0x0900_0000,
            size: 0x1000,
            spi: Some(1),
            path: "/pl011@9000000".into()
        }
    );
    assert_eq!(h.uart.intid(), Some(33));
    assert_eq!(
        h.timer,
        Some(TimerIrqs {
            secure_phys: 29,
            phys: 30,
            virt: 27,
            hyp_phys: 26
        })
    );
    assert!(h.reserved.is_empty());
}

#[test]
fn host_info_qemu_gicv2() {
    let h = host_info(QEMU_V2).unwrap();
    assert_eq!(h.ram, [Region::new(0x4000_0000, 0x2000_0000)]);
    assert_eq!(h.cpus.len(), 2);
    assert_eq!(h.gic.version(), GicVersion::V2);
    assert_eq!(
        h.gic.regs,
        GicRegs::V2 {
            gicc: Region::new(0x0801_0000, 0x1_0000),
            gich: Region::new(0x0803_0000, 0x1_0000),
            gicv: Region::new(0x0804_0000, 0x1_0000),
        }
    );
    assert_eq!(h.gic.maintenance_intid, Some(25));
    assert_eq!(h.uart.spi, Some(1));
    assert_eq!(h.timer.map(|t| t.virt), Some(27));
}

/// Builds a host tree from closures writing the root's children.
fn host(body: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    host_rsv(&[], body)
}

fn host_rsv(rsv: &[(u64, u64)], body: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    let entries: Vec<_> = rsv
        .iter()
        .map(|&(a, s)| vm_fdt::FdtReserveEntry::new(a, s).unwrap())
        .collect();
    let mut w = FdtWriter::new_with_mem_reserv(&entries).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    body(&mut w);
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

fn node(
    w: &mut FdtWriter,
    name: &str,
    props: &[(&str, Vec<u8>)],
    children: impl FnOnce(&mut FdtWriter),
) {
    let n = w.begin_node(name).unwrap();
    for (k, v) in props {
        w.property(k, v).unwrap();
    }
    children(w);
    w.end_node(n).unwrap();
}

fn memory(w: &mut FdtWriter) {
    node(
        w,
        "memory@40000000",
        &[
            ("device_type", strs(&["memory"])),
            ("reg", reg22(0x4000_0000, 0x4000_0000)),
        ],
        |_| {},
    );
}

fn cpus(w: &mut FdtWriter, n: u32) {
    node(
        w,
        "cpus",
        &[
            ("#address-cells", cells(&[1])),
            ("#size-cells", cells(&[0])),
        ],
        |w| {
            for i in 0..n {
                node(
                    w,
                    &format!("cpu@{i}"),
                    &[("device_type", strs(&["cpu"])), ("reg", cells(&[i]))],
                    |_| {},
                );
            }
        },
    );
}

fn gicv3(w: &mut FdtWriter) {
    node(
        w,
        "intc@8000000",
        &[
            ("compatible", strs(&["arm,gic-v3"])),
            ("#interrupt-cells", cells(&[3])),
            ("interrupt-controller", vec![]),
            (
                "reg",
                [reg22(0x800_0000, 0x1_0000), reg22(0x80a_0000, 0xf6_0000)].concat(),
            ),
            ("phandle", cells(&[1])),
        ],
        |_| {},
    );
}

fn pl011(w: &mut FdtWriter, addr: u64, spi: u32, extra: &[(&str, Vec<u8>)]) {
    let mut props = vec![
        ("compatible", strs(&["arm,pl011", "arm,primecell"])),
        ("reg", reg22(addr, 0x1000)),
        ("interrupts", cells(&[0, spi, 4])),
    ];
    props.extend(extra.iter().cloned());
    node(w, &format!("pl011@{addr:x}"), &props, |_| {});
}

fn chosen_stdout(w: &mut FdtWriter, path: &str) {
    node(w, "chosen", &[("stdout-path", strs(&[path]))], |_| {});
}

#[test]
fn uart_selection() {
    // stdout-path through an alias, with options.
    let blob = host(|w| {
        memory(w);
        cpus(w, 1);
        gicv3(w);
        node(
            w,
            "aliases",
            &[
                ("serial0", strs(&["/pl011@9000000"])),
                ("serial1", strs(&["/pl011@9040000"])),
            ],
            |_| {},
        );
        chosen_stdout(w, "serial1:115200n8");
        pl011(w, 0x900_0000, 1, &[]);
        pl011(w, 0x904_0000, 8, &[]);
    });
    let h = host_info(&blob).unwrap();
    // A root without `compatible`: an empty list, not an error.
    assert!(h.compatible.is_empty());
    assert_eq!((h.uart.base, h.uart.spi), (0x904_0000, Some(8)));
    assert_eq!(h.uart.path, "/pl011@9040000");

    // No stdout-path: the first pl011. A disabled one is skipped.
    let blob = host(|w| {
        memory(w);
        cpus(w, 1);
        gicv3(w);
        pl011(w, 0x900_0000, 1, &[("status", strs(&["disabled"]))]);
        pl011(w, 0x904_0000, 8, &[]);
    });
    assert_eq!(host_info(&blob).unwrap().uart.base, 0x904_0000);

    // stdout-path naming something that is not a PL011 (or nothing): fall back.
    let blob = host(|w| {
        memory(w);
        cpus(w, 1);
        gicv3(w);
        chosen_stdout(w, "/serial@1000");
        node(
            w,
            "serial@1000",
            &[
                ("compatible", strs(&["ns16550a"])),
                ("reg", reg22(0x1000, 0x100)),
            ],
            |_| {},
        );
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert_eq!(host_info(&blob).unwrap().uart.base, 0x900_0000);

    // Interrupt routed to some other controller, or none at all: no SPI.
    let blob = host(|w| {
        memory(w);
        cpus(w, 1);
        gicv3(w);
        node(
            w,
            "other-intc",
            &[("phandle", cells(&[7])), ("interrupt-controller", vec![])],
            |_| {},
        );
        pl011(w, 0x900_0000, 1, &[("interrupt-parent", cells(&[7]))]);
    });
    assert_eq!(host_info(&blob).unwrap().uart.spi, None);
    let blob = host(|w| {
        memory(w);
        cpus(w, 1);
        gicv3(w);
        node(
            w,
            "pl011@9000000",
            &[
                ("compatible", strs(&["arm,pl011"])),
                ("reg", reg22(0x900_0000, 0x1000)),
            ],
            |_| {},
        );
    });
    assert_eq!(host_info(&blob).unwrap().uart.spi, None);
}

/// Raspberry Pi 4 style: devices behind a /soc bus with `ranges`, GIC-400,
/// spin-table CPUs, no PSCI, 1/1 cells on the bus.
#[test]
fn host_info_rpi4_like() {
    let blob = host_rsv(&[(0, 0x1000)], |w| {
        node(
            w,
            "memory@0",
            &[
                ("device_type", strs(&["memory"])),
                (
                    "reg",
                    [reg22(0, 0x3b40_0000), reg22(0x4000_0000, 0xbc00_0000)].concat(),
                ),
            ],
            |_| {},
        );
        node(
            w,
            "cpus",
            &[
                ("#address-cells", cells(&[1])),
                ("#size-cells", cells(&[0])),
            ],
            |w| {
                for i in 0..4u32 {
                    node(
                        w,
                        &format!("cpu@{i}"),
                        &[
                            ("device_type", strs(&["cpu"])),
                            ("reg", cells(&[i])),
                            ("enable-method", strs(&["spin-table"])),
                            ("cpu-release-addr", cells(&[0, 0xd8 + 8 * i])),
                        ],
                        |_| {},
                    );
                }
            },
        );
        node(
            w,
            "aliases",
            &[("serial0", strs(&["/soc/serial@7e201000"]))],
            |_| {},
        );
        chosen_stdout(w, "serial0:115200n8");
        node(
            w,
            "soc",
            &[
                ("compatible", strs(&["simple-bus"])),
                ("#address-cells", cells(&[1])),
                ("#size-cells", cells(&[1])),
                (
                    "ranges",
                    cells(&[
                        0x7e00_0000,
                        0,
                        0xfe00_0000,
                        0x180_0000,
                        0x4000_0000,
                        0,
                        0xff80_0000,
                        0x80_0000,
                    ]),
                ),
                ("interrupt-parent", cells(&[1])),
            ],
            |w| {
                node(
                    w,
                    "interrupt-controller@40041000",
                    &[
                        ("compatible", strs(&["arm,gic-400"])),
                        ("#interrupt-cells", cells(&[3])),
                        ("interrupt-controller", vec![]),
                        (
                            "reg",
                            cells(&[
                                0x4004_1000,
                                0x1000,
                                0x4004_2000,
                                0x2000,
                                0x4004_4000,
                                0x2000,
                                0x4004_6000,
                                0x2000,
                            ]),
                        ),
                        ("interrupts", cells(&[1, 9, 0xf04])),
                        ("phandle", cells(&[1])),
                    ],
                    |_| {},
                );
                node(
                    w,
                    "serial@7e201000",
                    &[
                        ("compatible", strs(&["arm,pl011", "arm,primecell"])),
                        ("reg", cells(&[0x7e20_1000, 0x200])),
                        ("interrupts", cells(&[0, 121, 4])),
                    ],
                    |_| {},
                );
            },
        );
        node(
            w,
            "timer",
            &[
                ("compatible", strs(&["arm,armv8-timer"])),
                (
                    "interrupts",
                    cells(&[1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08]),
                ),
            ],
            |_| {},
        );
        node(
            w,
            "reserved-memory",
            &[
                ("#address-cells", cells(&[2])),
                ("#size-cells", cells(&[1])),
                ("ranges", vec![]),
            ],
            |w| {
                node(w, "linux,cma", &[("size", cells(&[0x400_0000]))], |_| {});
                node(
                    w,
                    "nvram@0",
                    &[("reg", cells(&[0, 0x3b40_0000, 0x1000]))],
                    |_| {},
                );
                node(
                    w,
                    "off@0",
                    &[
                        ("reg", cells(&[0, 0x3c00_0000, 0x1000])),
                        ("status", strs(&["disabled"])),
                    ],
                    |_| {},
                );
            },
        );
    });
    let h = host_info(&blob).unwrap();
    assert_eq!(
        h.ram,
        [
            Region::new(0, 0x3b40_0000),
            Region::new(0x4000_0000, 0xbc00_0000)
        ]
    );
    assert_eq!(
        h.cpus[3],
        HostCpu {
            mpidr: 3,
            release_addr: Some(0xf0)
        }
    );
    assert_eq!(h.psci, None);
    assert_eq!(h.gic.gicd, Region::new(0xff84_1000, 0x1000));
    assert_eq!(
        h.gic.regs,
        GicRegs::V2 {
            gicc: Region::new(0xff84_2000, 0x2000),
            gich: Region::new(0xff84_4000, 0x2000),
            gicv: Region::new(0xff84_6000, 0x2000),
        }
    );
    assert_eq!(h.gic.maintenance_intid, Some(25));
    assert_eq!(
        (h.uart.base, h.uart.size, h.uart.spi),
        (0xfe20_1000, 0x200, Some(121))
    );
    assert_eq!(
        h.timer,
        Some(TimerIrqs {
            secure_phys: 29,
            phys: 30,
            virt: 27,
            hyp_phys: 26
        })
    );
    assert_eq!(
        h.reserved,
        [Region::new(0, 0x1000), Region::new(0x3b40_0000, 0x1000)]
    );
}

#[test]
fn host_info_missing_essentials() {
    let no_mem = host(|w| {
        cpus(w, 1);
        gicv3(w);
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert_eq!(
        host_info(&no_mem).unwrap_err().reason,
        "no memory: no /memory node with a non-empty reg"
    );
    let no_gic = host(|w| {
        memory(w);
        cpus(w, 1);
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert!(host_info(&no_gic).unwrap_err().reason.starts_with("no GIC"));
    let no_uart = host(|w| {
        memory(w);
        cpus(w, 1);
        gicv3(w);
    });
    assert!(host_info(&no_uart)
        .unwrap_err()
        .reason
        .starts_with("no UART"));
    let no_cpus = host(|w| {
        memory(w);
        gicv3(w);
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert_eq!(host_info(&no_cpus).unwrap_err().reason, "no /cpus node");
    // GICv2 without the virtualization frames.
    let v2_novirt = host(|w| {
        memory(w);
        cpus(w, 1);
        node(
            w,
            "intc@8000000",
            &[
                ("compatible", strs(&["arm,cortex-a15-gic"])),
                (
                    "reg",
                    [reg22(0x800_0000, 0x1_0000), reg22(0x801_0000, 0x1_0000)].concat(),
                ),
            ],
            |_| {},
        );
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert!(host_info(&v2_novirt)
        .unwrap_err()
        .reason
        .contains("GICH and GICV"));
    let e = host_info(b"\xd0\x0d\xfe\xed").unwrap_err();
    assert!(e.reason.starts_with("malformed blob:"), "{e}");
}

#[test]
fn host_info_malformed_values() {
    // Memory reg with a wrapping entry.
    let blob = host(|w| {
        node(w, "memory@0", &[("reg", reg22(u64::MAX, 2))], |_| {});
        cpus(w, 1);
        gicv3(w);
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert!(host_info(&blob).unwrap_err().reason.contains("wraps"));
    // Zero cells everywhere must not divide by zero.
    let blob = host(|w| {
        node(
            w,
            "memory@0",
            &[("reg", reg22(0x4000_0000, 0x1000))],
            |_| {},
        );
        node(
            w,
            "cpus",
            &[
                ("#address-cells", cells(&[0])),
                ("#size-cells", cells(&[0])),
            ],
            |w| {
                node(
                    w,
                    "cpu@0",
                    &[("device_type", strs(&["cpu"])), ("reg", cells(&[0]))],
                    |_| {},
                );
            },
        );
        gicv3(w);
        pl011(w, 0x900_0000, 1, &[]);
    });
    assert!(host_info(&blob).unwrap_err().reason.contains("cpu@0"));
    // Timer with too few interrupts is just absent; bad PSCI method too.
    let blob = host(|w| {
        memory(w);
        cpus(w, 2);
        gicv3(w);
        pl011(w, 0x900_0000, 1, &[]);
        node(
            w,
            "timer",
            &[
                ("compatible", strs(&["arm,armv8-timer"])),
                ("interrupts", cells(&[1, 13, 4])),
            ],
            |_| {},
        );
        node(
            w,
            "psci",
            &[
                ("compatible", strs(&["arm,psci-1.0"])),
                ("method", strs(&["smc2"])),
            ],
            |_| {},
        );
    });
    let h = host_info(&blob).unwrap();
    assert_eq!(h.timer, None);
    assert_eq!(h.psci, None);
    assert_eq!(h.cpus.len(), 2);
}

/// Flip bytes of real trees and feed them to both entry points: errors are
/// fine, panics are not (the fuzz target does this at scale).
#[test]
fn corrupted_real_trees_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for base in [QEMU_V3, QEMU_V2, QEMU_V3_DOMUS] {
        for _ in 0..300 {
            let mut b = base.to_vec();
            for _ in 0..(1 + rnd() % 4) {
                let i = (rnd() as usize) % b.len();
                b[i] = rnd() as u8;
            }
            let _ = host_info(&b);
            let _ = parse_vms(&b, &limits());
        }
    }
}

static QEMU_V3_PASSTHROUGH: &[u8] =
    include_bytes!("../../testdata/qemu-virt-gicv3-passthrough.dtb");

#[test]
fn passthrough_rules() {
    let info = host_info(QEMU_V3_PASSTHROUGH).unwrap();
    let limits = Limits {
        max_vcpus: 8,
        max_vms: 16,
        reserved: vec![Region::new(0x4000_0000, 64 * MIB)],
        ram: info.ram.clone(),
    };
    let parsed = parse_vms(QEMU_V3_PASSTHROUGH, &limits).unwrap();
    assert_eq!(parsed.vms.len(), 1, "{:?}", parsed.errors);
    let vm = &parsed.vms[0];
    assert_eq!(vm.name, "domU0");
    let [dev] = &vm.passthrough[..] else {
        panic!("{:?}", vm.passthrough)
    };
    assert_eq!(dev.path, "/pl011@9040000");
    assert_eq!(dev.regions, [Region::new(0x0904_0000, 0x1000)]);
    assert_eq!(dev.intids, [32 + 8]);
    assert!(dev.has_clocks);
    assert!(dev.compatible.starts_with(b"arm,pl011\0"));
    let problems: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
    let expect = [
        ("/chosen/domU1", "already passed through to domU0"),
        ("/chosen/domU2", "is the hypervisor's console"),
        (
            "/chosen/domU3",
            "interrupt controllers cannot be passed through",
        ),
        ("/chosen/domU4", "no such node"),
        ("/chosen/domU5", "is RAM, not a device"),
    ];
    assert_eq!(problems.len(), expect.len(), "{problems:?}");
    for ((path, what), got) in expect.iter().zip(&problems) {
        assert!(
            got.starts_with(path) && got.contains(what),
            "{got} should name {path} and say '{what}'"
        );
    }
}

#[test]
fn rejuvenate_interval_setting() {
    let with = |v: Option<Vec<u8>>| {
        host(|w| {
            memory(w);
            cpus(w, 1);
            gicv3(w);
            let props: Vec<(&str, Vec<u8>)> = v
                .iter()
                .map(|v| ("blink,rejuvenate-interval-ms", v.clone()))
                .collect();
            node(w, "chosen", &props, |_| {});
            pl011(w, 0x900_0000, 1, &[]);
        })
    };
    let h = host_info(&with(None)).unwrap();
    assert_eq!((h.rejuvenate_interval_ms, h.ignored.len()), (None, 0));
    let h = host_info(&with(Some(5000u32.to_be_bytes().to_vec()))).unwrap();
    assert_eq!((h.rejuvenate_interval_ms, h.ignored.len()), (Some(5000), 0));
    // Too short, or not one u32: ignored with a message, the host still boots.
    for bad in [
        vec![0, 0, 0, 10],
        vec![1, 2, 3],
        5000u64.to_be_bytes().to_vec(),
        vec![],
    ] {
        let h = host_info(&with(Some(bad.clone()))).unwrap();
        assert_eq!(h.rejuvenate_interval_ms, None, "{bad:?}");
        assert!(h.ignored[0].contains("rejuvenate-interval-ms"), "{bad:?}");
    }
}
