//! Host tests of the vGIC model, driven through its register interface.

use super::*;

mod held_copy;
mod v2;

fn lr_reader(v: &Vgic, vcpu: usize, state: LrState) -> impl FnMut(usize) -> Lr + '_ {
    move |slot| Lr {
        intid: v.cpus[vcpu].lrs[slot].unwrap_or(0),
        state,
        priority: 0,
        group1: true,
        hw: None,
        eoi_maint: false,
        source: 0,
    }
}

fn enabled_v3(vcpus: usize) -> Vgic {
    let mut g = Vgic::new(Version::V3, vcpus, 4);
    g.dist_write(0, 0x000, 4, 0x2);
    g
}

#[test]
fn lr_encodings_round_trip() {
    let lr = Lr {
        intid: 27,
        state: LrState::Pending,
        priority: 0xa0,
        group1: true,
        hw: Some(27),
        eoi_maint: false,
        source: 0,
    };
    assert_eq!(Lr::decode_v3(lr.encode_v3()), lr);
    assert_eq!(Lr::decode_v2(lr.encode_v2()), lr);
    let sw = Lr {
        intid: 33,
        state: LrState::PendingActive,
        priority: 0x80,
        group1: false,
        hw: None,
        eoi_maint: true,
        source: 0,
    };
    assert_eq!(Lr::decode_v3(sw.encode_v3()), sw);
    assert_eq!(Lr::decode_v2(sw.encode_v2()), sw);
    assert_eq!(sw.encode_v3() >> 62, 3);
    assert_eq!(sw.encode_v2() >> 28 & 3, 3);
}

#[test]
fn ppi_via_redistributor_goes_through_lr_lifecycle() {
    let mut g = enabled_v3(2);
    // Guest: group 1, enable INTID 27 in vCPU 1's SGI frame.
    g.redist_write(1, 0x10080, 4, 1 << 27);
    g.redist_write(1, 0x10100, 4, 1 << 27);
    assert_eq!(g.redist_read(1, 0x10100, 4), 1 << 27);
    assert_eq!(g.redist_read(0, 0x10100, 4), 0, "banked per vCPU");
    let e = g.inject(1, 27, Some(27));
    assert_eq!(e.kick, 0b10);
    assert!(g.has_pending(1) && !g.has_pending(0));
    let mut out = Vec::new();
    assert!(!g.fill_lrs(1, &mut out));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.hw, Some(27));
    assert_eq!(out[0].1.state, LrState::Pending);
    // Nothing new to place while it sits in an LR.
    let mut again = Vec::new();
    g.fill_lrs(1, &mut again);
    assert!(again.is_empty());
    // Guest acknowledged it: active.
    let snapshot = g.clone();
    g.sync_lrs(1, &mut lr_reader(&snapshot, 1, LrState::Active));
    assert!(g.cpus[1].private[27].active && g.cpus[1].private[27].in_lr);
    assert_eq!(g.redist_read(1, 0x10300, 4), 1 << 27);
    // Guest deactivated it: the LR is free again.
    let snapshot = g.clone();
    g.sync_lrs(1, &mut lr_reader(&snapshot, 1, LrState::Invalid));
    assert!(!g.cpus[1].private[27].in_lr);
    assert_eq!(g.cpus[1].lrs[0], None);
    assert!(!g.has_pending(1));
}

