//! `cargo xtask`: build the images, run the demo, run the tests.
//!
//! This file is the command line only: the options and one call per
//! subcommand into `cmd/`, where the work is.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use xtask::linux;

mod cmd;

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
    /// Write target/rpi4/sdcard/ for a real Raspberry Pi 4: the hypervisor,
    /// the scenario's guests in one modules.bin, the Pi's device tree with
    /// the VM nodes, config.txt (not tried on a board yet; the firmware
    /// files are to be added, see README.txt there).
    Sdcard {
        #[command(flatten)]
        scenario: ScenarioArgs,
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
        /// `reload` only: the machine, `virt` (QEMU virt), `rpi4` (QEMU
        /// raspi4b: 4 CPUs, guest RAM up to 512 MiB) or `all` (both, and
        /// their blackouts side by side).
        #[arg(long, default_value = "virt", value_parser = ["virt", "rpi4", "all"])]
        board: String,
    },
}

#[derive(Args)]
struct ScenarioArgs {
    /// Board: `qemu-virt` (QEMU `virt`) or `rpi4` (QEMU `raspi4b`: GICv2,
    /// 4 CPUs, 2 GiB fixed, so --gic, --smp, --cpu and --mem are ignored;
    /// its device tree is fetched from Debian's arm64 kernel package).
    #[arg(long, default_value = "qemu-virt", value_parser = ["qemu-virt", "rpi4"])]
    board: String,
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
    /// Place the "next" build (target/images/hypervisor-next.slot, on rpi4
    /// hypervisor-next-rpi4.slot) in image slot 1, so that the shell's
    /// `upgrade` can reload into it.
    #[arg(long)]
    next_image: bool,
    /// Warm-reload the hypervisor every this many milliseconds (at least
    /// 500; sets /chosen/blink,rejuvenate-interval-ms).
    #[arg(long, value_name = "MS")]
    reload_every: Option<u32>,
    /// Give `virt` a second serial port, the maintenance link's UART, as a
    /// Unix socket QEMU listens on: `blinkctl -d unix:PATH status`.
    #[arg(long, value_name = "PATH")]
    maint_socket: Option<PathBuf>,
    /// The heartbeat guests' full report, two long lines a second (what the
    /// tests parse), instead of `heartbeat.report=quiet`: a short line every
    /// 10 s and one for any gap over 50 ms, so the Linux shell stays readable.
    #[arg(long)]
    verbose_guests: bool,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Build => cmd::build::run(),
        Cmd::Run(args) => cmd::run::run(args),
        Cmd::Test { host_only } => cmd::test::run(host_only),
        Cmd::Dtb { scenario, out } => cmd::dtb::run(scenario, out),
        Cmd::Linux { refresh } => cmd::linux::run(refresh),
        Cmd::Sdcard { scenario } => cmd::sdcard::run(scenario),
        Cmd::Bench { what, quick, board } => cmd::bench::run(&what, quick, &board),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
