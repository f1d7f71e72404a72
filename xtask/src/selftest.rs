//! Tests of the QEMU plumbing against the real QEMU (skipped with a note when
//! no QEMU >= 10 is installed). They do not need the hypervisor: a tiny
//! hand-assembled program stands in for it.

use std::time::Duration;

use fdt::nodes::{AsNode, Node};
use fdt::parsing::unaligned::UnalignedParser;
use fdt::parsing::NoPanic;
use fdt::Fdt;

use crate::testutil::TempDir;
use crate::{qemu, QemuRun, Scenario, VmSpec};

fn qemu_available() -> bool {
    match qemu::find() {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: no usable QEMU ({e})");
            false
        }
    }
}

/// A raw EL2 program for QEMU virt. Entered at 0x4008_0000 with x0 = DTB,
/// it prints "selftest: dtb ok" if x0 points at an FDT magic (else "dtb
/// bad"), then the NUL-terminated string at 0x4900_0000 (the first module),
/// then idles forever. PL011 data register at 0x0900_0000; with the MMU off
/// the stores are Device accesses, so no setup is needed.
fn selftest_program() -> Vec<u8> {
    const CODE: [u32; 19] = [
        0xaa0003f4, // mov  x20, x0            ; DTB address
        0xd2a12001, // mov  x1, #0x09000000    ; PL011 DR
        0xb9400284, // ldr  w4, [x20]
        0x5281ba05, // mov  w5, #0x0dd0
        0x72bdbfc5, // movk w5, #0xedfe, lsl #16 ; 0xd00dfeed read little-endian
        0x50000242, // adr  x2, bad  (0x5e)
        0x6b05009f, // cmp  w4, w5
        0x54000041, // b.ne 0x24
        0x10000162, // adr  x2, good (0x4c)
        0x94000005, // 0x24: bl puts
        0xd2a92002, // mov  x2, #0x49000000
        0x94000003, // bl   puts
        0xd503207f, // 0x30: wfi (idles QEMU, unlike wfe)
        0x17ffffff, // b    0x30
        0x38401443, // 0x38 puts: ldrb w3, [x2], #1
        0x34000063, // cbz  w3, 0x48
        0x39000023, // strb w3, [x1]
        0x17fffffd, // b    puts
        0xd65f03c0, // 0x48: ret
    ];
    let mut image: Vec<u8> = CODE.iter().flat_map(|w| w.to_le_bytes()).collect();
    image.extend_from_slice(b"selftest: dtb ok\n\0"); // at 0x4c
    image.extend_from_slice(b"selftest: dtb bad\n\0"); // at 0x5e
    image
}

type FNode<'a> = Node<'a, (UnalignedParser<'a>, NoPanic)>;

/// A node's path and its properties (name, raw value).
type FlatNode = (String, Vec<(String, Vec<u8>)>);

/// Every node path of a tree with its properties, depth first.
fn flatten(blob: &[u8]) -> Vec<FlatNode> {
    fn walk(node: FNode, path: String, out: &mut Vec<FlatNode>) {
        let props = node
            .properties()
            .unwrap()
            .iter()
            .map(|p| {
                let p = p.unwrap();
                (p.name.to_string(), p.value.to_vec())
            })
            .collect();
        out.push((path.clone(), props));
        for child in node.children().unwrap() {
            let child = child.unwrap();
            let name = child.name().unwrap().to_string();
            let child_path = if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            };
            walk(child, child_path, out);
        }
    }
    let fdt = Fdt::new_unaligned_fallible(blob).unwrap();
    let mut out = Vec::new();
    walk(fdt.root().unwrap().as_node(), "/".to_string(), &mut out);
    out
}

