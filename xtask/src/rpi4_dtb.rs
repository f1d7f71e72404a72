//! The Raspberry Pi 4's device tree, `bcm2711-rpi-4-b.dtb`, from Debian's
//! (non-cloud) arm64 kernel package, which ships the Pi trees under
//! `usr/lib/linux-image-<abi>/broadcom/`. QEMU `raspi4b` makes no tree of
//! its own and needs one given with `-dtb`; the real firmware loads the
//! same file from the SD card. Fetched the way [`crate::linux`] fetches the
//! guest kernel (apt on a private arm64 package list, nothing installed),
//! only the one file is unpacked, and it is cached in `target/linux/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::linux::{apt_options, apt_session, deb_field, find_deb, linux_dir, pinned_kernel, run};

/// The meta package naming the current generic arm64 kernel.
pub const KERNEL_META: &str = "linux-image-arm64";
/// The tree's file name, in the package and in `target/linux/`.
pub const DTB_NAME: &str = "bcm2711-rpi-4-b.dtb";

/// `target/linux/bcm2711-rpi-4-b.dtb`.
pub fn dtb_path() -> PathBuf {
    linux_dir().join(DTB_NAME)
}

/// `target/linux/bcm2711-rpi-4-b.dtb.source`: the package it came from.
fn source_path() -> PathBuf {
    linux_dir().join(format!("{DTB_NAME}.source"))
}

/// The tree, fetched first if it is not cached (or `refresh`).
pub fn prepare(refresh: bool) -> Result<PathBuf> {
    if !refresh && dtb_path().is_file() && source_path().is_file() {
        return Ok(dtb_path());
    }
    fetch(&linux_dir())?;
    Ok(dtb_path())
}

/// The cached tree, or an error telling how to get it.
pub fn require() -> Result<PathBuf> {
    if dtb_path().is_file() {
        Ok(dtb_path())
    } else {
        bail!(
            "{} is missing: run `cargo xtask run --board rpi4` (or `cargo xtask linux`) first, which fetches it from Debian's {KERNEL_META}",
            dtb_path().display()
        )
    }
}

fn manual_commands(dir: &Path) -> String {
    let lists = dir.join("apt/lists");
    format!(
        "  mkdir -p {lists}/partial && cd /tmp\n  \
         o=\"{o}\"\n  \
         apt-get $o update && apt-get $o download {KERNEL_META}\n  \
         dpkg-deb -f {KERNEL_META}_*.deb Depends   # linux-image-<abi>-arm64 (= <version>)\n  \
         apt-get $o download linux-image-<abi>-arm64=<version>\n  \
         dpkg-deb --fsys-tarfile linux-image-<abi>-arm64_*.deb | tar -x --wildcards '*/broadcom/{DTB_NAME}'\n\
         and copy it to {dtb}.",
        lists = lists.display(),
        o = apt_options(&lists).join(" "),
        dtb = dtb_path().display(),
    )
}

fn fetch(dir: &Path) -> Result<()> {
    let hint = || manual_commands(dir);
    let lists = dir.join("apt/lists");
    let debs = dir.join("dtb-debs");
    let apt = apt_session(&lists, &debs)?;
    eprintln!(
        "xtask: rpi4: apt-get update (arm64 package lists in {})",
        lists.display()
    );
    run(&mut apt(&["update"]), "apt-get update", &hint)?;
    run(
        &mut apt(&["download", KERNEL_META]),
        "apt-get download",
        &hint,
    )?;
    let meta = find_deb(&debs, KERNEL_META)?;
    let depends = deb_field(&meta, "Depends", &hint)?;
    let (kpkg, kver) = pinned_kernel(&depends).with_context(|| {
        format!("{KERNEL_META} depends on no linux-image-* package (Depends: {depends:?})")
    })?;
    let spec = if kver.is_empty() {
        kpkg.clone()
    } else {
        format!("{kpkg}={kver}")
    };
    eprintln!("xtask: rpi4: downloading {spec} for its {DTB_NAME}");
    run(&mut apt(&["download", &spec]), "apt-get download", &hint)?;
    let kdeb = find_deb(&debs, &kpkg)?;
    let version = deb_field(&kdeb, "Version", &hint)?;
    let root = debs.join("root");
    std::fs::create_dir_all(&root)?;
    extract_one(&kdeb, &format!("*/broadcom/{DTB_NAME}"), &root).with_context(|| {
        format!(
            "unpacking {DTB_NAME} from {}\nby hand:\n{}",
            kdeb.display(),
            hint()
        )
    })?;
    let found = root
        .join("usr/lib")
        .join(&kpkg)
        .join("broadcom")
        .join(DTB_NAME);
    let blob = std::fs::read(&found).with_context(|| format!("reading {}", found.display()))?;
    if blob.get(..4) != Some(&[0xd0, 0x0d, 0xfe, 0xed][..]) {
        bail!("{} is not a flattened device tree", found.display());
    }
    std::fs::write(dtb_path(), &blob)?;
    std::fs::write(source_path(), format!("{kpkg} {version}\n"))?;
    // The package is ~60 MiB; only the tree is kept.
    let _ = std::fs::remove_dir_all(&debs);
    eprintln!(
        "xtask: rpi4: {} from {kpkg} {version}",
        dtb_path().display()
    );
    Ok(())
}

/// `dpkg-deb --fsys-tarfile <deb> | tar -x --wildcards <pattern>` into `dest`.
fn extract_one(deb: &Path, pattern: &str, dest: &Path) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar_in = dpkg.stdout.take().context("dpkg-deb stdout not captured")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .args(["--wildcards", pattern])
        .stdin(tar_in)
        .status()
        .context("running tar")?;
    let dpkg = dpkg.wait()?;
    if !tar.success() || !dpkg.success() {
        bail!("dpkg-deb ({dpkg}) | tar ({tar}) failed");
    }
    Ok(())
}
