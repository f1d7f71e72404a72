//! Bad VM descriptions are refused one by one, naming the offending node,
//! and do not stop the valid VM.

use tests::*;

fn bad_config(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let vms = [
        VmSpec::guest("domU0", "heartbeat"),
        // More vCPUs than any VM may have.
        VmSpec::guest("domU1", "heartbeat").cpus(64),
        // No kernel module at all.
        VmSpec::guest("domU2", "heartbeat").omit_kernel(),
        // Static memory inside the hypervisor's own region (0x4000_0000..0x4400_0000);
        // memory matches the static size so the overlap is the only problem.
        VmSpec::guest("domU3", "heartbeat")
            .mem_mib(32)
            .static_mem(0x4000_0000, 32 << 20),
    ];
    let mut run = start(&scenario(gic, vms))?;

    let errors = ["domU1", "domU2", "domU3"].map(hv::vm_config_error);
    let mut wanted = errors.to_vec();
    wanted.push(re(r"^\[domU0\] heartbeat: n=2(\s|$)"));
    wait_all(&mut run, &wanted)?;

    run.assert_absent(&hv::vm_config_error_in("domU0"))?;
    for name in ["domU1", "domU2", "domU3"] {
        run.assert_absent(&hv::vm_started(None, name))?;
    }
    Ok(())
}

on_both_gics!(bad_config);
