//! `cargo xtask run`: blink with the chosen guests in QEMU, the console on
//! this terminal.

use std::process::ExitCode;

use anyhow::{Context, Result};

use xtask::{images, qemu, toolchain, SerialMode};

use super::{check_guests_exist, prepare_linux};
use crate::RunArgs;

pub fn run(args: RunArgs) -> Result<ExitCode> {
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
