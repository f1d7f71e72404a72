//! Regression tests: an edge interrupt pending again while its previous
//! copy was active in a list register waited for the receiver's next exit,
//! which a spinning guest never makes: the IPI was lost.

use super::*;

#[test]
fn sgi_sent_again_while_active_is_delivered_without_another_exit() {
    for version in [Version::V3, Version::V2] {
        let mut g = sgi_ready(version, 2);
        let mut hw = Hw::new(&g, 0);
        send_sgi(&mut g, 1, 0, 5);
        hw.enter(&mut g);
        let first = hw.ack().expect("first SGI delivered");
        assert_eq!(first, (5, if version == Version::V2 { 1 } else { 0 }));
        // The second IPI's kick makes vCPU 0 exit while it is still in
        // the handler of the first.
        assert_eq!(send_sgi(&mut g, 1, 0, 5).kick, 1);
        hw.bounce(&mut g);
        assert_eq!(
            hw.last.len(),
            1,
            "{version:?}: the held list register is updated"
        );
        assert_eq!(hw.last[0].1.state, LrState::PendingActive, "{version:?}");
        // From here on the guest never exits: it finishes the first
        // and must find the second.
        hw.eoi(first);
        assert_eq!(hw.ack(), Some(first), "{version:?}: second IPI delivered");
        hw.eoi(first);
        assert!(hw.valid().next().is_none() && !hw.maintenance());
        hw.exit(&mut g);
        assert!(!g.has_pending(0), "{version:?}: delivered once, not twice");
        assert_eq!(g.cpus[0].lrs, [None; MAX_LRS]);
    }
}

#[test]
fn spi_pending_again_while_active_becomes_pending_and_active() {
    let mut g = enabled_v3(1);
    g.dist_write(0, 0x084, 4, 1 << 8); // INTID 40: group 1, enabled, edge
    g.dist_write(0, 0x104, 4, 1 << 8);
    g.dist_write(0, 0xc08, 4, 0x2 << 16);
    let mut hw = Hw::new(&g, 0);
    g.inject(0, 40, None);
    hw.enter(&mut g);
    let first = hw.ack().unwrap();
    hw.bounce(&mut g);
    g.inject(0, 40, None);
    hw.bounce(&mut g);
    assert_eq!(hw.last[0].1.state, LrState::PendingActive);
    hw.eoi(first);
    assert_eq!(
        hw.drain(&mut g),
        [first],
        "the second copy, without an exit"
    );
}

#[test]
fn a_second_copy_while_still_pending_is_the_same_interrupt() {
    let mut g = sgi_ready(Version::V3, 2);
    let mut hw = Hw::new(&g, 0);
    send_sgi(&mut g, 1, 0, 5);
    hw.enter(&mut g);
    send_sgi(&mut g, 1, 0, 5);
    hw.bounce(&mut g);
    assert!(hw.last.is_empty(), "already pending in its list register");
    assert!(
        !g.cpus[0].private[5].pending,
        "an edge interrupt has one pending state"
    );
    assert_eq!(hw.drain(&mut g), [(5, 0)]);
}

#[test]
fn a_linked_copy_behind_a_virtual_one_asks_for_eoi_maintenance() {
    let mut g = enabled_v3(1);
    g.redist_write(0, 0x10080, 4, 1 << 27);
    g.redist_write(0, 0x10100, 4, 1 << 27);
    g.redist_write(0, 0x10c04, 4, 0x2 << 22); // PPI 27 edge
    let mut hw = Hw::new(&g, 0);
    g.inject(0, 27, None);
    hw.enter(&mut g);
    let first = hw.ack().unwrap();
    hw.bounce(&mut g);
    // The physical timer fires again: a copy that must keep its link.
    g.inject(0, 27, Some(27));
    hw.bounce(&mut g);
    assert_eq!(hw.last.len(), 1);
    let held = hw.last[0].1;
    assert_eq!(
        (held.state, held.hw, held.eoi_maint),
        (LrState::Active, None, true)
    );
    hw.eoi(first);
    assert!(hw.maintenance(), "the guest's deactivation exits");
    hw.bounce(&mut g);
    assert_eq!(hw.last.len(), 1);
    assert_eq!(hw.last[0].1.hw, Some(27), "placed with its link");
}

#[test]
fn linked_list_registers_are_left_alone() {
    let mut g = enabled_v3(1);
    g.redist_write(0, 0x10080, 4, 1 << 27);
    g.redist_write(0, 0x10100, 4, 1 << 27);
    g.redist_write(0, 0x10c04, 4, 0x2 << 22);
    let mut hw = Hw::new(&g, 0);
    g.inject(0, 27, Some(27));
    hw.enter(&mut g);
    hw.ack().unwrap();
    hw.bounce(&mut g);
    // A guest's ISPENDR write while the linked copy is active: a linked
    // list register cannot be pending and active or ask for EOI
    // maintenance (its bits are the physical INTID).
    g.redist_write(0, 0x10200, 4, 1 << 27);
    hw.bounce(&mut g);
    assert!(hw.last.is_empty(), "{:?}", hw.last);
    assert_eq!(hw.lr(0).hw, Some(27));
}

