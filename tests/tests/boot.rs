//! The hypervisor boots on both GIC versions: banner, then the second CPU.

use tests::*;

fn boot(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let mut run = start(&scenario(gic, [VmSpec::guest("domU0", "heartbeat")]))?;

    let banner_re = re(r"^\[hv\] blink (\S+) on (.+): EL2, (\d+) CPUs, GICv(\d)$");
    let banner = run.expect(&banner_re, DEADLINE)?;
    let caps = banner_re
        .captures(&banner)
        .expect("expect returned a matching line");
    check!(
        run,
        &caps[3] == "2",
        "banner reports {} CPUs, machine has 2: {banner}",
        &caps[3]
    );
    check!(
        run,
        caps[4] == gic.to_string(),
        "banner says GICv{}, machine has GICv{gic}",
        &caps[4]
    );

    run.expect(&re(r"^\[hv\] cpu 1 online$"), DEADLINE)?;
    Ok(())
}

on_both_gics!(boot);