#[test]
fn disabled_or_group_disabled_interrupts_stay_out_of_lrs() {
    let mut g = Vgic::new(Version::V3, 1, 4);
    g.redist_write(0, 0x10080, 4, 1 << 27);
    g.redist_write(0, 0x10100, 4, 1 << 27);
    g.inject(0, 27, None);
    let mut out = Vec::new();
    g.fill_lrs(0, &mut out);
    assert!(out.is_empty(), "GICD_CTLR.EnableGrp1 is still 0");
    g.dist_write(0, 0, 4, 2);
    g.redist_write(0, 0x10180, 4, 1 << 27); // ICENABLER
    g.fill_lrs(0, &mut out);
    assert!(out.is_empty(), "interrupt disabled");
    g.redist_write(0, 0x10100, 4, 1 << 27);
    g.fill_lrs(0, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn level_interrupt_is_resampled_after_eoi() {
    let mut g = enabled_v3(1);
    g.dist_write(0, 0x084, 4, 1 << 1); // IGROUPR1: INTID 33 group 1
    g.dist_write(0, 0x104, 4, 1 << 1); // ISENABLER1: INTID 33
    g.set_level(0, 33, true);
    let mut out = Vec::new();
    g.fill_lrs(0, &mut out);
    assert!(
        out[0].1.eoi_maint,
        "level interrupts ask for EOI maintenance"
    );
    // Guest EOIs while the line is still high: pending again.
    let snapshot = g.clone();
    g.sync_lrs(0, &mut lr_reader(&snapshot, 0, LrState::Invalid));
    assert!(g.has_pending(0));
    // Line dropped: nothing left.
    g.set_level(0, 33, false);
    assert!(!g.has_pending(0));
}

#[test]
fn more_pending_than_lrs_reports_overflow_and_sorts_by_priority() {
    let mut g = enabled_v3(1);
    g.dist_write(0, 0x084, 4, u32::MAX as u64);
    g.dist_write(0, 0x104, 4, u32::MAX as u64);
    for (n, intid) in (32..38).enumerate() {
        g.dist_write(0, 0x400 + intid as u64, 1, 0xf0 - n as u64 * 0x10);
        g.inject(0, intid, None);
    }
    let mut out = Vec::new();
    assert!(g.fill_lrs(0, &mut out), "6 pending, 4 LRs");
    let ids: Vec<u32> = out.iter().map(|(_, l)| l.intid).collect();
    assert_eq!(
        ids,
        [37, 36, 35, 34],
        "highest priority (lowest value) first"
    );
}

#[test]
fn v3_distributor_ignores_private_interrupts_and_routes_spis() {
    let mut g = enabled_v3(4);
    g.dist_write(0, 0x100, 4, u32::MAX as u64);
    assert_eq!(
        g.dist_read(0, 0x100, 4),
        0,
        "SGI/PPI enables live in the redistributor"
    );
    assert_eq!(g.dist_read(0, 0xffe8, 4), 0x3b);
    g.dist_write(0, 0x6000 + 8 * 40, 8, 2);
    assert_eq!(g.spi_target(40), 2);
    g.dist_write(0, 0x6000 + 8 * 41, 8, 1 << 31);
    assert_eq!(g.spi_target(41), 0, "1-of-N routing goes to vCPU 0");
    g.dist_write(0, 0x6000 + 8 * 42, 8, 0x77);
    assert_eq!(
        g.spi_target(42),
        0,
        "route to a missing vCPU falls back to 0"
    );
    let typer = g.dist_read(0, 4, 4);
    assert_eq!(typer & 0x1f, 3);
    assert_eq!(typer >> 19 & 0x1f, 9);
}

#[test]
fn v2_banked_registers_targets_and_sgir() {
    let mut g = Vgic::new(Version::V2, 2, 4);
    g.dist_write(0, 0, 4, 1);
    g.dist_write(1, 0x100, 4, 1 << 27);
    assert_eq!(g.dist_read(1, 0x100, 4), 1 << 27);
    assert_eq!(g.dist_read(0, 0x100, 4), 0);
    assert_eq!(
        g.dist_read(1, 0x800, 4),
        0x0202_0202,
        "private targets read as self"
    );
    g.dist_write(0, 0x800 + 32, 1, 0x2);
    assert_eq!(g.spi_target(32), 1);
    g.dist_write(0, 0x800 + 33, 1, 0xfc);
    assert_eq!(g.spi_target(33), 0, "non-existent vCPUs are masked off");
    // SGI 3 from vCPU 0 to "all but self".
    g.dist_write(0, 0x100, 4, 1 << 3);
    g.dist_write(1, 0x100, 4, 1 << 3);
    let e = g.dist_write(0, 0xf00, 4, (1 << 24) | 3);
    assert_eq!(e.kick, 0b10);
    assert!(g.cpus[1].private[3].pending && !g.cpus[0].private[3].pending);
}

#[test]
fn sgi1r_targets() {
    let mut g = enabled_v3(3);
    assert_eq!(g.sgi1r_write(0, (5 << 24) | 0b110).kick, 0b110);
    assert_eq!(g.sgi1r_write(1, (1 << 40) | (2 << 24)).kick, 0b101);
    assert_eq!(
        g.sgi1r_write(0, (1 << 16) | 1).kick,
        0,
        "Aff1 != 0 matches nobody"
    );
    assert_eq!(
        g.sgi1r_write(0, 0xff00).kick,
        0,
        "non-existent targets ignored"
    );
}

#[test]
fn redistributor_typer_and_waker() {
    let mut g = Vgic::new(Version::V3, 2, 4);
    assert_eq!(g.redist_read(1, 0x8, 8), (1 << 32) | (1 << 8) | (1 << 4));
    assert_eq!(g.redist_read(0, 0x8, 8) & (1 << 4), 0);
    assert_eq!(g.redist_read(0, 0x14, 4), 0b110);
    g.redist_write(0, 0x14, 4, 0);
    assert_eq!(g.redist_read(0, 0x14, 4), 0);
}

#[test]
fn hostile_accesses_never_panic() {
    let mut g = Vgic::new(Version::V3, 1, 4);
    let mut h = Vgic::new(Version::V2, 1, 4);
    for off in (0..0x10000u64)
        .step_by(4)
        .chain([0xfffc, 0x1_0000, u64::MAX - 3])
    {
        for v in [0, u64::MAX] {
            g.dist_write(0, off, 4, v);
            g.dist_read(0, off, 4);
            g.redist_write(0, off, 4, v);
            g.redist_read(0, off, 4);
            h.dist_write(0, off, 4, v);
            h.dist_read(0, off, 1);
        }
    }
    let mut out = Vec::new();
    g.fill_lrs(0, &mut out);
    assert!(out.len() <= 4);
}

mod hw_link_tests {
    use super::*;

    /// Issue 10 item 2, a passed-through level SPI on GICv3: the guest's
    /// handler ends INTID 40 at the GIC while the device still holds the
    /// line, the GIC queues it again (into a list register), then the
    /// handler clears the device: when the guest is about to acknowledge,
    /// the pending copy is withdrawn. An acknowledged (active) copy, or one
    /// whose line is still up, stays.
    #[test]
    fn a_pending_spi_copy_whose_line_dropped_leaves_its_list_register() {
        let mut g = enabled_v3(1);
        g.dist_write(0, 0x084, 4, 1 << 8); // IGROUPR1: INTID 40 group 1
        g.dist_write(0, 0x104, 4, 1 << 8); // ISENABLER1: INTID 40
        g.inject(0, 40, Some(40));
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        let slot = out[0].0;
        // Line still up: stays.
        assert!(g.withdraw_dropped_lrs(0, &mut |_| true).is_empty());
        // Acknowledged by the guest: its own now, whatever the line.
        let snapshot = g.clone();
        g.sync_lrs(0, &mut lr_reader(&snapshot, 0, LrState::Active));
        assert!(g.withdraw_dropped_lrs(0, &mut |_| false).is_empty());
        // Pending and the line dropped: withdrawn, nothing left to deliver.
        let snapshot = g.clone();
        g.sync_lrs(0, &mut lr_reader(&snapshot, 0, LrState::Pending));
        let mut asked = Vec::new();
        let slots = g.withdraw_dropped_lrs(0, &mut |p| {
            asked.push(p);
            false
        });
        assert_eq!((slots, asked), (vec![slot], vec![40]));
        assert!(!g.has_pending(0));
        assert_eq!(g.dist_read(0, 0x204, 4) & (1 << 8), 0, "reads not pending");
        // Its next assertion is delivered as usual.
        g.inject(0, 40, Some(40));
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.hw, Some(40));
    }

    /// Issue 10 item 2, as the conformance guest's `timer_level_resampled`
    /// sees it: the timer PPI fired while masked reads pending; once the
    /// line dropped, a re-sample before the read withdraws the copy, so
    /// the PPI reads not pending (and nothing is delivered on unmask).
    #[test]
    fn a_withdrawn_copy_reads_not_pending() {
        let mut g = Vgic::new(Version::V3, 2, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10080, 4, 1 << 27);
        g.inject(0, 27, Some(27));
        assert_eq!(g.redist_read(0, 0x10200, 4) & (1 << 27), 1 << 27);
        // Line still up: nothing withdrawn, still pending.
        assert_eq!(g.withdraw_dropped(0, &mut |_| true), 0);
        assert_eq!(g.redist_read(0, 0x10200, 4) & (1 << 27), 1 << 27);
        // Another vCPU's re-sample leaves this one's private copy alone.
        let mut asked = Vec::new();
        g.withdraw_dropped(1, &mut |p| {
            asked.push(p);
            false
        });
        assert!(asked.is_empty(), "asked about {asked:?}");
        // Line dropped: withdrawn, reads 0, nothing to deliver.
        assert_eq!(g.withdraw_dropped(0, &mut |_| false), 1);
        assert_eq!(g.redist_read(0, 0x10200, 4) & (1 << 27), 0);
        g.redist_write(0, 0x10100, 4, 1 << 27);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert!(out.is_empty(), "stale copy delivered: {out:?}");
        // A copy in a list register is the guest's: never withdrawn here.
        g.inject(0, 27, Some(27));
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(g.withdraw_dropped(0, &mut |_| false), 0);
    }

    /// Issue 10 item 2: the guest masks its timer PPI, the timer fires
    /// (queued, linked to the physical PPI), then the guest turns the timer
    /// off (the line drops) and unmasks: the copy is withdrawn, not
    /// delivered stale, and the physical PPI is left to the caller to
    /// finish. With the line still up it is delivered as before.
    #[test]
    fn a_queued_level_copy_whose_line_dropped_is_withdrawn() {
        for line_up in [false, true] {
            let mut g = Vgic::new(Version::V3, 1, 4);
            g.dist_write(0, 0, 4, 2);
            g.redist_write(0, 0x10080, 4, 1 << 27);
            // Masked (not enabled) when the timer fires.
            g.inject(0, 27, Some(27));
            let mut out = Vec::new();
            let mut asked = Vec::new();
            g.fill_lrs_resampled(0, &mut out, &mut |p| {
                asked.push(p);
                line_up
            });
            assert!(out.is_empty(), "masked: nothing placed");
            assert!(asked.is_empty(), "a masked copy is not re-sampled yet");
            // Unmask (GICR_ISENABLER0).
            g.redist_write(0, 0x10100, 4, 1 << 27);
            g.fill_lrs_resampled(0, &mut out, &mut |p| {
                asked.push(p);
                line_up
            });
            assert_eq!(asked, [27]);
            if line_up {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].1.hw, Some(27));
            } else {
                assert!(out.is_empty(), "stale copy delivered: {out:?}");
                assert!(!g.cpus[0].private[27].pending);
                assert_eq!(g.cpus[0].private[27].hw, None);
                assert!(!g.has_pending(0));
                // The next time the timer fires it is delivered normally.
                g.inject(0, 27, Some(27));
                g.fill_lrs_resampled(0, &mut out, &mut |_| true);
                assert_eq!(out.len(), 1);
            }
        }
    }

    /// Only linked copies are re-sampled: a software-pending interrupt
    /// (an SGI, an emulated device's edge) never asks.
    #[test]
    fn virtual_only_copies_are_not_resampled() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10080, 4, 1 << 3);
        g.redist_write(0, 0x10100, 4, 1 << 3);
        g.inject(0, 3, None);
        let mut out = Vec::new();
        g.fill_lrs_resampled(0, &mut out, &mut |p| panic!("asked about {p}"));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn reinjection_while_in_lr_keeps_its_hardware_link() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10080, 4, 1 << 27);
        g.redist_write(0, 0x10100, 4, 1 << 27);
        // First timer interrupt goes into an LR (as a software one, as after
        // a vCPU switch converted it).
        g.inject(0, 27, None);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        // The physical timer fires again while it is still in the LR.
        g.inject(0, 27, Some(27));
        // The guest completes the first one.
        let snap = g.clone();
        g.sync_lrs(0, &mut |slot| Lr {
            intid: snap.cpus[0].lrs[slot].unwrap_or(0),
            state: LrState::Invalid,
            priority: 0,
            group1: true,
            hw: None,
            eoi_maint: false,
            source: 0,
        });
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].1.hw,
            Some(27),
            "the new injection must stay linked to the physical PPI"
        );
    }

    /// Regression test: a timer interrupt acknowledged for a vCPU that left
    /// its CPU before it reached a list register (slice over, or its VM
    /// resetting) kept the physical PPI 27 active; after a VM restart
    /// dropped the model, that CPU's virtual timer never fired again.
    #[test]
    fn leaving_the_cpu_finishes_links_not_in_a_list_register() {
        let mut g = Vgic::new(Version::V3, 2, 4);
        g.dist_write(0, 0, 4, 2);
        for vcpu in 0..2 {
            g.redist_write(vcpu, 0x10080, 4, 1 << 27);
            g.redist_write(vcpu, 0x10100, 4, 1 << 27);
        }
        // vCPU 0: injected and left before a fill. vCPU 1: in an LR.
        g.inject(0, 27, Some(27));
        g.inject(1, 27, Some(27));
        let mut out = Vec::new();
        g.fill_lrs(1, &mut out);
        assert_eq!(out.len(), 1);
        let mut done = Vec::new();
        g.unlink_hw(0, 0, &mut |p| done.push(p));
        assert_eq!(
            done,
            [27],
            "acknowledged, never given to the guest: deactivate it"
        );
        done.clear();
        g.unlink_hw(1, 1 << 27, &mut |p| done.push(p));
        assert!(
            done.is_empty(),
            "the list register's link is the caller's to finish"
        );
        // Both stay deliverable to the guest, without a link.
        assert!(g.cpus[0].private[27].pending && g.cpus[0].private[27].hw.is_none());
        assert!(g.cpus[1].private[27].in_lr && g.cpus[1].private[27].hw.is_none());
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.hw, None);
        // Nothing left to finish a second time.
        g.unlink_hw(0, 0, &mut |p| done.push(p));
        assert!(done.is_empty());
    }

    /// Regression test: the vCPU left with an earlier timer interrupt in a
    /// list register, already unlinked by a previous switch (so a purely
    /// virtual one), and a new injection linked to the physical PPI waiting
    /// behind it. That link is not in any list register: it must be
    /// finished too, or PPI 27 stays active for good (seen as a Linux vCPU
    /// whose timer never fired again after a few switches).
    #[test]
    fn leaving_the_cpu_finishes_a_link_waiting_behind_a_virtual_copy() {
        let mut g = Vgic::new(Version::V3, 1, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(0, 0x10080, 4, 1 << 27);
        g.redist_write(0, 0x10100, 4, 1 << 27);
        g.inject(0, 27, Some(27));
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        // First switch: the LR's link is finished by the caller.
        let mut done = Vec::new();
        g.unlink_hw(0, 1 << 27, &mut |p| done.push(p));
        assert!(done.is_empty());
        // Back on the CPU, the timer fires again while the virtual copy is
        // still in its LR; the vCPU leaves before the guest completes it.
        g.inject(0, 27, Some(27));
        assert!(g.cpus[0].private[27].in_lr);
        g.unlink_hw(0, 0, &mut |p| done.push(p));
        assert_eq!(
            done,
            [27],
            "the waiting injection's physical interrupt is still active"
        );
    }
}

