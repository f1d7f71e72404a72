//! Architectural fidelity: the `conformance` guest's GIC checks (see
//! guests/src/bin/conformance.rs) under blink and bare on QEMU `virt`
//! (no hypervisor: the hardware's answer), with 1, 2 and 4 vCPUs, on
//! GICv2 and GICv3. Every check the configuration calls for must print
//! `PASS`, the others `SKIP`; one `FAIL` line fails the test at once, and
//! the summary must say 0 failed.
//!
//! Under blink the machine has 2 CPUs and the VM's vCPUs are pinned
//! round-robin: with 2 vCPUs the ping-pong runs between two physical CPUs,
//! with 4 each physical CPU also holds an idle vCPU. The 12 tests take
//! about 80 s in all on an idle 2-core machine.

use std::time::{Duration, Instant};

use tests::*;

/// The ping-pong's 100,000 round trips take about 5 s per run bare and
/// 10 s under blink on the 2-core machine, longer when other work competes
/// for the cores (the receiver spins). So the wait for the summary lasts as
/// long as the guest keeps printing (a progress line every 10,000 round
/// trips): it fails after [`DEADLINE`] without a line, or after this long
/// in all. The guest itself fails a round trip not done within 1 s.
const RUN_CAP: Duration = Duration::from_secs(20 * 60);

/// Every check the guest prints, in its order.
const CHECKS: [&str; 9] = [
    "gicd_pidr2_archrev",
    "gicd_typer_cpus",
    "gicv2_itargetsr_uniprocessor",
    "gicv2_itargetsr_spi_targets",
    "gicv2_itargetsr_private",
    "ipi_ping_pong",
    "gicv2_sgi_source",
    "sgi_pending_merge",
    "no_unexpected_interrupts",
];

/// Whether `check` applies (PASS expected) or not (SKIP) on GICv`gic` with
/// `cpus` vCPUs.
fn applies(check: &str, gic: u32, cpus: u32) -> bool {
    let v2 = gic == 2;
    match check {
        "gicd_typer_cpus" => v2,
        "gicv2_itargetsr_uniprocessor" => v2 && cpus == 1,
        "gicv2_itargetsr_spi_targets" | "gicv2_itargetsr_private" | "gicv2_sgi_source" => {
            v2 && cpus > 1
        }
        "ipi_ping_pong" => cpus > 1,
        _ => true,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Host {
    /// A VM of blink on a 2-CPU machine.
    Blink,
    /// Directly on QEMU `virt` without EL2, `-smp <cpus>`.
    Bare,
}

/// QEMU `virt` without the hypervisor: the guest image is the kernel, at
/// EL1, with QEMU's own PSCI (HVC conduit) and GIC.
fn start_bare(gic: u32, cpus: u32) -> anyhow::Result<QemuRun> {
    let image = xtask::images::require_guest_image("conformance")?;
    let image = image
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", image.display()))?
        .to_string();
    let args = [
        "-M",
        &format!("virt,gic-version={gic}"),
        "-cpu",
        "cortex-a72",
        "-smp",
        &cpus.to_string(),
        "-m",
        "128M",
        "-display",
        "none",
        "-kernel",
        &image,
        "-serial",
        "stdio",
        "-monitor",
        "none",
    ]
    .map(String::from)
    .to_vec();
    let command = xtask::QemuCommand::bare(xtask::qemu::find()?.path, args)?;
    QemuRun::spawn(command)
}

/// The first line matching `pattern`, waiting as long as new lines keep
/// coming (see [`RUN_CAP`]).
fn expect_while_printing(run: &mut QemuRun, pattern: &Regex) -> anyhow::Result<String> {
    let start = Instant::now();
    let what = format!("/{}/ (or any new line)", pattern.as_str());
    loop {
        let seen = run.lines().len();
        let found = run.wait_until(DEADLINE, &what, |lines| {
            match lines.iter().find(|l| pattern.is_match(l)) {
                Some(line) => Some(Some(line.clone())),
                None => (lines.len() > seen).then_some(None),
            }
        })?;
        if let Some(line) = found {
            return Ok(line);
        }
        check!(
            run,
            start.elapsed() < RUN_CAP,
            "no /{}/ after {} s of output",
            pattern.as_str(),
            RUN_CAP.as_secs()
        );
    }
}

fn conformance(host: Host, gic: u32, cpus: u32) -> anyhow::Result<()> {
    let (mut run, tag) = match host {
        Host::Blink => {
            require_images(&["conformance"])?;
            let vm = VmSpec::guest("domU0", "conformance").cpus(cpus);
            (start(&scenario(gic, [vm]))?, r"\[domU0\] ")
        }
        Host::Bare => (start_bare(gic, cpus)?, ""),
    };
    run.fail_on(re(&format!(r"^{tag}(FAIL |PANIC|exception: )")));

    let config = re(&format!(r"^{tag}conformance: gic=v(\d) cpus=(\d+)$"));
    let line = run.expect(&config, DEADLINE)?;
    let caps = config.captures(&line).expect("matched");
    check!(
        run,
        caps[1] == *gic.to_string() && caps[2] == *cpus.to_string(),
        "expected gic=v{gic} cpus={cpus}: {line}"
    );

    let summary = re(&format!(
        r"^{tag}conformance: (\d+) passed, (\d+) failed, (\d+) skipped$"
    ));
    let line = expect_while_printing(&mut run, &summary)?;
    let lines = run.lines();
    let mut passes = 0;
    for check in CHECKS {
        let want = if applies(check, gic, cpus) {
            passes += 1;
            "PASS"
        } else {
            "SKIP"
        };
        let result = re(&format!(r"^{tag}(PASS|FAIL|SKIP) {check}(:|$)"));
        let seen: Vec<&String> = lines.iter().filter(|l| result.is_match(l)).collect();
        check!(
            run,
            seen.len() == 1,
            "expected one result line for {check}, got {seen:?}"
        );
        let got = &result.captures(seen[0]).expect("matched")[1];
        check!(
            run,
            got == want,
            "{check}: expected {want} on GICv{gic} with {cpus} vCPU(s): {}",
            seen[0]
        );
    }
    let caps = summary.captures(&line).expect("matched");
    let (passed, failed, skipped): (usize, usize, usize) =
        (caps[1].parse()?, caps[2].parse()?, caps[3].parse()?);
    check!(
        run,
        (passed, failed, skipped) == (passes, 0, CHECKS.len() - passes),
        "summary {line:?}: expected {passes} passed, 0 failed, {} skipped",
        CHECKS.len() - passes
    );
    Ok(())
}

mod blink_1cpu {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Host::Blink, gic, 1)
    }
    tests::on_both_gics!(run);
}

mod blink_2cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Host::Blink, gic, 2)
    }
    tests::on_both_gics!(run);
}

mod blink_4cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Host::Blink, gic, 4)
    }
    tests::on_both_gics!(run);
}

mod bare_1cpu {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Host::Bare, gic, 1)
    }
    tests::on_both_gics!(run);
}

mod bare_2cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Host::Bare, gic, 2)
    }
    tests::on_both_gics!(run);
}

mod bare_4cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Host::Bare, gic, 4)
    }
    tests::on_both_gics!(run);
}