#[test]
fn level_interrupts_keep_their_resampling() {
    let mut g = enabled_v3(1);
    g.dist_write(0, 0x084, 4, 1 << 1);
    g.dist_write(0, 0x104, 4, 1 << 1);
    let mut hw = Hw::new(&g, 0);
    g.set_level(0, 33, true);
    hw.enter(&mut g);
    hw.ack().unwrap();
    hw.bounce(&mut g);
    g.dist_write(0, 0x204, 4, 1 << 1); // ISPENDR while active
    hw.bounce(&mut g);
    assert!(
        hw.last.is_empty(),
        "its list register already asks for EOI maintenance"
    );
    g.set_level(0, 33, false);
    hw.eoi((33, 0));
    assert!(hw.maintenance());
    assert_eq!(
        hw.drain(&mut g),
        [(33, 0)],
        "the latched copy after the EOI exit"
    );
}

/// A model restored from a handoff block does not know what the
/// restored list registers hold until the first exit reads them.
#[test]
fn unknown_list_registers_are_not_rewritten() {
    use crate::handoff::VgicState;
    let mut g = sgi_ready(Version::V3, 2);
    let mut hw = Hw::new(&g, 0);
    send_sgi(&mut g, 1, 0, 5);
    hw.enter(&mut g);
    let first = hw.ack().unwrap();
    hw.exit(&mut g);
    let mut g = Vgic::try_from(&VgicState::from(&g)).unwrap();
    send_sgi(&mut g, 1, 0, 5);
    hw.enter(&mut g);
    assert!(
        hw.last.is_empty(),
        "nothing written over an unknown list register"
    );
    // Underflow is asked for instead: the vCPU exits soon and that exit
    // learns the list register; the copy then joins it.
    assert!(hw.underflow && hw.maintenance());
    hw.bounce(&mut g);
    assert_eq!(hw.last[0].1.state, LrState::PendingActive);
    hw.eoi(first);
    assert_eq!(hw.ack(), Some(first));
}

#[test]
fn spi_rerouted_while_in_a_list_register_goes_to_its_new_target() {
    let mut g = enabled_v3(2);
    g.dist_write(0, 0x084, 4, 1 << 8);
    g.dist_write(0, 0x104, 4, 1 << 8);
    g.dist_write(0, 0xc08, 4, 0x2 << 16);
    let (mut hw0, mut hw1) = (Hw::new(&g, 0), Hw::new(&g, 1));
    g.inject(0, 40, None);
    hw0.enter(&mut g);
    let first = hw0.ack().unwrap();
    hw0.bounce(&mut g);
    g.dist_write(0, 0x6000 + 8 * 40, 8, 1); // route to vCPU 1
    g.inject(0, 40, None);
    hw1.enter(&mut g);
    assert!(hw1.last.is_empty(), "still held by vCPU 0");
    hw0.bounce(&mut g);
    assert!(
        hw0.last.is_empty(),
        "not pending-and-active on the old target"
    );
    hw0.eoi(first);
    hw0.exit(&mut g);
    hw1.enter(&mut g);
    assert_eq!(
        hw1.drain(&mut g),
        [first],
        "placed once its list register freed"
    );
}

/// Random IPI traffic to vCPU 0, with the receiver exiting on every
/// kick and otherwise only for maintenance interrupts. Whenever it then
/// spins (finishes its handler and takes what it can without exiting
/// on its own), every IPI sent so far must reach it; copies sent from
/// one source before the first was taken count as one, as on a GIC.
#[test]
fn random_ipi_traffic_loses_nothing() {
    for version in [Version::V3, Version::V2] {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut g = sgi_ready(version, 4);
        let mut hw = Hw::new(&g, 0);
        let source = |from: usize| {
            if version == Version::V2 {
                from as u8
            } else {
                0
            }
        };
        // (SGI, CPUID) sent and not taken since.
        let mut owed: Vec<(u32, u8)> = Vec::new();
        let mut active: Option<(u32, u8)> = None;
        let mut spins = 0;
        for step in 0..5000 {
            match rand(5) {
                0 | 1 => {
                    // Few SGI numbers, so copies meet in list registers.
                    let (from, sgi) = (1 + rand(3) as usize, rand(3) as u32);
                    send_sgi(&mut g, from, 0, sgi);
                    if !owed.contains(&(sgi, source(from))) {
                        owed.push((sgi, source(from)));
                    }
                    hw.bounce(&mut g); // its kick
                }
                2 if active.is_none() => {
                    if let Some(i) = hw.ack() {
                        owed.retain(|&o| o != i);
                        active = Some(i);
                    }
                }
                3 => {
                    if let Some(i) = active.take() {
                        hw.eoi(i);
                    }
                    if hw.maintenance() {
                        hw.bounce(&mut g);
                    }
                }
                _ => {
                    if let Some(i) = active.take() {
                        hw.eoi(i);
                    }
                    for i in hw.drain(&mut g) {
                        owed.retain(|&o| o != i);
                    }
                    assert!(owed.is_empty(), "{version:?}, step {step}: lost {owed:?}");
                    spins += 1;
                }
            }
        }
        assert!(spins > 100);
    }
}
