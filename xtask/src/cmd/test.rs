//! `cargo xtask test`: four phases, each failing the run if it fails: the
//! fmt/clippy gate, the host unit tests, the image build, the QEMU
//! integration tests; a closing line with the overall counts.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use xtask::{images, linux, qemu, toolchain};

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
        "-p",
        "blinkctl",
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

pub fn run(host_only: bool) -> Result<ExitCode> {
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
        &[
            "test", "-p", "vmm", "-p", "platform", "-p", "xtask", "-p", "blinkctl",
        ],
        &[],
        tally,
    )
    .and_then(|()| {
        // The QEMU test crate's own helpers (no QEMU needed).
        cargo_test(&["test", "-p", "tests", "--lib"], &[], tally)
    })
    .and_then(|()| {
        // The guests' portable part (their device tree reader).
        cargo_test(&["test", "-p", "guests", "--lib"], &[], tally)
    })
    .context("phase 2 (host unit tests) failed")?;
    if host_only {
        eprintln!("xtask: --host-only: skipping the image build and the QEMU tests");
        return Ok(ExitCode::SUCCESS);
    }

    phase(3, "build the aarch64 images");
    images::build().context("phase 3 (image build) failed")?;
    // The maintenance-link tests run the host tool as a program.
    cargo_gate(&["build", "-p", "blinkctl"]).context("phase 3: building blinkctl failed")?;
    // The Linux tests need Debian's kernel; fetched once, then cached.
    let lx = linux::prepare(false).context(
        "phase 3: the Linux guest images (Debian kernel + busybox initramfs) could not be prepared",
    )?;
    eprintln!(
        "xtask: linux: {} / {}",
        lx.kernel_package, lx.busybox_package
    );
    // The raspi4b tests boot with the Pi 4's device tree (Debian's).
    let pi_dtb = xtask::rpi4_dtb::prepare(false)
        .context("phase 3: the Raspberry Pi 4 device tree could not be fetched")?;
    eprintln!("xtask: rpi4: {}", pi_dtb.display());

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
