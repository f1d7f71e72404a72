//! `cargo xtask dtb`: a scenario's patched device tree written to a file,
//! its modules and QEMU command printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use xtask::SerialMode;

use super::{check_guests_exist, prepare_linux};
use crate::ScenarioArgs;

pub fn run(args: ScenarioArgs, out: PathBuf) -> Result<ExitCode> {
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
