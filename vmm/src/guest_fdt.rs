//! The device tree each VM boots with.
//!
//! It describes the machine of [`crate::layout`] in the shape of QEMU's
//! `virt` board (`linux,dummy-virt`), so an unmodified arm64 Linux finds
//! its GIC, timer, PSCI and PL011 console with no board-specific support.

use alloc::string::String;
use alloc::vec::Vec;
use vm_fdt::{Error, FdtWriter};

use crate::layout;

/// Which GIC the VM sees (the host's: GICv2 guests use the real GICV
/// frame, GICv3 guests the system-register CPU interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

/// Inputs of [`build`]. The configuration parser has already checked them
/// (1..=[`layout::MAX_VCPUS`] vCPUs); out-of-range values still produce a
/// tree rather than a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFdtParams<'a> {
    pub ram_base: u64,
    pub ram_size: u64,
    pub vcpus: usize,
    pub gic: GicVersion,
    pub bootargs: Option<&'a str>,
    /// Guest-physical (start, end) of the initrd, end exclusive.
    pub initrd: Option<(u64, u64)>,
    /// Host devices passed through (mapped at their host addresses).
    pub devices: &'a [crate::config::Passthrough],
}

const PHANDLE_GIC: u32 = 1;
const PHANDLE_CLK: u32 = 2;

/// GIC interrupt specifier types and flags (bindings/interrupt-controller/arm,gic*.yaml).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
const IRQ_TYPE_LEVEL_LOW: u32 = 8;

/// The clock the PL011 binding requires; Linux only uses it for baud-rate
/// arithmetic, which the emulated UART ignores. 24 MHz as on QEMU virt.
const APB_PCLK_HZ: u32 = 24_000_000;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| String::from(*s)).collect()
}

