//! `target/rpi4/sdcard/`: the files a real Raspberry Pi 4 boots a scenario
//! from, the same hypervisor image, guest images and device tree (with the
//! VM nodes) that the QEMU `raspi4b` runs use. Written by `cargo xtask
//! sdcard`; **not tried on a board yet** (docs/boards/rpi4.md says what is
//! only on paper).
//!
//! The firmware loads one kernel and one "initramfs" file, so the guest
//! modules are laid out in a single `modules.bin` loaded at the module
//! base (0x0900_0000), each at the address its VM node names, exactly as
//! xtask places them for QEMU. The tree is Debian's `bcm2711-rpi-4-b.dtb`
//! with the `/chosen/domU*` nodes added (`device_tree=blink.dtb`); the
//! firmware fills in `/memory` and applies `dtoverlay=disable-bt`. The
//! firmware itself (`start4.elf`, `fixup4.dat`, `overlays/disable-bt.dtbo`)
//! is not ours to ship: `README.txt` on the card says where it comes from.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::dtb::Module;
use crate::machine::{raspi4b, Machine};
use crate::Scenario;

/// `target/rpi4/sdcard/`.
pub fn sdcard_dir() -> PathBuf {
    crate::target_dir().join("rpi4/sdcard")
}

/// The card's `config.txt`.
pub fn config_txt(modules: bool) -> String {
    let mut s = String::from(
        "# Written by `cargo xtask sdcard` (docs/boards/rpi4.md).\n\
         arm_64bit=1\n\
         # UART0 (PL011, 0xfe201000) on GPIO 14/15: the hypervisor's console.\n\
         enable_uart=1\n\
         dtoverlay=disable-bt\n\
         # The GIC-400 instead of the legacy interrupt controller.\n\
         enable_gic=1\n\
         kernel=hypervisor.bin\n",
    );
    s.push_str(&format!(
        "# The hypervisor recognises the board by this address.\nkernel_address={:#x}\n",
        raspi4b::LOAD_ADDRESS
    ));
    s.push_str("# Debian's tree plus the VM nodes (/chosen/domU*).\ndevice_tree=blink.dtb\n");
    if modules {
        s.push_str(&format!(
            "# The guests' images, each where its VM node says.\ninitramfs modules.bin {:#x}\n",
            raspi4b::MODULE_BASE
        ));
    }
    s
}

/// The modules as one blob starting at `base`: each at `addr - base`, the
/// gaps zero.
pub fn modules_blob(modules: &[Module], base: u64) -> Result<Vec<u8>> {
    let mut blob = Vec::new();
    for m in modules {
        let Some(off) = m.addr.checked_sub(base) else {
            bail!(
                "module {} at {:#x} below {base:#x}",
                m.path.display(),
                m.addr
            );
        };
        let bytes =
            std::fs::read(&m.path).with_context(|| format!("reading {}", m.path.display()))?;
        let (off, end) = (off as usize, off as usize + bytes.len());
        if blob.len() > off {
            bail!("module {} overlaps the one before it", m.path.display());
        }
        blob.resize(end, 0);
        blob[off..end].copy_from_slice(&bytes);
    }
    Ok(blob)
}

const README: &str = "\
This directory is what a Raspberry Pi 4 boots blink from (FAT partition).
Add the firmware, which blink does not ship: start4.elf, fixup4.dat and
overlays/disable-bt.dtbo from the Raspberry Pi firmware (Debian's
raspi-firmware package, or https://github.com/raspberrypi/firmware boot/).
Console: 3.3 V serial on GPIO14 (TXD, pin 8), GPIO15 (RXD, pin 10), GND
(pin 6), 115200 8N1, no flow control. Not tried on a board yet:
docs/boards/rpi4.md.
";

/// Writes the card's files for `scenario` (a `raspi4b` one) into `dir`
/// (emptied first); returns the files written.
pub fn write(scenario: &Scenario, dir: &Path) -> Result<Vec<PathBuf>> {
    if scenario.machine != Machine::Raspi4b {
        bail!("an SD card is for the rpi4 board (--board rpi4)");
    }
    let modules: Vec<Vec<Module>> = scenario.place_modules()?;
    let base = std::fs::read(crate::rpi4_dtb::require()?)?;
    let mut chosen = Vec::new();
    if let Some(ms) = scenario.reload_every_ms {
        chosen.push((
            "blink,rejuvenate-interval-ms".to_string(),
            ms.to_be_bytes().to_vec(),
        ));
    }
    let tree = crate::dtb::patch_dtb_with(&base, &scenario.vms, &modules, &chosen)
        .context("adding the VM nodes to the Pi's device tree")?;
    let flat: Vec<Module> = modules.into_iter().flatten().collect();
    let blob = modules_blob(&flat, raspi4b::MODULE_BASE)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
        Ok(())
    };
    put("hypervisor.bin", &std::fs::read(&scenario.hypervisor)?)?;
    put("blink.dtb", &tree)?;
    if !blob.is_empty() {
        put("modules.bin", &blob)?;
    }
    put("config.txt", config_txt(!blob.is_empty()).as_bytes())?;
    put("README.txt", README.as_bytes())?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtb::ModuleKind;
    use crate::testutil::TempDir;

    #[test]
    fn config_names_the_load_address_and_modules() {
        let c = config_txt(true);
        for line in [
            "arm_64bit=1",
            "enable_gic=1",
            "kernel=hypervisor.bin",
            "kernel_address=0x80000",
            "device_tree=blink.dtb",
            "initramfs modules.bin 0x9000000",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} missing:\n{c}");
        }
        assert!(!config_txt(false).contains("initramfs"));
    }

    #[test]
    fn modules_land_at_their_addresses() {
        let dir = TempDir::new("sdcard-modules");
        let a = dir.write("a", &[1, 2, 3]);
        let b = dir.write("b", &[4; 5]);
        let m = |path: &PathBuf, addr| Module {
            kind: ModuleKind::Kernel,
            path: path.clone(),
            addr,
            size: 0,
        };
        let blob = modules_blob(&[m(&a, 0x1000), m(&b, 0x1000 + 16)], 0x1000).unwrap();
        assert_eq!(blob.len(), 21);
        assert_eq!(&blob[..3], &[1, 2, 3]);
        assert!(blob[3..16].iter().all(|&x| x == 0));
        assert_eq!(&blob[16..], &[4; 5]);
        assert!(modules_blob(&[m(&a, 0x800)], 0x1000).is_err());
        assert!(modules_blob(&[m(&b, 0x1000), m(&a, 0x1002)], 0x1000).is_err());
    }
}
