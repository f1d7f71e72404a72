//! GICv2 keeps an SGI's pending state per source and reports the source in
//! GICC_IAR (GICH_LR.CPUID).
//!
//! Also the GICv2 identification and target registers.

use super::*;

#[test]
fn lr_cpuid_round_trips_on_v2_only() {
    let lr = Lr {
        intid: 3,
        state: LrState::Pending,
        priority: 0xa0,
        group1: true,
        hw: None,
        eoi_maint: true,
        source: 5,
    };
    let raw = lr.encode_v2();
    assert_eq!(raw >> 10 & 7, 5, "GICH_LR.CPUID");
    assert_eq!(raw & 0x3ff, 3);
    assert_ne!(raw & (1 << 19), 0, "EOI bit kept apart from CPUID");
    assert_eq!(Lr::decode_v2(raw), lr);
    assert_eq!(
        Lr::decode_v3(lr.encode_v3()),
        Lr { source: 0, ..lr },
        "no CPUID on GICv3"
    );
    let linked = Lr {
        hw: Some(27),
        eoi_maint: false,
        source: 0,
        ..lr
    };
    assert_eq!(
        linked.encode_v2() >> 10 & 0x3ff,
        27,
        "bits 19:10 are the physical INTID"
    );
    assert_eq!(Lr::decode_v2(linked.encode_v2()), linked);
}

#[test]
fn two_sources_are_two_deliveries_with_their_cpuid() {
    let mut g = sgi_ready(Version::V2, 3);
    let mut hw = Hw::new(&g, 0);
    assert_eq!(send_sgi(&mut g, 1, 0, 4).kick, 1);
    assert_eq!(send_sgi(&mut g, 2, 0, 4).kick, 1);
    assert_eq!(
        g.dist_read(0, 0xf24, 1),
        0b110,
        "SPENDSGIR1 byte 0: SGI 4 from 1 and 2"
    );
    hw.enter(&mut g);
    assert_eq!(hw.last.len(), 1, "one list register per SGI at a time");
    let (slot, lr) = hw.last[0];
    assert_eq!((lr.intid, lr.source, lr.eoi_maint), (4, 1, true));
    assert_eq!(hw.lrs[slot] >> 10 & 7, 1, "GICH_LR.CPUID = vCPU 1");
    assert_eq!(hw.drain(&mut g), [(4, 1), (4, 2)]);
    hw.exit(&mut g);
    assert_eq!(g.dist_read(0, 0xf24, 1), 0);
    assert!(!g.has_pending(0));
}

#[test]
fn another_source_while_active_waits_for_the_eoi_exit() {
    let mut g = sgi_ready(Version::V2, 3);
    let mut hw = Hw::new(&g, 0);
    send_sgi(&mut g, 1, 0, 4);
    hw.enter(&mut g);
    let first = hw.ack().unwrap();
    assert_eq!(first, (4, 1));
    send_sgi(&mut g, 2, 0, 4);
    hw.bounce(&mut g);
    assert_eq!(hw.last.len(), 1);
    let held = hw.last[0].1;
    assert_eq!(
        (held.state, held.source, held.eoi_maint),
        (LrState::Active, 1, true)
    );
    assert_eq!(
        g.dist_read(0, 0xf24, 1),
        0b100,
        "vCPU 1's copy is active, not pending"
    );
    hw.eoi(first);
    assert!(hw.maintenance(), "deactivating the first exits");
    hw.bounce(&mut g);
    assert_eq!(hw.ack(), Some((4, 2)));
}

#[test]
fn same_source_while_active_is_pending_and_active_with_its_cpuid() {
    let mut g = sgi_ready(Version::V2, 3);
    let mut hw = Hw::new(&g, 0);
    send_sgi(&mut g, 2, 0, 9);
    hw.enter(&mut g);
    let first = hw.ack().unwrap();
    send_sgi(&mut g, 2, 0, 9);
    hw.bounce(&mut g);
    let held = hw.last[0].1;
    assert_eq!(
        (held.state, held.source, held.eoi_maint),
        (LrState::PendingActive, 2, false)
    );
    hw.eoi(first);
    assert_eq!(hw.ack(), Some((9, 2)));
}

#[test]
fn sgir_filters_name_the_sender() {
    let mut g = sgi_ready(Version::V2, 3);
    // "All but self" from vCPU 2, "self" from vCPU 1.
    assert_eq!(g.dist_write(2, 0xf00, 4, (1 << 24) | 7).kick, 0b011);
    assert_eq!(g.dist_write(1, 0xf00, 4, (2 << 24) | 7).kick, 0b010);
    assert_eq!(
        g.dist_read(0, 0xf24, 4) >> 24,
        0b100,
        "SGI 7 is byte 3 of SPENDSGIR1"
    );
    assert_eq!(g.dist_read(1, 0xf24, 4) >> 24, 0b110);
    assert_eq!(g.dist_read(2, 0xf24, 4), 0, "not sent to itself");
    assert_eq!(
        g.dist_read(1, 0x200, 4) & 0xffff,
        1 << 7,
        "ISPENDR0: pending from anyone"
    );
}

