//! The maintenance link as the tests drive it: QEMU's second serial on a
//! Unix socket, and the real `blinkctl` (`target/debug/blinkctl`, built by
//! `cargo xtask test` or `cargo build -p blinkctl`) talking to it.
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{re, DEADLINE};
use regex::Regex;
use xtask::Scenario;

/// Gives `s` a second serial (the maintenance UART) on a Unix socket in
/// the target directory, named after `tag` and this process; returns its
/// path.
pub fn serial_socket(s: &mut Scenario, tag: &str) -> anyhow::Result<PathBuf> {
    let dir = xtask::target_dir().join("xtask");
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join(format!("{tag}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    s.maint_uart_on_socket(&sock);
    Ok(sock)
}

/// `[hv] maintenance link on /pl011@9040000 (INTID 40, CPU 0): ...`.
pub fn link_on() -> Regex {
    re(r"^\[hv\] maintenance link on /pl011@9040000 \(INTID 40, CPU 0\): ")
}

pub fn blinkctl_binary() -> anyhow::Result<PathBuf> {
    let exe = xtask::target_dir().join("debug").join("blinkctl");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing: run `cargo build -p blinkctl` (cargo xtask test does)",
        exe.display()
    );
    Ok(exe)
}

/// Runs `blinkctl -d unix:<sock> <args>`: exit code, stdout, stderr.
pub fn blinkctl(sock: &Path, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = Command::new(blinkctl_binary()?)
        // Whatever the caller's shell has: a test gives keys explicitly.
        .env_remove("BLINK_OPERATOR_KEY")
        .arg("-d")
        .arg(format!("unix:{}", sock.display()))
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Waits until QEMU listens on `sock` (a probe connection, closed again).
pub fn wait_listening(sock: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match UnixStream::connect(sock) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => anyhow::bail!("nothing listens on {}: {e}", sock.display()),
        }
    }
}

/// After `rejuvenate` on a run of one heartbeat VM (`domU0`) with the link:
/// the reload's lines in order, the link on again in the new image, and
/// the heartbeat past `last_beat`, counting without a gap, started once.
pub fn expect_reload_with_link(run: &mut xtask::QemuRun, last_beat: u64) -> anyhow::Result<()> {
    use crate::{guest, hv, reload};
    let beat = |l: &str| guest::heartbeat_n("domU0", l);
    run.expect(&hv::suspending(1, 1), DEADLINE)?;
    run.expect(&hv::warm_entry(), DEADLINE)?;
    run.expect(&link_on(), DEADLINE)?;
    run.expect(&hv::vm_resumed(0, "domU0"), DEADLINE)?;
    run.expect(&hv::reload_report(1, 1), DEADLINE)?;
    crate::wait_beyond(
        run,
        DEADLINE,
        "heartbeat after the reload",
        beat,
        last_beat + 1,
    )?;
    let beats: Vec<u64> = run.lines().iter().filter_map(|l| beat(l)).collect();
    reload::check_continuous(run, "heartbeat counter", &beats)?;
    guest::check_started_once(run, &re("heartbeat: start"), "heartbeat")?;
    Ok(())
}

/// The development key's secret half (keys/development.secret).
pub fn dev_key() -> PathBuf {
    xtask::workspace_root().join("keys/development.secret")
}

/// `blinkctl sign`s the raw image `raw` into `out` (exit 0 or an error).
pub fn sign(
    raw: &Path,
    key: &Path,
    label: &str,
    counter: u32,
    board: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let counter = counter.to_string();
    let args = [
        "sign",
        "--key",
        key.to_str().unwrap_or_default(),
        "--image",
        raw.to_str().unwrap_or_default(),
        "--version",
        "0.2.0",
        "--security-counter",
        &counter,
        "--board",
        board,
        "--label",
        label,
        "--out",
        out.to_str().unwrap_or_default(),
    ];
    let out = std::process::Command::new(blinkctl_binary()?)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "blinkctl sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `[hv] upload: '<label>' (version 0.2.0, security counter 5, development
/// key) staged in image slot 1`: an image signed by [`sign`] with counter
/// 5 arrived whole and checked out.
pub fn upload_staged(label: &str) -> Regex {
    re(&format!(
        r"^\[hv\] upload: '{}' \(version 0\.2\.0, security counter 5, development key\) staged in image slot 1$",
        regex::escape(label)
    ))
}

/// A scratch directory for `tag`, and the next build signed into it
/// (`next.slot`: security counter 5, for `board`, the development key).
pub fn signed_next(tag: &str, board: &str) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    blinkctl_binary()?;
    let next_raw = xtask::images::images_dir().join("hypervisor-next.bin");
    anyhow::ensure!(
        next_raw.is_file(),
        "{} missing: run `cargo xtask build`",
        next_raw.display()
    );
    let dir = xtask::target_dir()
        .join("xtask")
        .join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("next.slot");
    let n1 = xtask::images::next_version();
    sign(&next_raw, &dev_key(), &n1, 5, board, &good)?;
    Ok((dir, next_raw, good))
}
