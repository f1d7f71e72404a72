//! `cargo xtask`: build the images, run the demo, run the tests.
//!
//! This file is the command line only: the options and one call per
//! subcommand into `cmd/`, where the work is.

use std::ffi::OsString;
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
    /// `linux` (Linux's time to /init bare on QEMU and under blink; exits/s by kind),
    /// `maint` (uploading the hypervisor image at 115200 baud: wire bytes,
    /// retransmissions at 1% loss, device time; the `upgrade` after it).
    Bench {
        #[arg(value_parser = ["exits", "reload", "linux", "maint"])]
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
    /// `blinkctl keygen`: an ed25519 key pair, BASE.secret (mode 0600) and
    /// BASE.pub (BASE relative to the workspace root).
    Keygen {
        /// e.g. `keys/development`, the key `cargo xtask sign` defaults to.
        #[arg(long, value_name = "BASE")]
        out: PathBuf,
        /// A production key (default: a development key, marked as such in
        /// every image it signs).
        #[arg(long)]
        production: bool,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// `blinkctl sign`: a signed slot from a raw hypervisor image, for
    /// `cargo xtask maint upload` (relative paths are from the workspace root).
    Sign(SignArgs),
    /// `blinkctl ARGS...`, built first and run with the arguments unchanged,
    /// e.g. `cargo xtask maint --device unix:/tmp/m.sock status`; exits
    /// with blinkctl's code (`cargo xtask maint --help` is blinkctl's help).
    #[command(disable_help_flag = true)]
    Maint {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "BLINKCTL_ARGS"
        )]
        args: Vec<OsString>,
    },
}

/// `blinkctl sign`'s options, with defaults for this workspace.
#[derive(Args)]
struct SignArgs {
    /// A secret key file from `keygen` (default: keys/development.secret).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The raw image (default: target/images/hypervisor.bin, from `cargo xtask build`).
    #[arg(long)]
    image: Option<PathBuf>,
    /// MAJOR.MINOR.PATCH
    #[arg(long)]
    version: String,
    /// Downgrade protection: a device refuses images below its own.
    #[arg(long)]
    security_counter: u32,
    /// A board the image supports (1 to 4; the first is written in the
    /// slot header too).
    #[arg(long = "board", default_value = "qemu-virt")]
    boards: Vec<String>,
    /// The version text `images` shows (default: "blink VERSION").
    #[arg(long)]
    label: Option<String>,
    /// Where to write the signed slot.
    #[arg(long)]
    out: PathBuf,
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
        Cmd::Keygen {
            out,
            production,
            force,
        } => cmd::keygen::run(&out, production, force),
        Cmd::Sign(args) => cmd::sign::run(args),
        Cmd::Maint { args } => cmd::maint::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn maint_passes_everything_through() {
        let argv = [
            "cargo xtask",
            "maint",
            "--device",
            "unix:/tmp/m.sock",
            "--help",
            "status",
            "--json",
        ];
        let Cmd::Maint { args } = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not maint");
        };
        assert_eq!(args, &argv[2..]);
    }

    #[test]
    fn sign_defaults_to_qemu_virt() {
        let argv = [
            "cargo xtask",
            "sign",
            "--version",
            "1.2.3",
            "--security-counter",
            "4",
            "--out",
            "x.slot",
        ];
        let Cmd::Sign(a) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not sign");
        };
        assert_eq!(a.boards, ["qemu-virt"]);
        assert!(a.key.is_none() && a.image.is_none());
    }
}
