//! `cargo xtask build`: the hypervisor and the test guests, as raw images
//! in target/images/.

use std::process::ExitCode;

use anyhow::Result;

use xtask::{images, toolchain};

pub fn run() -> Result<ExitCode> {
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
