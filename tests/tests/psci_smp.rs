//! PSCI CPU_ON/CPU_OFF/AFFINITY_INFO with 4 vCPUs on 2 physical CPUs, so
//! vCPUs also have to share physical CPUs.

use tests::*;

fn psci_smp(gic: u32) -> anyhow::Result<()> {
    require_images(&["smp"])?;
    let mut run = start(&scenario(gic, [VmSpec::guest("domU0", "smp").cpus(4)]))?;

    run.expect(&re(r"^\[domU0\] smp: 4 cpus online$"), DEADLINE)?;
    run.expect(&re(r"^\[domU0\] smp: cpu_off ok$"), DEADLINE)?;
    run.expect(&re(r"^\[domU0\] smp: done$"), DEADLINE)?;
    Ok(())
}

on_both_gics!(psci_smp);
