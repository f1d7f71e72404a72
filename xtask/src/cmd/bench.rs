//! `cargo xtask bench <what>`: QEMU, the toolchain and the images made
//! ready, then the benchmark run (the benchmarks are in the library's
//! `bench` module).

use std::process::ExitCode;

use anyhow::{bail, Result};

use xtask::{images, qemu, toolchain};

pub fn run(what: &str, quick: bool, board: &str) -> Result<ExitCode> {
    if quick && what != "reload" {
        bail!("--quick applies to `bench reload` only");
    }
    if board != "virt" && what != "reload" {
        bail!("--board applies to `bench reload` only");
    }
    let machines = xtask::bench::reload::boards(board)?;
    qemu::ensure()?;
    toolchain::ensure()?;
    images::build()?;
    match what {
        "exits" => xtask::bench::exits()?,
        "reload" => xtask::bench::reload(quick, &machines)?,
        "linux" => xtask::bench::linux::run()?,
        "maint" => xtask::bench::maint(&super::blinkctl::build()?)?,
        other => bail!("unknown benchmark {other}"),
    }
    Ok(ExitCode::SUCCESS)
}
