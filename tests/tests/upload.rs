//! Signed images over the maintenance link: `blinkctl upload` puts an image
//! into the staging slot only once it arrived whole and checks out against
//! the key built into the running image; `blinkctl upgrade` warm-reloads
//! into it on trial, `blinkctl confirm` makes it permanent and `blinkctl
//! rollback` goes back, under the heartbeat and the
//! memory-pattern guest, which go on counting and verifying.
//!
//! Refused, each with the staging slot left as it was and the guests
//! unaffected: an image changed after signing, one signed with another
//! key, one signed for another board, and (once the signed image runs) one
//! whose security counter is below the running image's.

use std::path::{Path, PathBuf};

use tests::hv::SlotRole;
use tests::link::{
    blinkctl, blinkctl_binary, dev_key, link_on, serial_socket, sign, signed_next, upload_staged,
    wait_listening,
};
use tests::*;

fn version() -> String {
    format!("blink {}", env!("CARGO_PKG_VERSION"))
}

/// An upload the device must refuse: blinkctl exits 1 naming `answer`,
/// the hypervisor logs `log`, slot 1 stays empty and staged, the guests
/// go on.
fn refused(
    run: &mut QemuRun,
    sock: &Path,
    image: &Path,
    answer: &str,
    log: &Regex,
) -> anyhow::Result<()> {
    let (code, out, err) = blinkctl(sock, &["upload", image.to_str().unwrap_or_default()])?;
    check!(
        run,
        code == 1 && err.contains(answer),
        "upload of {}: exit {code}, want 1 and '{answer}': {err}{out}",
        image.display()
    );
    run.expect(log, DEADLINE)?;
    let (code, out, _) = blinkctl(sock, &["images"])?;
    check!(
        run,
        code == 0
            && re(r"(?m)^image slot 1 at 0x[0-9a-f]+ \(\d+ KiB\): no image.* \[staged\]$")
                .is_match(&out),
        "after a refused upload the staging slot changed: {out}"
    );
    more_heartbeats(run, "domU0", 1, "heartbeat after a refused upload")?;
    Ok(())
}

