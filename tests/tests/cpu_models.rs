//! The hypervisor boots and runs a VM on every CPU model and CPU count we
//! support: cortex-a53, cortex-a72 and max, with 1 and 4 physical CPUs. The
//! guest is the smp guest with 2 vCPUs, so with 1 physical CPU both vCPUs
//! share it and with 4 each has its own.

use tests::*;

fn models(gic: u32) -> anyhow::Result<()> {
    require_images(&["smp"])?;
    for cpu in ["cortex-a53", "cortex-a72", "max"] {
        for smp in [1u32, 4] {
            let mut s = scenario(gic, [VmSpec::guest("domU0", "smp").cpus(2)]).smp(smp);
            s.cpu = cpu.to_string();
            let mut run = start(&s)?;
            run.expect(&hv::banner(smp, gic), DEADLINE)?;
            // Secondary CPUs come online in any order.
            let online: Vec<_> = (1..smp).map(hv::cpu_online).collect();
            wait_all(&mut run, &online)?;
            run.expect(&re(r"^\[domU0\] smp: 2 cpus online$"), DEADLINE)?;
            run.expect(&re(r"^\[domU0\] smp: done$"), DEADLINE)?;
            run.assert_absent(&hv::tagged(&[
                hv::Tag::Fatal,
                hv::Tag::Panic,
                hv::Tag::Warn,
            ]))?;
        }
    }
    Ok(())
}

on_both_gics!(models);