#[test]
fn spendsgir_and_cpendsgir_set_and_clear_per_source() {
    let mut g = sgi_ready(Version::V2, 3);
    // Sources beyond the 3 vCPUs do not exist.
    assert_eq!(g.dist_write(0, 0xf20, 4, 0xff << 16).kick, 1);
    assert_eq!(
        g.dist_read(0, 0xf20, 4),
        0b111 << 16,
        "SGI 2 from vCPUs 0..3"
    );
    assert_eq!(
        g.dist_read(0, 0xf10, 4),
        0b111 << 16,
        "CPENDSGIR reads the same"
    );
    g.dist_write(0, 0xf12, 1, 0b010);
    assert_eq!(g.dist_read(0, 0xf22, 1), 0b101);
    assert!(g.cpus[0].private[2].pending);
    g.dist_write(0, 0xf12, 1, 0xff);
    assert!(!g.cpus[0].private[2].pending, "no source left");
    assert_eq!(g.dist_read(1, 0xf20, 4), 0, "banked per vCPU");
    // ISPENDR0/ICPENDR0 ignore SGI bits on GICv2 (PPIs still work).
    g.dist_write(0, 0x200, 4, (1 << 3) | (1 << 20));
    assert!(!g.cpus[0].private[3].pending && g.cpus[0].private[20].pending);
    g.dist_write(0, 0x201, 1, 0xff); // SGIs 8..15, byte access
    assert!((8..16).all(|i| !g.cpus[0].private[i].pending));
    assert_eq!(g.cpus[0].sgi_sources, [0; NR_SGIS]);
    send_sgi(&mut g, 1, 0, 3);
    g.dist_write(0, 0x280, 4, 1 << 3);
    assert!(g.cpus[0].private[3].pending);
    assert_eq!(g.dist_read(0, 0xf20, 4), 0b10 << 24);
    // Set from the register: delivered with that source.
    g.dist_write(0, 0xf2c, 4, 0b100 << 8); // SGI 13 from vCPU 2
    let mut hw = Hw::new(&g, 0);
    hw.enter(&mut g);
    let got = hw.drain(&mut g);
    assert!(got.contains(&(13, 2)) && got.contains(&(3, 1)), "{got:?}");
}

#[test]
fn sgi_registers_are_v2_only_and_never_panic() {
    let mut v3 = sgi_ready(Version::V3, 2);
    v3.dist_write(0, 0xf20, 4, u32::MAX as u64);
    assert_eq!(v3.dist_read(0, 0xf20, 4), 0);
    assert_eq!(v3.cpus[0].sgi_sources, [0; NR_SGIS]);
    let mut g = sgi_ready(Version::V2, 2);
    for off in 0xf00..0xf40u64 {
        for size in [1, 2, 4, 8] {
            g.dist_write(1, off, size, u64::MAX);
            g.dist_read(1, off, size);
        }
    }
    for sgi in 0..NR_SGIS {
        assert_eq!(
            g.cpus[1].private[sgi].pending,
            g.cpus[1].sgi_sources[sgi] != 0
        );
        assert_eq!(g.cpus[1].sgi_sources[sgi] & !0b11, 0, "only existing vCPUs");
    }
}

mod id_and_targets {
    use super::*;

    #[test]
    fn pidr2_archrev_where_each_version_has_it() {
        let v2 = Vgic::new(Version::V2, 2, 4);
        assert_eq!(v2.dist_read(0, 0xfe8, 4), 0x2b, "GICD_ICPIDR2");
        assert_eq!(v2.dist_read(0, 0xfe8, 4) >> 4 & 0xf, 2, "ArchRev = GICv2");
        assert_eq!(v2.dist_read(1, 0xfe8, 1), 0x2b);
        assert_eq!(
            v2.dist_read(0, 0xffe8, 4),
            0,
            "beyond GICv2's 4 KiB distributor"
        );
        let v3 = Vgic::new(Version::V3, 2, 4);
        assert_eq!(
            v3.dist_read(0, 0xffe8, 4) >> 4 & 0xf,
            3,
            "GICD_PIDR2.ArchRev = GICv3"
        );
        assert_eq!(v3.redist_read(1, 0xffe8, 4) >> 4 & 0xf, 3, "GICR_PIDR2");
        assert_eq!(v3.dist_read(0, 0xfe8, 4), 0);
    }

    #[test]
    fn itargetsr_is_raz_wi_with_one_cpu_interface() {
        let mut g = Vgic::new(Version::V2, 1, 4);
        for off in (0x800..0x880).step_by(4) {
            assert_eq!(g.dist_read(0, off, 4), 0, "ITARGETSR at {off:#x}");
        }
        g.dist_write(0, 0x820, 4, u32::MAX as u64);
        g.dist_write(0, 0x821, 1, 0x1);
        assert_eq!(g.dist_read(0, 0x820, 4), 0);
        assert_eq!(g.spi_target(33), 0, "still delivered to the only vCPU");
        // With two vCPUs they are real registers.
        let mut g = Vgic::new(Version::V2, 2, 4);
        assert_eq!(g.dist_read(0, 0x820, 4), 0x0101_0101);
        g.dist_write(0, 0x820, 1, 2);
        assert_eq!(g.dist_read(0, 0x820, 4), 0x0101_0102);
    }

    #[test]
    fn spi_on_a_uniprocessor_is_delivered() {
        let mut g = Vgic::new(Version::V2, 1, 4);
        g.dist_write(0, 0, 4, 1);
        g.dist_write(0, 0x104, 4, 1 << 8);
        g.dist_write(0, 0x828, 4, 0); // what Linux writes: ignored
        g.inject(0, 40, None);
        let mut hw = Hw::new(&g, 0);
        hw.enter(&mut g);
        assert_eq!(hw.drain(&mut g), [(40, 0)]);
    }
}
