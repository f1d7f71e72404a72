//! The hypervisor boots on both GIC versions: banner, then the second CPU.

use tests::*;

fn boot(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let mut run = start(&scenario(gic, [VmSpec::guest("domU0", "heartbeat")]))?;

    let line = run.expect(&hv::Banner::pattern(), DEADLINE)?;
    let banner = hv::Banner::parse(&line).expect("expect returned a matching line");
    check!(
        run,
        banner.ncpus == 2,
        "banner reports {} CPUs, machine has 2: {line}",
        banner.ncpus
    );
    check!(
        run,
        banner.gic == gic,
        "banner says GICv{}, machine has GICv{gic}",
        banner.gic
    );

    run.expect(&hv::cpu_online(1), DEADLINE)?;
    Ok(())
}

on_both_gics!(boot);
