//! Two VMs share the two physical CPUs: heartbeat keeps ticking, mempattern
//! verifies its RAM, and the hypervisor gave them disjoint memory.

use tests::*;

fn two_vms(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat", "mempattern"])?;
    let mut run = start(&scenario(
        gic,
        [
            VmSpec::guest("domU0", "heartbeat"),
            VmSpec::guest("domU1", "mempattern"),
        ],
    ))?;
    // A corrupted pattern fails at once rather than at the deadline.
    run.fail_on(re(r"mempattern: MISMATCH"));

    let found = wait_all(
        &mut run,
        &[
            hv::vm_created("domU0"),
            hv::vm_created("domU1"),
            hv::vm_started(None, "domU0"),
            hv::vm_started(None, "domU1"),
            re(r"^\[domU0\] heartbeat: n=3(\s|$)"),
            re(r"^\[domU1\] mempattern: pass 2: \d+ MiB ok$"),
        ],
    )?;
    let vm0 = hv::VmCreated::parse(&found[0]).expect("pattern matched");
    let vm1 = hv::VmCreated::parse(&found[1]).expect("pattern matched");
    let (r0, r1) = (vm0.range(), vm1.range());
    check!(
        run,
        r0.end <= r1.start || r1.end <= r0.start,
        "VM memory overlaps: domU0 0x{:x}..0x{:x}, domU1 0x{:x}..0x{:x}",
        r0.start,
        r0.end,
        r1.start,
        r1.end
    );
    run.assert_absent("MISMATCH")?;
    Ok(())
}

on_both_gics!(two_vms);
