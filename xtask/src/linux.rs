//! The Linux test guest: Debian's arm64 cloud kernel plus a busybox
//! initramfs with blink's own `/init` (`guests/linux/init`).
//!
//! The two Debian packages are fetched with the host's apt, pointed at a
//! private package-list directory with arm64 as its only architecture, so
//! the host's package set and dpkg architecture list stay untouched. All of
//! it is cached under `target/linux/`: after the first fetch (recorded in
//! `target/linux/stamp`) no network is needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cpio::CpioWriter;

/// The meta package that names the current cloud kernel.
pub const KERNEL_META: &str = "linux-image-cloud-arm64";
pub const BUSYBOX_PKG: &str = "busybox-static";

/// Guest RAM a Linux VM gets unless told otherwise.
pub const DEFAULT_MEM_MIB: u64 = 256;
/// vCPUs a Linux VM gets unless told otherwise.
pub const DEFAULT_CPUS: u32 = 2;

/// Kernel command line of every Linux VM. `earlycon` makes the first
/// messages (before the PL011 driver probes) visible, which is where a
/// hypervisor bug usually shows.
pub const BASE_BOOTARGS: &str = "console=ttyAMA0 earlycon=pl011,0x09000000 rdinit=/init";

/// Busybox applets the initramfs links, besides `sh`: what `/init` runs and
/// what is handy at the interactive shell.
const APPLETS: &[&str] = &[
    "sh", "ash", "cat", "cttyhack", "cut", "date", "dd", "dmesg", "echo", "free", "grep", "head",
    "ls", "md5sum", "mkdir", "mount", "nproc", "poweroff", "ps", "reboot", "rm", "seq", "setsid",
    "sleep", "sync", "tail", "taskset", "top", "umount", "uname", "uptime", "vi", "wc", "yes",
];

/// `target/linux/`.
pub fn linux_dir() -> PathBuf {
    crate::target_dir().join("linux")
}

/// The uncompressed arm64 kernel `Image`.
pub fn kernel_image() -> PathBuf {
    linux_dir().join("Image")
}

/// The newc cpio initramfs.
pub fn initramfs() -> PathBuf {
    linux_dir().join("initramfs.cpio")
}

/// The `/init` script kept in the repository.
pub fn init_script() -> PathBuf {
    crate::workspace_root().join("guests/linux/init")
}

fn busybox_binary() -> PathBuf {
    linux_dir().join("busybox")
}

fn stamp_file() -> PathBuf {
    linux_dir().join("stamp")
}

/// The kernel command line for a Linux VM, with `blink.test=<test>` (see
/// `guests/linux/init`) and any `extra` options appended.
pub fn bootargs(test: Option<&str>, extra: &str) -> String {
    let mut args = BASE_BOOTARGS.to_string();
    if let Some(t) = test {
        let _ = write!(args, " blink.test={t}");
    }
    if !extra.trim().is_empty() {
        args.push(' ');
        args.push_str(extra.trim());
    }
    args
}

/// The prepared images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxImages {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// `<package> <version>` of the kernel and of busybox, from the stamp.
    pub kernel_package: String,
    pub busybox_package: String,
}

/// Fetches the packages if they are not cached yet (or `refresh`), and
/// (re)builds the initramfs if `/init` or busybox changed.
pub fn prepare(refresh: bool) -> Result<LinuxImages> {
    let dir = linux_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = match read_stamp()? {
        Some(s) if !refresh && kernel_image().is_file() && busybox_binary().is_file() => s,
        _ => fetch(&dir)?,
    };
    build_initramfs()?;
    Ok(LinuxImages {
        kernel: kernel_image(),
        initramfs: initramfs(),
        kernel_package: stamp.kernel,
        busybox_package: stamp.busybox,
    })
}

