//! `cargo xtask`: build the images, run the demo, run the tests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use xtask::{images, linux, qemu, toolchain, Scenario, SerialMode, VmSpec};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "blink host tool: build, run, test"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the hypervisor and the test guests into target/images/.
    Build,
    /// Boot blink with some guests in QEMU, console on this terminal.
    Run(RunArgs),
    /// fmt/clippy gate, host unit tests, then build the images, then the QEMU
    /// integration tests.
    Test {
        /// Only the host unit tests (no aarch64 build, no QEMU).
        #[arg(long)]
        host_only: bool,
    },
    /// Write the patched device tree of a scenario and print its QEMU command
    /// (debugging aid; inspect the result with `dtc -I dtb`).
    Dtb {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Where to write the device tree.
        #[arg(long, default_value = "target/xtask/blink.dtb")]
        out: PathBuf,
    },
    /// Fetch Debian's arm64 kernel and busybox (once, into target/linux/) and
    /// build the initramfs; prints the kernel and initramfs paths.
    Linux {
        /// Fetch the packages again even if cached (picks up new versions).
        #[arg(long)]
        refresh: bool,
    },
    /// Measurements, printed as a table and plotted under target/bench/:
    /// `exits` (cost of an HVC, an emulated MMIO access, a virtual interrupt),
    /// `reload` (warm-reload blackout vs cold reboot, guest RAM 64 MiB .. 2 GiB),
    /// `linux` (Linux's time to /init bare on QEMU and under blink; exits/s by kind).
    Bench {
        #[arg(value_parser = ["exits", "reload", "linux"])]
        what: String,
        /// `reload` only: 1 CPU, 64 MiB and 2 GiB, icount and wall-clock (a
        /// few minutes instead of the full set; no plot).
        #[arg(long)]
        quick: bool,
    },
}

#[derive(Args)]
struct ScenarioArgs {
    /// GIC version of the machine.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=3))]
    gic: u32,
    /// Physical CPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    smp: u32,
    /// QEMU CPU model.
    #[arg(long, default_value = "cortex-a72")]
    cpu: String,
    /// Machine RAM in MiB.
    #[arg(long, default_value_t = 1024)]
    mem: u64,
    /// Guests, one VM each (domU0, domU1, ...): `linux` (Debian kernel +
    /// busybox initramfs, see `cargo xtask linux`), names from guests/src/bin
    /// (the `smp` guest gets 4 vCPUs, others 1) or paths to raw images.
    #[arg(long, value_delimiter = ',', default_value = "linux,heartbeat")]
    guests: Vec<String>,
    /// vCPUs of each `linux` guest.
    #[arg(long, default_value_t = linux::DEFAULT_CPUS, value_parser = clap::value_parser!(u32).range(1..=8))]
    linux_cpus: u32,
    /// RAM of each `linux` guest in MiB.
    #[arg(long, default_value_t = linux::DEFAULT_MEM_MIB)]
    linux_mem: u64,
    /// Workload of the `linux` guests' /init instead of the shell:
    /// checksum, poweroff, reboot or panic (`blink.test=<name>`).
    #[arg(long)]
    linux_test: Option<String>,
    /// Extra kernel command line options for the `linux` guests (e.g. "loglevel=8").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    linux_append: String,
    /// Deterministic time: `-icount shift=0`.
    #[arg(long)]
    icount: bool,
    /// Raw image to boot instead of target/images/hypervisor.bin.
    #[arg(long)]
    hv: Option<PathBuf>,
    /// Place the "next" build (target/images/hypervisor-next.slot) in image
    /// slot 1, so that the shell's `upgrade` can reload into it.
    #[arg(long)]
    next_image: bool,
    /// Warm-reload the hypervisor every this many milliseconds (at least
    /// 500; sets /chosen/blink,rejuvenate-interval-ms).
    #[arg(long, value_name = "MS")]
    reload_every: Option<u32>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// Do not build the images first.
    #[arg(long)]
    no_build: bool,
    /// Print the QEMU command and exit.
    #[arg(long)]
    dry_run: bool,
}

impl ScenarioArgs {
    fn scenario(&self) -> Scenario {
        let mut s = Scenario::new(self.gic).smp(self.smp);
        s.cpu = self.cpu.clone();
        s.mem_mib = self.mem;
        s.icount = self.icount;
        if let Some(hv) = &self.hv {
            s.hypervisor = hv.clone();
        }
        if self.next_image {
            s.next_image = Some(xtask::images::next_image());
        }
        s.reload_every_ms = self.reload_every;
        for (i, guest) in self.guests.iter().enumerate() {
            let name = format!("domU{i}");
            let is_path = guest.contains('/') || guest.ends_with(".bin");
            let vm = if guest == LINUX {
                let mut vm = VmSpec::linux(name)
                    .cpus(self.linux_cpus)
                    .mem_mib(self.linux_mem);
                if let Some(t) = &self.linux_test {
                    vm = vm.linux_test(t);
                }
                vm.append_bootargs(&self.linux_append)
            } else if is_path {
                VmSpec::new(name, guest)
            } else {
                VmSpec::guest(name, guest)
            };
            s = s.vm(if guest == "smp" { vm.cpus(4) } else { vm });
        }
        s
    }