mod fill_tracking_tests {
    use super::*;

    #[test]
    fn fill_scans_only_when_something_may_be_deliverable() {
        let mut g = Vgic::new(Version::V3, 2, 4);
        g.dist_write(0, 0, 4, 2);
        g.redist_write(1, 0x10080, 4, 1 << 27);
        g.redist_write(1, 0x10100, 4, 1 << 27);
        let mut out = Vec::new();
        g.fill_lrs(0, &mut out);
        g.fill_lrs(1, &mut out);
        assert!(out.is_empty());
        assert_eq!(g.needs_fill, 0, "nothing left: both vCPUs are clean");
        g.inject(1, 27, None);
        assert_eq!(g.needs_fill, 0b10, "only the target is marked");
        g.fill_lrs(1, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(g.needs_fill & 0b10, 0);
        // A level interrupt whose LR completes is re-examined.
        g.dist_write(0, 0x084, 4, 1 << 1);
        g.dist_write(0, 0x104, 4, 1 << 1);
        g.set_level(0, 33, true);
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(g.needs_fill & 1, 0);
        let snap = g.clone();
        g.sync_lrs(0, &mut |slot| Lr {
            intid: snap.cpus[0].lrs[slot].unwrap_or(0),
            state: LrState::Invalid,
            priority: 0,
            group1: true,
            hw: None,
            eoi_maint: true,
            source: 0,
        });
        assert_eq!(g.needs_fill & 1, 1);
        out.clear();
        g.fill_lrs(0, &mut out);
        assert_eq!(out.len(), 1, "still asserted: delivered again");
    }
}

/// One vCPU's list registers as the hardware holds them (raw GICH_LR /
/// ICH_LR values, so the encodings are exercised too), driven the way the
/// hypervisor's run loop drives them: before each entry every (slot, lr)
/// that `fill_lrs` returns is written and the underflow interrupt asked for
/// as it says; after each exit `sync_lrs` reads them back and a finished one
/// is cleared. The guest side acknowledges and deactivates like a virtual
/// CPU interface with every interrupt at one priority (no preemption).
struct Hw {
    version: Version,
    vcpu: usize,
    lrs: [u64; MAX_LRS],
    underflow: bool,
    /// Writes made by the last entry.
    last: Vec<(usize, Lr)>,
}

impl Hw {
    fn new(g: &Vgic, vcpu: usize) -> Self {
        Hw {
            version: g.version,
            vcpu,
            lrs: [0; MAX_LRS],
            underflow: false,
            last: Vec::new(),
        }
    }

