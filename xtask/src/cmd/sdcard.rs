//! `cargo xtask sdcard`: the Raspberry Pi 4 SD card's files for a scenario
//! (always on the rpi4 board), from the images `cargo xtask build` made.

use std::process::ExitCode;

use anyhow::Result;

use xtask::sdcard;

use super::{check_guests_exist, prepare_linux};
use crate::ScenarioArgs;

pub fn run(mut args: ScenarioArgs) -> Result<ExitCode> {
    args.board = "rpi4".to_string();
    xtask::images::require_hypervisor_image()?;
    check_guests_exist(&args)?;
    prepare_linux(&args)?;
    let dir = sdcard::sdcard_dir();
    for f in sdcard::write(&args.scenario(), &dir)? {
        let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        println!("{} ({size} bytes)", f.display());
    }
    eprintln!(
        "xtask: copy {} to the card's FAT partition, with the firmware files README.txt names",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