fn scenario(gic: u32, dir: &TempDir) -> Scenario {
    let mut s = Scenario::new(gic)
        .vm(VmSpec::new(
            "domU0",
            dir.write("module0.bin", b"selftest: module ok\n\0"),
        )
        .bootargs("hello"))
        .vm(VmSpec::new("domU1", dir.write("module1.bin", &[1; 5000]))
            .cpus(2)
            .mem_mib(32))
        .vm(VmSpec::new("domU2", "/unused")
            .omit_kernel()
            .static_mem(0x4000_0000, 0x10_0000));
    s.hypervisor = dir.write("selftest-hv.bin", &selftest_program());
    s
}

#[test]
fn dumped_tree_is_copied_whole_and_qemu_passes_domus_on() {
    if !qemu_available() {
        return;
    }
    for gic in [2, 3] {
        let dir = TempDir::new(&format!("dtb{gic}"));
        let cmd = scenario(gic, &dir)
            .prepare(crate::SerialMode::Pipe)
            .unwrap();
        let base = flatten(&std::fs::read(&cmd.base_dtb).unwrap());
        let patched = flatten(&std::fs::read(&cmd.dtb).unwrap());

        // Every node and property QEMU generated survives unchanged...
        for node in &base {
            let copy = patched.iter().find(|n| n.0 == node.0);
            assert_eq!(copy, Some(node), "node {} changed", node.0);
        }
        assert!(
            base.iter().any(|n| n.0.starts_with("/intc@8000000")),
            "GIC node expected"
        );
        // ...and the only additions are the domU nodes.
        let added: Vec<&str> = patched
            .iter()
            .map(|n| n.0.as_str())
            .filter(|p| !base.iter().any(|b| b.0 == *p))
            .collect();
        assert_eq!(
            added,
            [
                "/chosen/domU0",
                "/chosen/domU0/module@49000000",
                "/chosen/domU1",
                "/chosen/domU1/module@49200000",
                "/chosen/domU2"
            ]
        );

        // QEMU accepts the tree and hands /chosen/domU* on to the guest:
        // dump what it would load, with the real -kernel/-dtb/loader options.
        let final_path = dir.0.join("final.dtb");
        let _lock = qemu::QemuLock::acquire().unwrap();
        let mut args = cmd.args.clone();
        let m = args.iter().position(|a| a == "-M").unwrap() + 1;
        args[m] = format!("{},dumpdtb={}", args[m], final_path.display());
        let out = std::process::Command::new(&cmd.program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fin = flatten(&std::fs::read(&final_path).unwrap());
        for path in added {
            let want = patched.iter().find(|n| n.0 == path);
            assert_eq!(fin.iter().find(|n| n.0 == path), want, "{path} after QEMU");
        }
    }
}

#[test]
fn runner_sees_serial_output_and_loaded_module() {
    if !qemu_available() {
        return;
    }
    let dir = TempDir::new("run");
    let mut run = QemuRun::start(&scenario(3, &dir)).unwrap();
    let t = Duration::from_secs(60);
    assert_eq!(run.expect("selftest:", t).unwrap(), "selftest: dtb ok");
    let re = regex::Regex::new(r"^selftest: module (\w+)$").unwrap();
    assert_eq!(run.expect(&re, t).unwrap(), "selftest: module ok");
    // Nothing more will come: a short deadline must fail with the output.
    let err = run
        .expect("never printed", Duration::from_millis(300))
        .unwrap_err()
        .to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        err.contains("selftest: module ok"),
        "error shows the last lines: {err}"
    );
    assert_eq!(run.lines().len(), 2);
    assert!(
        run.wait_exit(Duration::from_millis(100)).is_err(),
        "still running"
    );
    run.kill();
    let err = run.expect("never printed", t).unwrap_err().to_string();
    assert!(err.contains("QEMU exited"), "{err}");
    // A fail_on pattern matching an earlier line fails the next wait at once.
    run.fail_on(regex::Regex::new("dtb ok").unwrap());
    let err = run.expect("never printed", t).unwrap_err().to_string();
    assert!(err.starts_with("fatal line while waiting"), "{err}");
}