    fn decode(&self, raw: u64) -> Lr {
        match self.version {
            Version::V2 => Lr::decode_v2(raw as u32),
            Version::V3 => Lr::decode_v3(raw),
        }
    }

    fn encode(&self, lr: Lr) -> u64 {
        match self.version {
            Version::V2 => lr.encode_v2() as u64,
            Version::V3 => lr.encode_v3(),
        }
    }

    fn lr(&self, slot: usize) -> Lr {
        self.decode(self.lrs[slot])
    }

    fn enter(&mut self, g: &mut Vgic) {
        let mut out = Vec::new();
        self.underflow = g.fill_lrs(self.vcpu, &mut out);
        for &(slot, lr) in &out {
            self.lrs[slot] = self.encode(lr);
        }
        self.last = out;
    }

    fn exit(&mut self, g: &mut Vgic) {
        let (version, lrs) = (self.version, &mut self.lrs);
        g.sync_lrs(self.vcpu, &mut |slot| {
            let lr = match version {
                Version::V2 => Lr::decode_v2(lrs[slot] as u32),
                Version::V3 => Lr::decode_v3(lrs[slot]),
            };
            if lr.state == LrState::Invalid {
                lrs[slot] = 0;
            }
            lr
        });
    }

    /// An exit and the next entry (a kick, an MMIO access, ...).
    fn bounce(&mut self, g: &mut Vgic) {
        self.exit(g);
        self.enter(g);
    }