    /// Guest names that refer to built test-guest images (not paths, not Linux).
    fn named_guests(&self) -> impl Iterator<Item = &str> {
        self.guests
            .iter()
            .filter(|g| !(g.contains('/') || g.ends_with(".bin") || *g == LINUX))
            .map(String::as_str)
    }

    fn wants_linux(&self) -> bool {
        self.guests.iter().any(|g| g == LINUX)
    }
}

/// The `--guests` name of the Linux guest.
const LINUX: &str = "linux";

/// Fetches/builds the Linux images if the scenario has a Linux guest.
fn prepare_linux(args: &ScenarioArgs) -> Result<()> {
    if args.wants_linux() {
        linux::prepare(false).context("preparing the Linux guest (`cargo xtask linux`)")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Build => build(),
        Cmd::Run(args) => run(args),
        Cmd::Test { host_only } => test(host_only),
        Cmd::Dtb { scenario, out } => dtb(scenario, out),
        Cmd::Linux { refresh } => linux_images(refresh),
        Cmd::Bench { what, quick } => bench(&what, quick),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(what: &str, quick: bool) -> Result<ExitCode> {
    if quick && what != "reload" {
        bail!("--quick applies to `bench reload` only");
    }
    qemu::ensure()?;
    toolchain::ensure()?;
    images::build()?;
    match what {
        "exits" => xtask::bench::exits()?,
        "reload" => xtask::bench::reload(quick)?,
        "linux" => xtask::bench_linux::run()?,
        other => bail!("unknown benchmark {other}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn build() -> Result<ExitCode> {
    toolchain::ensure()?;
    let built = images::build()?;
    eprintln!(
        "xtask: built {} and {} guest image(s) in {}",
        built.hypervisor.display(),
        built.guests.len(),
        images::images_dir().display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check_guests_exist(args: &ScenarioArgs) -> Result<()> {
    for guest in args.named_guests() {
        if !images::guest_image(guest).is_file() {
            let known = images::guest_names()?;
            bail!(
                "no image for guest {guest:?} ({} missing; known guests: {})",
                images::guest_image(guest).display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<ExitCode> {
    // A custom --hv image means "try this binary", so nothing to build.
    if !args.no_build && args.scenario.hv.is_none() {
        toolchain::ensure()?;
        images::build()?;
    }
    qemu::ensure()?;
    check_guests_exist(&args.scenario)?;
    prepare_linux(&args.scenario)?;
    // Held while QEMU runs, so that no test QEMU starts beside the demo.
    let lock = qemu::QemuLock::acquire()?;
    let command = args
        .scenario
        .scenario()
        .prepare_locked(SerialMode::Interactive, &lock)?;
    if args.dry_run {
        println!("{command}");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("xtask: {command}");
    eprintln!(
        "xtask: console on this terminal. Ctrl-A x quits QEMU, Ctrl-A c toggles the QEMU monitor; \
         Ctrl-] then 0-9 / h / ? switches the blink console focus."
    );
    let status = command.command().status().context("running QEMU")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn dtb(args: ScenarioArgs, out: PathBuf) -> Result<ExitCode> {
    check_guests_exist(&args)?;
    prepare_linux(&args)?;
    let command = args.scenario().prepare(SerialMode::Pipe)?;
    let out = if out.is_absolute() {
        out
    } else {
        xtask::workspace_root().join(out)
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(&command.dtb, &out).with_context(|| format!("writing {}", out.display()))?;
    for m in &command.modules {
        eprintln!(
            "xtask: {:?} {} at 0x{:x}, {} bytes",
            m.kind,
            m.path.display(),
            m.addr,
            m.size
        );
    }
    eprintln!("xtask: wrote {}", out.display());
    println!("{command}");
    Ok(ExitCode::SUCCESS)
}

fn linux_images(refresh: bool) -> Result<ExitCode> {
    let images = linux::prepare(refresh)?;
    eprintln!(
        "xtask: linux: {} / {}",
        images.kernel_package, images.busybox_package
    );
    println!("kernel    {}", images.kernel.display());
    println!("initramfs {}", images.initramfs.display());
    println!("bootargs  {}", linux::BASE_BOOTARGS);
    Ok(ExitCode::SUCCESS)
}

fn phase(n: u32, title: &str) {
    eprintln!("\n==================== [{n}/4] {title} ====================");
}

/// Runs `cargo <args>` in the workspace root; fails if it fails.
fn cargo_gate(args: &[&str]) -> Result<()> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = images::cargo()
        .args(args)
        .current_dir(xtask::workspace_root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Formatting and lints of every crate, each for the target it is built
/// for (the workspace's lint policy is in Cargo.toml).
fn gates() -> Result<()> {
    cargo_gate(&["fmt", "--all", "--check"])
        .context("formatting differs: run `cargo fmt --all`")?;
    cargo_gate(&[
        "clippy",
        "-p",
        "vmm",
        "-p",
        "platform",
        "-p",
        "xtask",
        "-p",
        "tests",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo_gate(&[
        "clippy",
        "-p",
        "hypervisor",
        "--target",
        images::HV_TARGET,
        "--",
        "-D",
        "warnings",
    ])?;
    cargo_gate(&[
        "clippy",
        "-p",
        "guests",
        "--target",
        images::GUEST_TARGET,
        "--bins",
        "--",
        "-D",
        "warnings",
    ])?;
    Ok(())
}

/// Passed/failed counts summed over `test result:` lines.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

/// Runs `cargo <args>` in the workspace root, forwarding its stdout line by
/// line while counting the libtest results. Fails if cargo fails.
fn cargo_test(args: &[&str], env: &[(&str, &std::ffi::OsStr)], tally: &mut Tally) -> Result<()> {
    use std::io::{BufRead, BufReader, Write};

    eprintln!("xtask: cargo {}", args.join(" "));
    let result_re = regex::Regex::new(r"test result: \w+\. (\d+) passed; (\d+) failed")?;
    let mut cmd = images::cargo();
    cmd.args(args)
        .current_dir(xtask::workspace_root())
        .stdout(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().context("running cargo")?;
    let stdout = child.stdout.take().context("cargo stdout not captured")?;
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        if let Some(c) = result_re.captures(&line) {
            tally.passed += c[1].parse::<u64>().unwrap_or(0);
            tally.failed += c[2].parse::<u64>().unwrap_or(0);
        }
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn test(host_only: bool) -> Result<ExitCode> {
    let mut tally = Tally::default();
    let result = test_phases(host_only, &mut tally);
    // A plain closing line, so that a reader of the log (or CI) sees the
    // overall count rather than the last test binary's.
    println!("xtask: {} passed, {} failed", tally.passed, tally.failed);
    result
}

fn test_phases(host_only: bool, tally: &mut Tally) -> Result<ExitCode> {
    phase(
        1,
        "formatting and lints (cargo fmt --check, cargo clippy -D warnings)",
    );
    toolchain::ensure().context("phase 1: the Rust toolchain lacks targets or components")?;
    gates().context("phase 1 (fmt/clippy gate) failed")?;

    phase(2, "host unit tests");
    cargo_test(
        &["test", "-p", "vmm", "-p", "platform", "-p", "xtask"],
        &[],
        tally,
    )
    .and_then(|()| {
        // The QEMU test crate's own helpers (no QEMU needed).
        cargo_test(&["test", "-p", "tests", "--lib"], &[], tally)
    })
    .context("phase 2 (host unit tests) failed")?;
    if host_only {
        eprintln!("xtask: --host-only: skipping the image build and the QEMU tests");
        return Ok(ExitCode::SUCCESS);
    }

    phase(3, "build the aarch64 images");
    images::build().context("phase 3 (image build) failed")?;
    // The Linux tests need Debian's kernel; fetched once, then cached.
    let lx = linux::prepare(false).context(
        "phase 3: the Linux guest images (Debian kernel + busybox initramfs) could not be prepared",
    )?;
    eprintln!(
        "xtask: linux: {} / {}",
        lx.kernel_package, lx.busybox_package
    );

    phase(4, "QEMU integration tests (one at a time)");
    let q = qemu::ensure().context("phase 4 (QEMU tests) failed")?;
    eprintln!(
        "xtask: using {} (QEMU {}.{}.{})",
        q.path.display(),
        q.version.0,
        q.version.1,
        q.version.2
    );
    // The tests find QEMU the same way; pin the one checked here.
    cargo_test(
        &[
            "test",
            "-p",
            "tests",
            "--no-fail-fast",
            "--",
            "--test-threads=1",
        ],
        &[("BLINK_QEMU", q.path.as_os_str())],
        tally,
    )
    .context("phase 4 (QEMU tests) failed")?;
    Ok(ExitCode::SUCCESS)
}