/// Serialises the guest device tree.
pub fn build(p: &GuestFdtParams<'_>) -> Result<Vec<u8>, Error> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_string("model", "blink virtual machine")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", PHANDLE_GIC)?;

    let chosen = w.begin_node("chosen")?;
    let uart_path = format_node("/pl011", layout::UART_BASE);
    w.property_string("stdout-path", &uart_path)?;
    if let Some(args) = p.bootargs {
        w.property_string("bootargs", args)?;
    }
    if let Some((start, end)) = p.initrd {
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    w.end_node(chosen)?;

    let memory = w.begin_node(&format_node("memory", p.ram_base)[..])?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[p.ram_base, p.ram_size])?;
    w.end_node(memory)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for n in 0..p.vcpus.min(layout::MAX_VCPUS) {
        // reg = MPIDR affinity: vCPU n has Aff0 = n.
        let cpu = w.begin_node(&format_node("cpu", n as u64)[..])?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,armv8")?;
        w.property_u32("reg", n as u32)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string_list(
        "compatible",
        strings(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
    )?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    let gic = w.begin_node(&format_node("intc", layout::GICD_BASE)[..])?;
    match p.gic {
        GicVersion::V3 => {
            w.property_string("compatible", "arm,gic-v3")?;
            let gicr_size = layout::GICR_STRIDE.saturating_mul(p.vcpus as u64);
            w.property_array_u64(
                "reg",
                &[
                    layout::GICD_BASE,
                    layout::GICD_SIZE,
                    layout::GICR_BASE,
                    gicr_size,
                ],
            )?;
            w.property_u32("#redistributor-regions", 1)?;
        }
        GicVersion::V2 => {
            w.property_string("compatible", "arm,cortex-a15-gic")?;
            w.property_array_u64(
                "reg",
                &[
                    layout::GICD_BASE,
                    layout::GICD_SIZE,
                    layout::GICC_BASE,
                    layout::GICC_SIZE,
                ],
            )?;
        }
    }
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 3)?;
    // Child-bus properties as on QEMU virt, so Linux accepts sub-frames
    // (ITS, v2m) if they are ever added.
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_null("ranges")?;
    w.property_phandle(PHANDLE_GIC)?;
    w.end_node(gic)?;

    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    // GICv2 PPI specifiers carry a mask of the CPUs the PPI is wired to.
    let flags = match p.gic {
        GicVersion::V3 => IRQ_TYPE_LEVEL_LOW,
        GicVersion::V2 => {
            let n = p.vcpus.min(8) as u32;
            (((1u32 << n) - 1) << 8) | IRQ_TYPE_LEVEL_LOW
        }
    };
    // Secure physical, non-secure physical, virtual, hypervisor physical
    // timer PPIs (INTIDs 29, 30, 27, 26).
    let mut irqs = Vec::with_capacity(12);
    for ppi in [13, 14, 11, 10] {
        irqs.extend_from_slice(&[GIC_PPI, ppi, flags]);
    }
    w.property_array_u32("interrupts", &irqs)?;
    w.property_null("always-on")?;
    w.end_node(timer)?;

    let clk = w.begin_node("apb-pclk")?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", APB_PCLK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_phandle(PHANDLE_CLK)?;
    w.end_node(clk)?;

    let uart = w.begin_node(&uart_path[1..])?;
    w.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
    w.property_array_u64("reg", &[layout::UART_BASE, layout::UART_SIZE])?;
    w.property_array_u32(
        "interrupts",
        &[GIC_SPI, layout::UART_SPI, IRQ_TYPE_LEVEL_HIGH],
    )?;
    w.property_array_u32("clocks", &[PHANDLE_CLK, PHANDLE_CLK])?;
    w.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
    w.end_node(uart)?;

    for dev in p.devices {
        let Some(first) = dev.regions.first() else {
            continue;
        };
        let node = w.begin_node(&format_node(
            dev.name.split('@').next().unwrap_or("device"),
            first.base,
        ))?;
        if !dev.compatible.is_empty() {
            w.property("compatible", &dev.compatible)?;
        }
        let reg: Vec<u64> = dev.regions.iter().flat_map(|r| [r.base, r.size]).collect();
        w.property_array_u64("reg", &reg)?;
        if !dev.intids.is_empty() {
            let ints: Vec<u32> = dev
                .intids
                .iter()
                .flat_map(|&i| [GIC_SPI, i - 32, IRQ_TYPE_LEVEL_HIGH])
                .collect();
            w.property_array_u32("interrupts", &ints)?;
        }
        if dev.has_clocks {
            // The guest's only clock stands in for the device's clocks.
            w.property_array_u32("clocks", &[PHANDLE_CLK, PHANDLE_CLK])?;
            w.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
        }
        w.end_node(node)?;
    }

    w.end_node(root)?;
    w.finish()
}

/// `name@<hex unit address>`.
fn format_node(name: &str, addr: u64) -> String {
    alloc::format!("{name}@{addr:x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::Dtb;
    use fdt::Fdt;

    fn params(gic: GicVersion, vcpus: usize) -> GuestFdtParams<'static> {
        GuestFdtParams {
            ram_base: layout::RAM_BASE,
            ram_size: 128 << 20,
            vcpus,
            gic,
            bootargs: Some("console=ttyAMA0 earlycon"),
            initrd: Some((0x4800_0000, 0x4812_3456)),
            devices: &[],
        }
    }

    /// Raw property bytes through the `fdt` crate.
    fn prop(blob: &[u8], path: &str, name: &str) -> Vec<u8> {
        let fdt = Fdt::new_unaligned(blob).unwrap();
        let node = fdt
            .root()
            .find_node(path)
            .unwrap_or_else(|| panic!("no {path}"));
        node.raw_property(name)
            .unwrap_or_else(|| panic!("no {path}:{name}"))
            .value
            .to_vec()
    }

    fn u32s(v: &[u8]) -> Vec<u32> {
        v.chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn u64s(v: &[u8]) -> Vec<u64> {
        v.chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn strs(v: &[u8]) -> Vec<&str> {
        core::str::from_utf8(v)
            .unwrap()
            .trim_end_matches('\0')
            .split('\0')
            .collect()
    }

    #[test]
    fn gicv3_tree() {
        let blob = build(&params(GicVersion::V3, 2)).unwrap();
        let fdt = Fdt::new_unaligned(&blob).unwrap();
        let root = fdt.root();
        assert_eq!(root.compatible().first(), "linux,dummy-virt");
        assert_eq!(u32s(&prop(&blob, "/", "#address-cells")), [2]);
        assert_eq!(u32s(&prop(&blob, "/", "#size-cells")), [2]);
        assert_eq!(u32s(&prop(&blob, "/", "interrupt-parent")), [PHANDLE_GIC]);

        // Memory.
        let mem = root.find_node("/memory@40000000").unwrap();
        let reg: Vec<_> = mem
            .reg()
            .unwrap()
            .iter::<u64, u64>()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!((reg[0].address, reg[0].len), (0x4000_0000, 128 << 20));
        assert_eq!(
            strs(&prop(&blob, "/memory@40000000", "device_type")),
            ["memory"]
        );

        // CPUs.
        for n in 0..2u32 {
            let path = alloc::format!("/cpus/cpu@{n}");
            assert_eq!(u32s(&prop(&blob, &path, "reg")), [n]);
            assert_eq!(strs(&prop(&blob, &path, "enable-method")), ["psci"]);
            assert_eq!(strs(&prop(&blob, &path, "compatible")), ["arm,armv8"]);
            assert_eq!(strs(&prop(&blob, &path, "device_type")), ["cpu"]);
        }
        assert!(root.find_node("/cpus/cpu@2").is_none());
        assert_eq!(u32s(&prop(&blob, "/cpus", "#size-cells")), [0]);

        // PSCI.
        assert_eq!(
            strs(&prop(&blob, "/psci", "compatible")),
            ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
        );
        assert_eq!(strs(&prop(&blob, "/psci", "method")), ["hvc"]);

        // GIC.
        let gic = "/intc@8000000";
        assert_eq!(strs(&prop(&blob, gic, "compatible")), ["arm,gic-v3"]);
        assert_eq!(
            u64s(&prop(&blob, gic, "reg")),
            [0x0800_0000, 0x1_0000, 0x080a_0000, 0x4_0000]
        );
        assert_eq!(u32s(&prop(&blob, gic, "#redistributor-regions")), [1]);
        assert_eq!(u32s(&prop(&blob, gic, "#interrupt-cells")), [3]);
        assert!(prop(&blob, gic, "interrupt-controller").is_empty());
        assert!(prop(&blob, gic, "ranges").is_empty());
        let phandle = fdt::properties::PHandle::new(PHANDLE_GIC);
        assert_eq!(
            root.resolve_phandle(phandle).unwrap().name().to_string(),
            "intc@8000000"
        );

        // Timer: level-low PPIs 13, 14, 11, 10.
        assert_eq!(
            u32s(&prop(&blob, "/timer", "interrupts")),
            [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]
        );
        assert!(prop(&blob, "/timer", "always-on").is_empty());

        // Clock and UART.
        assert_eq!(
            u32s(&prop(&blob, "/apb-pclk", "clock-frequency")),
            [24_000_000]
        );
        assert_eq!(u32s(&prop(&blob, "/apb-pclk", "#clock-cells")), [0]);
        let uart = "/pl011@9000000";
        assert_eq!(
            strs(&prop(&blob, uart, "compatible")),
            ["arm,pl011", "arm,primecell"]
        );
        assert_eq!(u64s(&prop(&blob, uart, "reg")), [0x0900_0000, 0x1000]);
        assert_eq!(u32s(&prop(&blob, uart, "interrupts")), [0, 1, 4]);
        assert_eq!(
            u32s(&prop(&blob, uart, "clocks")),
            [PHANDLE_CLK, PHANDLE_CLK]
        );
        assert_eq!(
            strs(&prop(&blob, uart, "clock-names")),
            ["uartclk", "apb_pclk"]
        );

        // Chosen.
        let chosen = root.chosen();
        assert_eq!(chosen.bootargs(), Some("console=ttyAMA0 earlycon"));
        assert_eq!(
            strs(&prop(&blob, "/chosen", "stdout-path")),
            ["/pl011@9000000"]
        );
        assert_eq!(
            u64s(&prop(&blob, "/chosen", "linux,initrd-start")),
            [0x4800_0000]
        );
        assert_eq!(
            u64s(&prop(&blob, "/chosen", "linux,initrd-end")),
            [0x4812_3456]
        );
    }

    #[test]
    fn gicv2_tree() {
        let blob = build(&params(GicVersion::V2, 4)).unwrap();
        let gic = "/intc@8000000";
        assert_eq!(
            strs(&prop(&blob, gic, "compatible")),
            ["arm,cortex-a15-gic"]
        );
        assert_eq!(
            u64s(&prop(&blob, gic, "reg")),
            [0x0800_0000, 0x1_0000, 0x0801_0000, 0x2000]
        );
        let fdt = Fdt::new_unaligned(&blob).unwrap();
        assert!(fdt
            .root()
            .find_node(gic)
            .unwrap()
            .raw_property("#redistributor-regions")
            .is_none());
        // CPU mask 0xf for 4 vCPUs.
        assert_eq!(
            u32s(&prop(&blob, "/timer", "interrupts")),
            [1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08]
        );
        let blob = build(&params(GicVersion::V2, 8)).unwrap();
        assert_eq!(u32s(&prop(&blob, "/timer", "interrupts"))[2], 0xff08);
        let blob = build(&params(GicVersion::V2, 1)).unwrap();
        assert_eq!(u32s(&prop(&blob, "/timer", "interrupts"))[2], 0x108);
    }

    #[test]
    fn optional_chosen_properties() {
        let p = GuestFdtParams {
            bootargs: None,
            initrd: None,
            ..params(GicVersion::V3, 1)
        };
        let blob = build(&p).unwrap();
        let fdt = Fdt::new_unaligned(&blob).unwrap();
        let chosen = fdt.root().find_node("/chosen").unwrap();
        for name in ["bootargs", "linux,initrd-start", "linux,initrd-end"] {
            assert!(chosen.raw_property(name).is_none(), "{name}");
        }
        assert!(chosen.raw_property("stdout-path").is_some());
    }

    /// The hypervisor's own host-tree reader understands guest trees too:
    /// the description round-trips through `config::host_info`.
    #[test]
    fn round_trip_through_host_info() {
        for (gic, vcpus) in [(GicVersion::V3, 3), (GicVersion::V2, 2)] {
            let blob = build(&params(gic, vcpus)).unwrap();
            Dtb::parse(&blob).unwrap();
            // host_info wants GICH/GICV for v2 (it is for hosts), so only
            // check what applies to both.
            if gic == GicVersion::V3 {
                let h = crate::config::host_info(&blob).unwrap();
                assert_eq!(h.ram, [crate::memory::Region::new(0x4000_0000, 128 << 20)]);
                assert_eq!(
                    h.cpus.iter().map(|c| c.mpidr).collect::<Vec<_>>(),
                    [0, 1, 2]
                );
                assert_eq!(h.psci, Some(crate::config::PsciMethod::Hvc));
                assert_eq!(h.uart.base, layout::UART_BASE);
                assert_eq!(h.uart.intid(), Some(33));
                assert_eq!(h.timer.unwrap().virt, layout::VTIMER_INTID);
                assert_eq!(h.gic.gicd.base, layout::GICD_BASE);
            }
        }
    }

    #[test]
    fn degenerate_params_do_not_panic() {
        for vcpus in [0, 9, 64, usize::MAX] {
            for gic in [GicVersion::V2, GicVersion::V3] {
                let p = GuestFdtParams {
                    vcpus,
                    ram_base: 0,
                    ram_size: u64::MAX,
                    ..params(gic, 1)
                };
                let blob = build(&p).unwrap();
                Dtb::parse(&blob).unwrap();
            }
        }
        // A NUL inside bootargs is a vm-fdt error, not a panic.
        let p = GuestFdtParams {
            bootargs: Some("a\0b"),
            ..params(GicVersion::V3, 1)
        };
        assert_eq!(build(&p), Err(Error::InvalidString));
        assert_eq!(format_node("memory", 0), "memory@0");
        assert_eq!(format_node("memory", 0x4000_0000), "memory@40000000");
    }
}

#[cfg(test)]
mod passthrough_tests {
    use super::*;
    use crate::config::Passthrough;
    use crate::dtb::Dtb;
    use crate::memory::Region;

    #[test]
    fn passed_through_device_appears_at_its_host_address() {
        let dev = Passthrough {
            path: "/pl011@9040000".into(),
            name: "pl011@9040000".into(),
            compatible: b"arm,pl011\0arm,primecell\0".to_vec(),
            regions: alloc::vec![Region::new(0x0904_0000, 0x1000)],
            intids: alloc::vec![40],
            has_clocks: true,
        };
        let blob = build(&GuestFdtParams {
            ram_base: layout::RAM_BASE,
            ram_size: 64 << 20,
            vcpus: 1,
            gic: GicVersion::V3,
            bootargs: None,
            initrd: None,
            devices: core::slice::from_ref(&dev),
        })
        .unwrap();
        let dt = Dtb::parse(&blob).unwrap();
        let node = dt.find("/pl011@9040000").expect("device node");
        assert!(node.is_compatible("arm,pl011"));
        assert_eq!(node.reg().unwrap().unwrap(), [(0x0904_0000, 0x1000)]);
        let ints: alloc::vec::Vec<u32> = crate::dtb::cells(node.prop("interrupts").unwrap())
            .unwrap()
            .collect();
        assert_eq!(ints, [0, 8, 4]);
        assert_eq!(
            crate::dtb::cells(node.prop("clocks").unwrap())
                .unwrap()
                .collect::<alloc::vec::Vec<_>>(),
            [2, 2]
        );
    }
}