    fn valid(&self) -> impl Iterator<Item = (usize, Lr)> + '_ {
        (0..MAX_LRS)
            .map(|s| (s, self.lr(s)))
            .filter(|(_, l)| l.state != LrState::Invalid)
    }

    /// GICC_IAR / ICC_IAR1_EL1: (INTID, CPUID) of a pending interrupt, if
    /// the guest can take one (none while another is active).
    fn ack(&mut self) -> Option<(u32, u8)> {
        if self
            .valid()
            .any(|(_, l)| matches!(l.state, LrState::Active | LrState::PendingActive))
        {
            return None;
        }
        let (slot, mut lr) = self.valid().find(|(_, l)| l.state == LrState::Pending)?;
        lr.state = LrState::Active;
        self.lrs[slot] = self.encode(lr);
        Some((lr.intid, lr.source))
    }

    /// GICC_EOIR / ICC_EOIR1_EL1 (EOImode 0: drop and deactivate) of what
    /// `ack` returned.
    fn eoi(&mut self, (intid, source): (u32, u8)) {
        let (slot, mut lr) = self
            .valid()
            .find(|(_, l)| {
                l.intid == intid
                    && l.source == source
                    && matches!(l.state, LrState::Active | LrState::PendingActive)
            })
            .expect("EOI of an active interrupt");
        lr.state = if lr.state == LrState::PendingActive {
            LrState::Pending
        } else {
            LrState::Invalid
        };
        self.lrs[slot] = self.encode(lr);
    }

