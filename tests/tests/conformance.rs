//! Architectural fidelity: the `conformance` guest's checks (see
//! guests/src/bin/conformance/main.rs) under blink and bare on QEMU `virt`
//! (no hypervisor: the hardware's answer), with 1 and 2 vCPUs on `-cpu
//! max` and 4 on `cortex-a53`, on GICv2 and GICv3. Every check the
//! configuration calls for must print `PASS`, the others `SKIP`; one
//! `FAIL` line fails the test at once, and the summary must say 0 failed.
//! With 1 vCPU the second PL011 is there for the level-SPI check (passed
//! through under blink). Under blink two VMs also share one CPU, a holder
//! and a probe of debug and PMU state.
//!
//! Under blink the machine has 2 CPUs and the VM's vCPUs are pinned
//! round-robin: with 2 vCPUs the ping-pong runs between two physical CPUs,
//! with 4 each physical CPU also holds an idle vCPU.

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
const CHECKS: [&str; 17] = [
    "gicd_pidr2_archrev",
    "gicd_typer_cpus",
    "gicv2_itargetsr_uniprocessor",
    "gicv2_itargetsr_spi_targets",
    "gicv2_itargetsr_private",
    "ipi_ping_pong",
    "gicv2_sgi_source",
    "sgi_pending_merge",
    "timer_level_resampled",
    "timers_rate",
    "level_spi_after_eoi",
    "id_registers_usable",
    "instruction_abort",
    "debug_registers_kept",
    "debug_state_isolated",
    "no_unexpected_interrupts",
    // Not a check: the summary follows it.
    "",
];

/// The debug role a VM plays (its `bootargs`, see guests' debug.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Alone,
    Holder,
    Probe,
}

/// One run of the guest: where, on which GIC and CPU, with what.
#[derive(Clone, Copy, Debug)]
struct Config {
    host: Host,
    gic: u32,
    cpus: u32,
    cpu: &'static str,
    /// The second PL011 is there (passed through under blink).
    uart: bool,
    role: Role,
}

impl Config {
    fn new(host: Host, gic: u32, cpus: u32, cpu: &'static str) -> Self {
        Config {
            host,
            gic,
            cpus,
            cpu,
            uart: cpus == 1,
            role: Role::Alone,
        }
    }

