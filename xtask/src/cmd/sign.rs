//! `cargo xtask sign`: `blinkctl sign` with the workspace's defaults: the
//! image `cargo xtask build` writes, the development key in keys/ and
//! the QEMU `virt` board, so signing a fresh build needs only a version,
//! a security counter and an output file.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{bail, Result};

use xtask::images;

use super::blinkctl;
use crate::SignArgs;

/// The key used when `--key` is not given (relative to the workspace root).
const DEVELOPMENT_KEY: &str = "keys/development.secret";

pub fn run(a: SignArgs) -> Result<ExitCode> {
    let key = match &a.key {
        Some(k) => blinkctl::in_workspace(k),
        None => {
            let k = xtask::workspace_root().join(DEVELOPMENT_KEY);
            if !k.is_file() {
                bail!(
                    "no --key and no development key at {}: make one with \
                     `cargo xtask keygen --out keys/development`",
                    k.display()
                );
            }
            k
        }
    };
    let image = match &a.image {
        Some(i) => blinkctl::in_workspace(i),
        // The same error `cargo xtask run` gives when it was not built.
        None => images::require_hypervisor_image()?,
    };
    let mut args: Vec<OsString> = vec!["sign".into(), "--key".into(), key.into()];
    args.extend(["--image".into(), OsString::from(image)]);
    args.extend(["--version".into(), OsString::from(a.version)]);
    args.extend([
        "--security-counter".into(),
        a.security_counter.to_string().into(),
    ]);
    for b in a.boards {
        args.extend(["--board".into(), OsString::from(b)]);
    }
    if let Some(label) = a.label {
        args.extend(["--label".into(), OsString::from(label)]);
    }
    args.extend([
        "--out".into(),
        OsString::from(blinkctl::in_workspace(&a.out)),
    ]);
    blinkctl::run(args)
}