    /// Whether the maintenance interrupt is asserted: a finished list
    /// register that asked for EOI maintenance, or underflow requested with
    /// at most one valid list register.
    fn maintenance(&self) -> bool {
        let eoi = (0..MAX_LRS).any(|s| {
            let l = self.lr(s);
            l.state == LrState::Invalid && l.eoi_maint
        });
        eoi || (self.underflow && self.valid().count() <= 1)
    }

    /// The guest runs its handlers until it has nothing left to take,
    /// exiting only when the maintenance interrupt says so. Returns what it
    /// took, in order.
    fn drain(&mut self, g: &mut Vgic) -> Vec<(u32, u8)> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            if let Some(i) = self.ack() {
                got.push(i);
                self.eoi(i);
            } else if self.maintenance() {
                self.bounce(g);
            } else {
                return got;
            }
        }
        panic!("guest never settles: {got:?}");
    }
}

/// vCPU 0 of `vcpus` with the distributor and SGIs 0..16 enabled (group 1).
fn sgi_ready(version: Version, vcpus: usize) -> Vgic {
    let mut g = Vgic::new(version, vcpus, 4);
    for c in 0..vcpus {
        match version {
            Version::V2 => {
                g.dist_write(c, 0x080, 4, 0xffff);
                g.dist_write(c, 0x100, 4, 0xffff);
            }
            Version::V3 => {
                g.redist_write(c, 0x10080, 4, 0xffff);
                g.redist_write(c, 0x10100, 4, 0xffff);
            }
        }
    }
    g.dist_write(0, 0, 4, if version == Version::V3 { 2 } else { 1 });
    g
}

/// `from` sends SGI `sgi` to vCPU `to` the way its guest would.
fn send_sgi(g: &mut Vgic, from: usize, to: usize, sgi: u32) -> Effects {
    match g.version {
        Version::V2 => g.dist_write(from, 0xf00, 4, ((1 << to) << 16) | sgi as u64),
        Version::V3 => g.sgi1r_write(from, ((sgi as u64) << 24) | (1 << to)),
    }
}