    /// Whether `check` applies (PASS expected) or not (SKIP).
    fn applies(&self, check: &str) -> bool {
        let (v2, cpus) = (self.gic == 2, self.cpus);
        match check {
            "gicd_typer_cpus" => v2,
            "gicv2_itargetsr_uniprocessor" => v2 && cpus == 1,
            "gicv2_itargetsr_spi_targets" | "gicv2_itargetsr_private" | "gicv2_sgi_source" => {
                v2 && cpus > 1
            }
            "ipi_ping_pong" => cpus > 1,
            "level_spi_after_eoi" => self.uart,
            "debug_registers_kept" => self.role != Role::Probe,
            "debug_state_isolated" => self.role == Role::Probe,
            _ => true,
        }
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
fn start_bare(c: &Config) -> anyhow::Result<QemuRun> {
    let image = xtask::images::require_guest_image("conformance")?;
    let image = image
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", image.display()))?
        .to_string();
    let args = [
        "-M",
        &format!("virt,gic-version={}", c.gic),
        "-cpu",
        c.cpu,
        "-smp",
        &c.cpus.to_string(),
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
    let mut args = args;
    if c.uart {
        // The second PL011 exists with a second serial port.
        args.extend(["-serial", "null"].map(String::from));
    }
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

/// The second PL011 under blink: passed through to the VM, its serial
/// port discarding what is sent.
fn pass_uart(vm: VmSpec, s: &mut Scenario) -> VmSpec {
    s.extra_args.extend(["-serial", "null"].map(String::from));
    vm.prop("blink,passthrough", b"/pl011@9040000\0".to_vec())
}

fn conformance(c: Config) -> anyhow::Result<()> {
    let (mut run, tag) = match c.host {
        Host::Blink => {
            require_images(&["conformance"])?;
            let mut s = scenario(c.gic, []);
            s.cpu = c.cpu.into();
            let mut vm = VmSpec::guest("domU0", "conformance").cpus(c.cpus);
            if c.uart {
                vm = pass_uart(vm, &mut s);
            }
            s.vms.push(vm);
            (start(&s)?, r"\[domU0\] ")
        }
        Host::Bare => (start_bare(&c)?, ""),
    };
    expect_results(&mut run, tag, &c)
}

/// Waits for a guest's summary (lines tagged `tag`) and checks its result
/// lines against what `c` calls for.
fn expect_results(run: &mut QemuRun, tag: &str, c: &Config) -> anyhow::Result<()> {
    run.fail_on(re(&format!(r"^{tag}(FAIL |PANIC|exception: )")));
    let (gic, cpus) = (c.gic, c.cpus);
    // Looked for among all lines so far: with two VMs, one VM's lines
    // may come before the other's that were waited for first.
    let summary = re(&format!(
        r"^{tag}conformance: (\d+) passed, (\d+) failed, (\d+) skipped$"
    ));
    let line = expect_while_printing(run, &summary)?;
    let lines = run.lines();
    let config = re(&format!(r"^{tag}conformance: gic=v(\d) cpus=(\d+)$"));
    let found = lines.iter().find_map(|l| config.captures(l));
    check!(
        run,
        found
            .as_ref()
            .is_some_and(|caps| caps[1] == *gic.to_string() && caps[2] == *cpus.to_string()),
        "expected a line 'conformance: gic=v{gic} cpus={cpus}' before the summary"
    );
    let checks = &CHECKS[..CHECKS.len() - 1];
    let mut passes = 0;
    for check in checks {
        let want = if c.applies(check) {
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
            "{check}: expected {want} in {c:?}: {}",
            seen[0]
        );
    }
    let caps = summary.captures(&line).expect("matched");
    let (passed, failed, skipped): (usize, usize, usize) =
        (caps[1].parse()?, caps[2].parse()?, caps[3].parse()?);
    check!(
        run,
        (passed, failed, skipped) == (passes, 0, checks.len() - passes),
        "summary {line:?}: expected {passes} passed, 0 failed, {} skipped",
        checks.len() - passes
    );
    Ok(())
}

/// Two VMs on one CPU (`-smp 1`): the holder keeps breakpoints,
/// watchpoints (and PMU settings, if the PMU is given) armed, the probe
/// runs with debug exceptions enabled and must neither see nor hit them.
fn two_vms_one_cpu(gic: u32) -> anyhow::Result<()> {
    require_images(&["conformance"])?;
    let mut s = scenario(gic, []).smp(1);
    s.cpu = "max".into();
    for (name, role) in [("domU0", "holder"), ("domU1", "probe")] {
        s.vms
            .push(VmSpec::guest(name, "conformance").bootargs(format!("conformance.role={role}")));
    }
    let mut run = start(&s)?;
    let mut c = Config::new(Host::Blink, gic, 1, "max");
    c.uart = false;
    for (tag, role) in [(r"\[domU0\] ", Role::Holder), (r"\[domU1\] ", Role::Probe)] {
        c.role = role;
        expect_results(&mut run, tag, &c)?;
    }
    Ok(())
}

mod blink_two_vms_one_cpu {
    use super::two_vms_one_cpu;
    tests::on_both_gics!(two_vms_one_cpu);
}

mod blink_1cpu {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Config::new(super::Host::Blink, gic, 1, "max"))
    }
    tests::on_both_gics!(run);
}

mod blink_2cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Config::new(super::Host::Blink, gic, 2, "max"))
    }
    tests::on_both_gics!(run);
}

mod blink_4cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Config::new(super::Host::Blink, gic, 4, "cortex-a53"))
    }
    tests::on_both_gics!(run);
}

mod bare_1cpu {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Config::new(super::Host::Bare, gic, 1, "max"))
    }
    tests::on_both_gics!(run);
}

mod bare_2cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Config::new(super::Host::Bare, gic, 2, "max"))
    }
    tests::on_both_gics!(run);
}

mod bare_4cpus {
    fn run(gic: u32) -> tests::anyhow::Result<()> {
        super::conformance(super::Config::new(super::Host::Bare, gic, 4, "cortex-a53"))
    }
    tests::on_both_gics!(run);
}
