//! `cargo xtask linux`: Debian's arm64 kernel and busybox fetched (once,
//! into target/linux/), the initramfs built, and the Raspberry Pi 4's
//! device tree from Debian's generic arm64 kernel; prints their paths.

use std::process::ExitCode;

use anyhow::Result;

use xtask::{linux, rpi4_dtb};

pub fn run(refresh: bool) -> Result<ExitCode> {
    let images = linux::prepare(refresh)?;
    eprintln!(
        "xtask: linux: {} / {}",
        images.kernel_package, images.busybox_package
    );
    println!("kernel    {}", images.kernel.display());
    println!("initramfs {}", images.initramfs.display());
    println!("bootargs  {}", linux::BASE_BOOTARGS);
    println!("rpi4 dtb  {}", rpi4_dtb::prepare(refresh)?.display());
    Ok(ExitCode::SUCCESS)
}
