//! `cargo xtask maint ARGS...`: `blinkctl ARGS...`, unchanged and in the
//! current directory, so the maintenance link is one command away from a
//! `cargo xtask run --maint-socket PATH` without installing blinkctl.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Result;

use super::blinkctl;

pub fn run(args: Vec<OsString>) -> Result<ExitCode> {
    blinkctl::run(args)
}
