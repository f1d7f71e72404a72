//! `cargo xtask keygen`: `blinkctl keygen`, an ed25519 key pair
//! (BASE.secret, BASE.pub), with BASE relative to the workspace root so
//! that `--out keys/development` makes the key `cargo xtask sign` uses.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::blinkctl;

pub fn run(out: &Path, production: bool, force: bool) -> Result<ExitCode> {
    let mut args: Vec<OsString> = vec!["keygen".into(), "--out".into()];
    args.push(blinkctl::in_workspace(out).into());
    if production {
        args.push("--production".into());
    }
    if force {
        args.push("--force".into());
    }
    blinkctl::run(args)
}