/// The images if [`prepare`] has run, else an error telling how to make them.
pub fn require() -> Result<LinuxImages> {
    let stamp = read_stamp()?;
    match stamp {
        Some(s) if kernel_image().is_file() && initramfs().is_file() => Ok(LinuxImages {
            kernel: kernel_image(),
            initramfs: initramfs(),
            kernel_package: s.kernel,
            busybox_package: s.busybox,
        }),
        _ => bail!(
            "the Linux guest images are missing ({}): run `cargo xtask linux` first",
            linux_dir().display()
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    kernel: String,
    busybox: String,
}

impl Stamp {
    fn render(&self) -> String {
        format!("kernel={}\nbusybox={}\n", self.kernel, self.busybox)
    }

    fn parse(text: &str) -> Option<Stamp> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Some(Stamp {
            kernel: get("kernel")?,
            busybox: get("busybox")?,
        })
    }
}

fn read_stamp() -> Result<Option<Stamp>> {
    match std::fs::read_to_string(stamp_file()) {
        Ok(text) => Ok(Stamp::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", stamp_file().display())),
    }
}

/// The apt options that make apt work on a private arm64-only package list
/// instead of the host's state (the package caches are disabled so nothing
/// under /var/cache/apt is written either).
pub(crate) fn apt_options(lists: &Path) -> Vec<String> {
    [
        "APT::Architecture=arm64".to_string(),
        "APT::Architectures=arm64".to_string(),
        format!("Dir::State::Lists={}", lists.display()),
        "Dir::Cache::pkgcache=".to_string(),
        "Dir::Cache::srcpkgcache=".to_string(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

/// The shell commands equivalent to [`fetch`], for error messages.
fn manual_commands(dir: &Path) -> String {
    let lists = dir.join("apt/lists");
    let o = apt_options(&lists).join(" ");
    format!(
        "  mkdir -p {lists}/partial {debs}\n  \
         o=\"{o}\"\n  \
         apt-get $o update\n  \
         cd {debs} && apt-get $o download {KERNEL_META} {BUSYBOX_PKG}\n  \
         dpkg-deb -f {KERNEL_META}_*.deb Depends   # names linux-image-<abi>-cloud-arm64 (= <version>)\n  \
         apt-get $o download linux-image-<abi>-cloud-arm64=<version>\n\
         then run `cargo xtask linux` again once they work.",
        lists = lists.display(),
        debs = dir.join("debs").display(),
    )
}

/// Runs a command, returning its stdout; on failure the error carries its
/// output and `hint`.
/// Makes `debs` a fresh download directory (stale .debs would make
/// [`find_deb`] ambiguous) and `lists` the private package lists; returns
/// a maker of `apt-get` commands that use both (run in `debs`).
pub(crate) fn apt_session(lists: &Path, debs: &Path) -> Result<impl Fn(&[&str]) -> Command> {
    let _ = std::fs::remove_dir_all(debs);
    for d in [lists.join("partial"), debs.to_path_buf()] {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let o = apt_options(lists);
    let debs = debs.to_path_buf();
    Ok(move |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.args(&o)
            .args(["-q", "-y"])
            .args(args)
            .current_dir(&debs)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    })
}

pub(crate) fn run(cmd: &mut Command, what: &str, hint: &dyn Fn() -> String) -> Result<String> {
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => bail!(
            "{what}: cannot run {:?}: {e}\nThe Linux guest is fetched with Debian's apt-get and \
             dpkg-deb. The commands, to run by hand:\n{}",
            cmd.get_program(),
            hint()
        ),
    };
    if !out.status.success() {
        let mut log = String::from_utf8_lossy(&out.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{what} failed ({}):\n{}\nTo do it by hand (same commands):\n{}",
            out.status,
            tail.join("\n"),
            hint()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// From a `Depends:` field, the `linux-image-*` package and exact version
/// the meta package pins, e.g. `linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)`.
pub(crate) fn pinned_kernel(depends: &str) -> Option<(String, String)> {
    depends.split([',', '|']).map(str::trim).find_map(|dep| {
        let (name, rest) = dep.split_once(' ').unwrap_or((dep, ""));
        if !name.starts_with("linux-image-") || name == KERNEL_META {
            return None;
        }
        let version = rest
            .trim()
            .strip_prefix("(=")
            .and_then(|v| v.strip_suffix(')'))
            .map(|v| v.trim().to_string());
        Some((name.to_string(), version.unwrap_or_default()))
    })
}

/// The single `*.deb` in `dir` whose name starts with `<package>_`.
pub(crate) fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "apt-get download left no {prefix}*.deb in {}",
            dir.display()
        ),
        _ => bail!("several {prefix}*.deb in {}", dir.display()),
    }
}

pub(crate) fn deb_field(deb: &Path, field: &str, hint: &dyn Fn() -> String) -> Result<String> {
    let out = run(
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(field),
        &format!("dpkg-deb -f {} {field}", deb.display()),
        hint,
    )?;
    Ok(out.trim().to_string())
}

/// Downloads and unpacks the kernel and busybox, writes `Image`, `busybox`
/// and the stamp.
fn fetch(dir: &Path) -> Result<Stamp> {
    let hint = || manual_commands(dir);
    let lists = dir.join("apt/lists");
    let debs = dir.join("debs");
    let apt = apt_session(&lists, &debs)?;

    eprintln!(
        "xtask: linux: apt-get update (arm64 package lists in {})",
        lists.display()
    );
    run(&mut apt(&["update"]), "apt-get update", &hint)?;
    eprintln!("xtask: linux: downloading {KERNEL_META} and {BUSYBOX_PKG}");
    run(
        &mut apt(&["download", KERNEL_META, BUSYBOX_PKG]),
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
    eprintln!("xtask: linux: downloading {spec}");
    run(&mut apt(&["download", &spec]), "apt-get download", &hint)?;

    let kdeb = find_deb(&debs, &kpkg)?;
    let bdeb = find_deb(&debs, BUSYBOX_PKG)?;
    let stamp = Stamp {
        kernel: format!("{kpkg} {}", deb_field(&kdeb, "Version", &hint)?),
        busybox: format!("{BUSYBOX_PKG} {}", deb_field(&bdeb, "Version", &hint)?),
    };

    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    for deb in [&kdeb, &bdeb] {
        run(
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root),
            &format!("dpkg-deb -x {}", deb.display()),
            &hint,
        )?;
    }
    let vmlinuz = single_match(&root.join("boot"), "vmlinuz-")?;
    let image =
        std::fs::read(&vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    crate::images::check_arm64_header(&image).with_context(|| {
        format!(
            "{} is not an uncompressed arm64 Image (a compressed vmlinuz would need unpacking)",
            vmlinuz.display()
        )
    })?;
    let busybox = root.join("bin/busybox");
    if !busybox.is_file() {
        bail!("{BUSYBOX_PKG} has no bin/busybox ({})", busybox.display());
    }
    // Written last, stamp after the files: an interrupted fetch is redone.
    let _ = std::fs::remove_file(stamp_file());
    std::fs::write(kernel_image(), &image)?;
    std::fs::copy(&busybox, busybox_binary())?;
    std::fs::write(stamp_file(), stamp.render())?;
    // The unpacked trees and .debs are not needed any more (the kernel
    // package alone unpacks to ~100 MiB of modules).
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&debs);
    eprintln!("xtask: linux: {} / {}", stamp.kernel, stamp.busybox);
    Ok(stamp)
}

fn single_match(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => bail!("expected one {prefix}* in {}, found {n}", dir.display()),
    }
}

/// The initramfs contents: the directory skeleton, busybox with its applet
/// links, a console device node and `/init`.
pub fn initramfs_bytes(busybox: &[u8], init: &[u8]) -> Result<Vec<u8>> {
    let mut w = CpioWriter::new();
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root", "etc",
    ] {
        w.dir(d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    w.file("bin/busybox", 0o755, busybox)?;
    for applet in APPLETS {
        w.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    // The kernel opens /dev/console for init's stdin/stdout/stderr before
    // devtmpfs is mounted: without this node init would run with none.
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.file("init", 0o755, init)?;
    w.finish()
}

/// Rebuilds `initramfs.cpio` if its contents would change.
fn build_initramfs() -> Result<()> {
    let init_path = init_script();
    let init =
        std::fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let busybox = std::fs::read(busybox_binary())
        .with_context(|| format!("reading {}", busybox_binary().display()))?;
    let bytes = initramfs_bytes(&busybox, &init)?;
    let out = initramfs();
    if std::fs::read(&out).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "xtask: linux: wrote {} ({} bytes)",
            out.display(),
            bytes.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dependency_parsing() {
        assert_eq!(
            pinned_kernel("linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)"),
            Some((
                "linux-image-6.1.0-56-cloud-arm64".into(),
                "6.1.192-2".into()
            ))
        );
        assert_eq!(
            pinned_kernel("foo, linux-image-6.12.95+deb12-cloud-arm64 (= 6.12.95-1~bpo12+1), bar"),
            Some((
                "linux-image-6.12.95+deb12-cloud-arm64".into(),
                "6.12.95-1~bpo12+1".into()
            ))
        );
        assert_eq!(
            pinned_kernel("linux-image-6.1.0-9-cloud-arm64"),
            Some(("linux-image-6.1.0-9-cloud-arm64".into(), String::new()))
        );
        assert_eq!(pinned_kernel("libc6 (>= 2.36)"), None);
        assert_eq!(pinned_kernel(""), None);
    }

    #[test]
    fn stamp_round_trip() {
        let s = Stamp {
            kernel: "linux-image-6.1.0-56-cloud-arm64 6.1.192-2".into(),
            busybox: "busybox-static 1:1.35.0-4+deb12u1+b1".into(),
        };
        assert_eq!(Stamp::parse(&s.render()), Some(s));
        assert_eq!(Stamp::parse("kernel=x\n"), None);
        assert_eq!(Stamp::parse("kernel=\nbusybox=y"), None);
    }

    #[test]
    fn apt_options_are_private() {
        let o = apt_options(Path::new("/t/lists")).join(" ");
        assert_eq!(
            o,
            "-o APT::Architecture=arm64 -o APT::Architectures=arm64 -o Dir::State::Lists=/t/lists \
             -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="
        );
        let hint = manual_commands(Path::new("/t"));
        assert!(
            hint.contains("mkdir -p /t/apt/lists/partial /t/debs"),
            "{hint}"
        );
        assert!(hint.contains("apt-get $o update"), "{hint}");
    }

    #[test]
    fn bootargs_composition() {
        assert_eq!(bootargs(None, ""), BASE_BOOTARGS);
        assert_eq!(
            bootargs(Some("checksum"), " loglevel=8 "),
            format!("{BASE_BOOTARGS} blink.test=checksum loglevel=8")
        );
    }

    #[test]
    fn initramfs_has_init_and_applets() {
        let a = initramfs_bytes(b"BUSYBOX", b"#!/bin/sh\n").unwrap();
        let find = |name: &str| {
            let needle = format!("{name}\0");
            a.windows(needle.len()).any(|w| w == needle.as_bytes())
        };
        for name in [
            "init",
            "bin/busybox",
            "bin/sh",
            "bin/cttyhack",
            "dev/console",
            "TRAILER!!!",
        ] {
            assert!(find(name), "{name} missing");
        }
        // The real /init parses as a shell script and reads blink.test.
        let init = std::fs::read_to_string(init_script()).unwrap();
        assert!(init.starts_with("#!/bin/sh\n"));
        assert!(init.contains("blink.test="));
    }
}
