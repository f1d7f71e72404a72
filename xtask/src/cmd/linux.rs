//! `cargo xtask linux`: Debian's arm64 kernel and busybox fetched (once,
//! into target/linux/), the initramfs built; prints their paths.

use std::process::ExitCode;

use anyhow::Result;

use xtask::linux;

pub fn run(refresh: bool) -> Result<ExitCode> {
    let images = linux::prepare(refresh)?;
    eprintln!(
        "xtask: linux: {} / {}",
        images.kernel_package, images.busybox_package
    );
    println!("kernel    {}", images.kernel.display());
    println!("initramfs {}", images.initramfs.display());
    println!("bootargs  {}", linux::BASE_BOOTARGS);
    Ok(ExitCode::SUCCESS)
}