fn upload_upgrade_rollback(gic: u32) -> anyhow::Result<()> {
    let (n, n1) = (version(), xtask::images::next_version());
    // The images, signed as a release engineer would.
    let (dir, next_raw, good) = signed_next(&format!("upload-v{gic}"), "qemu-virt")?;
    let mut bytes = std::fs::read(&good)?;
    let mid = vmm::image_slot::HEADER_SIZE + (bytes.len() - vmm::image_slot::HEADER_SIZE) / 2;
    bytes[mid] ^= 0x01;
    let tampered = dir.join("tampered.slot");
    std::fs::write(&tampered, &bytes)?;
    let other_key = dir.join("other");
    let out = std::process::Command::new(blinkctl_binary()?)
        .args([
            "keygen",
            "--force",
            "--out",
            other_key.to_str().unwrap_or_default(),
        ])
        .output()?;
    anyhow::ensure!(out.status.success(), "blinkctl keygen failed");
    let foreign = dir.join("foreign.slot");
    sign(
        &next_raw,
        &other_key.with_extension("secret"),
        &n1,
        5,
        "qemu-virt",
        &foreign,
    )?;
    let for_pi = dir.join("rpi4.slot");
    sign(&next_raw, &dev_key(), &n1, 5, "rpi4", &for_pi)?;
    let old = dir.join("downgrade.slot");
    sign(
        &xtask::images::hypervisor_image(),
        &dev_key(),
        &n,
        1,
        "qemu-virt",
        &old,
    )?;

    let mut sock = PathBuf::new();
    let mut run = start_heartbeat_and_pattern(gic, |s| {
        sock = serial_socket(s, &format!("upload-v{gic}")).unwrap_or_default();
    })?;
    // Said before the guests ran, which start_heartbeat_and_pattern waited for.
    check!(
        run,
        !run.find_all(&link_on()).is_empty(),
        "no maintenance link"
    );
    wait_listening(&sock)?;

    refused(
        &mut run,
        &sock,
        &tampered,
        "refused: not an image this board can run",
        &re(
            r"^\[hv\] ERROR: upload refused: the image's SHA-256 differs from the signed one; the staged image is unchanged$",
        ),
    )?;
    refused(
        &mut run,
        &sock,
        &foreign,
        "refused: signed with a key the running image does not trust",
        &re(r"^\[hv\] ERROR: upload refused: signed with a key this image does not trust; "),
    )?;
    refused(
        &mut run,
        &sock,
        &for_pi,
        "refused: the image is not for this board",
        &re(r"^\[hv\] ERROR: upload refused: image for rpi4, this board is 'qemu-virt'; "),
    )?;

    // The signed next build: staged in slot 1, then upgraded into.
    let (code, out, err) = blinkctl(&sock, &["upload", good.to_str().unwrap_or_default()])?;
    check!(run, code == 0, "upload: exit {code}: {err}{out}");
    run.expect(&upload_staged(&n1), DEADLINE)?;
    let (_, out, _) = blinkctl(&sock, &["images"])?;
    check!(
        run,
        re(&format!(
            r"(?m)^image slot 1 .*'{}'.* ok \[staged\]$",
            regex::escape(&n1)
        ))
        .is_match(&out),
        "images after the upload: {out}"
    );
    let beat = last_value(&run, |l| heartbeat_n("domU0", l));
    let (code, out, err) = blinkctl(&sock, &["upgrade"])?;
    check!(run, code == 0, "upgrade: exit {code}: {err}{out}");
    run.expect(&hv::upgrade_to(&n1, &n), DEADLINE)?;
    run.expect(&hv::banner_of(&n1, "qemu-virt", 2), DEADLINE)?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    wait_beyond(
        &mut run,
        DEADLINE,
        "heartbeat after the upgrade",
        |l| heartbeat_n("domU0", l),
        beat,
    )?;
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0
            && out.starts_with(&format!("{n1} on qemu-virt: "))
            && out.contains("running slot 1, staging slot 2, security counter 5;")
            && re(r"(?m)^trial: slot 1 on trial, reverts to slot 0 in \d+ s unless confirmed$")
                .is_match(&out),
        "status after the upgrade: exit {code}: {err}{out}"
    );
    // Confirmed: permanent; a second confirm has nothing to confirm.
    let (code, out, err) = blinkctl(&sock, &["confirm"])?;
    check!(
        run,
        code == 0 && out.contains("confirm: the image in slot 1 is permanent"),
        "confirm: exit {code}: {err}{out}"
    );
    run.expect(
        &re(r"^\[hv\] trial: confirmed by the operator: this image \(slot 1\) is permanent$"),
        DEADLINE,
    )?;
    let (code, out, _) = blinkctl(&sock, &["confirm"])?;
    check!(
        run,
        code == 1 && out.contains("not on trial"),
        "second confirm: exit {code}: {out}"
    );

    // Below the running image's security counter: a downgrade.
    let (code, out, err) = blinkctl(&sock, &["upload", old.to_str().unwrap_or_default()])?;
    check!(
        run,
        code == 1 && err.contains("security counter 1 is below the running image's 5"),
        "downgrade upload: exit {code}: {err}{out}"
    );
    run.expect(
        &re(r"^\[hv\] ERROR: upload refused: security counter 1 is below the running image's 5 \(a downgrade\); "),
        DEADLINE,
    )?;

    // And back.
    let beat = last_value(&run, |l| heartbeat_n("domU0", l));
    let (code, out, err) = blinkctl(&sock, &["rollback"])?;
    check!(run, code == 0, "rollback: exit {code}: {err}{out}");
    run.expect(&hv::rollback_to(&n, &n1), DEADLINE)?;
    run.expect(&hv::banner_of(&n, "qemu-virt", 2), DEADLINE)?;
    run.expect(&hv::reload_report(2, 2), DEADLINE)?;
    wait_beyond(
        &mut run,
        DEADLINE,
        "heartbeat after the rollback",
        |l| heartbeat_n("domU0", l),
        beat,
    )?;
    let pass = last_value(&run, |l| mempattern_pass("domU1", l));
    wait_beyond(
        &mut run,
        DEADLINE,
        "memory verified after the rollback",
        |l| mempattern_pass("domU1", l),
        pass,
    )?;
    let (_, out, _) = blinkctl(&sock, &["images"])?;
    check!(
        run,
        tests::hv::image_slot_holding(1, &n1, SlotRole::Previous)
            .is_match(&format!("[hv] {}", out.lines().nth(1).unwrap_or_default())),
        "images after the rollback: {out}"
    );
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU0"))?;
    reload::check_continuous(&run, "mempattern passes", &mempattern_passes(&run, "domU1"))?;
    guest::check_started_once(&run, &re("mempattern: filled"), "mempattern")?;
    // Clean after the upgrade but for the downgrade refused on purpose.
    let downgrade = re(r"^\[hv\] ERROR: upload refused: security counter 1 ");
    let lines: Vec<String> = run
        .lines()
        .into_iter()
        .filter(|l| !downgrade.is_match(l))
        .collect();
    if let Some((line, why)) = reload::first_unclean(&lines, reload::Since::FirstReload)? {
        anyhow::bail!(
            "unexpected line (/{why}/) after the upgrade: {line}\n{}",
            run.report()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

on_both_gics!(upload_upgrade_rollback);

/// The figure of `..., <w> on the wire, ...` in blinkctl's upload report.
fn wire_bytes(report: &str) -> Option<u64> {
    re(r", (\d+) on the wire, ").captures(report)?[1]
        .parse()
        .ok()
}

/// The cable pulled midway (blinkctl killed), the hypervisor warm-reloaded
/// meanwhile, then the same upload again: the new image carried the
/// upload over in the handoff block, and it resumes from what the device
/// verified, sending only the rest.
#[test]
fn upload_cut_and_resumed() -> anyhow::Result<()> {
    let n1 = xtask::images::next_version();
    let (dir, _, good) = signed_next("upload-cut", "qemu-virt")?;
    let image_len = std::fs::metadata(&good)?.len();

    let mut s = scenario(3, [VmSpec::guest("domU0", "heartbeat")]);
    let sock = serial_socket(&mut s, "upload-cut")?;
    let mut run = start(&s)?;
    run.expect(&heartbeat("domU0"), DEADLINE)?;
    wait_listening(&sock)?;

    // Slowly (one small chunk in flight), and cut after a second.
    let mut child = std::process::Command::new(blinkctl_binary()?)
        .arg("-d")
        .arg(format!("unix:{}", sock.display()))
        .args(["upload", "--no-compress", "--chunk", "256", "--window", "1"])
        .arg(&good)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let finished = child.try_wait()?;
    let _ = child.kill();
    let _ = child.wait();
    check!(
        run,
        finished.is_none(),
        "the slow upload finished within 1.5 s ({finished:?}): nothing was cut"
    );

    let (code, out, err) = blinkctl(&sock, &["rejuvenate"])?;
    check!(run, code == 0, "rejuvenate: exit {code}: {err}{out}");
    run.expect(
        &re(r"^\[hv\] maintenance link: an upload of \d+ bytes goes on where it was \(\d+ chunks of 256 bytes verified before the reload\)$"),
        DEADLINE,
    )?;
    run.expect(&hv::reload_report(1, 1), DEADLINE)?;
    // The same chunk size (the verified prefix is counted in chunks).
    let (code, out, err) = blinkctl(
        &sock,
        &[
            "upload",
            "--no-compress",
            "--chunk",
            "256",
            good.to_str().unwrap_or_default(),
        ],
    )?;
    check!(run, code == 0, "resumed upload: exit {code}: {err}{out}");
    let sent = wire_bytes(&out).ok_or_else(|| anyhow::anyhow!("no report: {out}"))?;
    check!(
        run,
        sent + 256 * 4 < image_len,
        "the second upload put {sent} bytes on the wire for {image_len}: it did not resume ({out})"
    );
    run.expect(
        &re(r"^\[hv\] upload: 'blink \S+\+next' \(version 0\.2\.0, security counter 5, development key\) staged in image slot 1$"),
        DEADLINE,
    )?;
    let (_, out, _) = blinkctl(&sock, &["images"])?;
    check!(
        run,
        out.contains("[staged]") && out.contains(&format!("'{n1}'")),
        "images after the resumed upload: {out}"
    );
    more_heartbeats(&mut run, "domU0", 1, "heartbeat after the uploads")?;
    run.assert_absent(&hv::tagged(&[
        hv::Tag::Fatal,
        hv::Tag::Panic,
        hv::Tag::Error,
    ]))?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

const LINUX_DEADLINE: std::time::Duration = std::time::Duration::from_secs(240);

/// Linux (2 vCPUs), the heartbeat and the memory-pattern guest: a signed
/// next build uploaded, `upgrade --confirm-after 3` into it, confirmed by
/// itself; Linux's counter, the heartbeat and the pattern go on, each
/// booted once.
#[test]
fn linux_upload_upgrade_confirmed() -> anyhow::Result<()> {
    xtask::linux::require()?;
    require_images(&["heartbeat", "mempattern"])?;
    let (n, n1) = (version(), xtask::images::next_version());
    let (dir, _, good) = signed_next("upload-linux", "qemu-virt")?;

    let mut s = scenario(
        3,
        [
            VmSpec::linux("domU0").cpus(2),
            VmSpec::guest("domU1", "heartbeat"),
            VmSpec::guest("domU2", "mempattern"),
        ],
    );
    let sock = serial_socket(&mut s, "upload-linux")?;
    let mut run = start(&s)?;
    run.fail_on(re(tests::guest::LINUX_TROUBLE));
    run.expect(
        &re(r"^\[domU0\] init: ready uptime=[0-9.]+ cpus=2$"),
        LINUX_DEADLINE,
    )?;
    let counter = tests::guest::linux_counter_n;
    wait_beyond(&mut run, LINUX_DEADLINE, "Linux counting", counter, 1)?;
    wait_listening(&sock)?;

    let (code, out, err) = blinkctl(&sock, &["upload", good.to_str().unwrap_or_default()])?;
    check!(
        run,
        code == 0,
        "upload with Linux running: exit {code}: {err}{out}"
    );
    let last = last_value(&run, counter);
    let (code, out, err) = blinkctl(&sock, &["upgrade", "--confirm-after", "3"])?;
    check!(run, code == 0, "upgrade: exit {code}: {err}{out}");
    run.expect(&hv::upgrade_to(&n1, &n), DEADLINE)?;
    run.expect(&hv::reload_report(1, 3), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] trial: every VM made progress for the time asked: this image \(slot 1\) is permanent$"),
        DEADLINE,
    )?;
    wait_beyond(
        &mut run,
        LINUX_DEADLINE,
        "Linux counting after the upgrade",
        counter,
        last + 2,
    )?;
    let pass = last_value(&run, |l| mempattern_pass("domU2", l));
    wait_beyond(
        &mut run,
        DEADLINE,
        "memory verified after the upgrade",
        |l| mempattern_pass("domU2", l),
        pass,
    )?;
    let counts: Vec<u64> = run.lines().iter().filter_map(|l| counter(l)).collect();
    reload::check_continuous(&run, "Linux counter", &counts)?;
    reload::check_continuous(&run, "heartbeat counter", &heartbeats(&run, "domU1"))?;
    guest::check_started_once(&run, &re(r"^\[domU0\] init: ready"), "Linux")?;
    guest::check_started_once(&run, &re("mempattern: filled"), "mempattern")?;
    reload::check_clean(&run, reload::Since::FirstReload)?;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&sock);
    Ok(())
}
