//! A production image (`target/images/hypervisor-production.bin`: the
//! hypervisor built with `keys/test-operator.pub` as its operator key)
//! under QEMU `-cpu max`, its maintenance link on a Unix socket driven
//! by the real `blinkctl`: anyone may read `status`; `rejuvenate`,
//! `rollback` and `upgrade` without an operator session are refused with
//! the reason and nothing reloads; an upload is refused without one and
//! staged with one; a key that is not the image's operator
//! key is refused; `--operator-key keys/test-operator.secret` opens a
//! session and `rejuvenate` reloads under the heartbeat, which counts on;
//! the new image starts without a session (refused again); the console
//! shell refuses state changes and has no `debug-*` commands; nonces come
//! from FEAT_RNG. On cortex-a72 (no FEAT_RNG) the nonces come from
//! counter jitter, named weak, and a session still opens. On GICv3 only: the GIC plays no part in any of it, and
//! CI time is spent once.

use tests::link::{
    blinkctl, blinkctl_binary, expect_reload_with_link, link_on, serial_socket, wait_listening,
};
use tests::*;

fn beat(line: &str) -> Option<u64> {
    heartbeat_n("domU0", line)
}

/// `[hv] rejuvenate: suspending ...`, `[hv] reload: ...`, `[hv] warm
/// entry ...`: any sign that a reload began.
fn any_reload() -> Regex {
    re(r"^\[hv\] (rejuvenate: suspending|reload: |warm entry|rollback: |upgrade: )")
}

const REFUSED: &str = "needs an authenticated session";

/// The next build signed into a slot file with the development key
/// (security counter 5, for qemu-virt), in a scratch directory.
fn signed_next(tag: &str) -> anyhow::Result<std::path::PathBuf> {
    let raw = xtask::images::images_dir().join("hypervisor-next.bin");
    let dir = xtask::target_dir()
        .join("xtask")
        .join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("next.slot");
    let key = xtask::workspace_root().join("keys/development.secret");
    let label = xtask::images::next_version();
    let signed = std::process::Command::new(blinkctl_binary()?)
        .arg("sign")
        .arg("--key")
        .arg(&key)
        .arg("--image")
        .arg(&raw)
        .args(["--version", "0.2.0", "--security-counter", "5"])
        .args(["--board", "qemu-virt", "--label", &label, "--out"])
        .arg(&out)
        .output()?;
    anyhow::ensure!(
        signed.status.success(),
        "blinkctl sign {}: {}",
        raw.display(),
        String::from_utf8_lossy(&signed.stderr)
    );
    Ok(out)
}

fn production(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let image = xtask::images::require_production_image()?;
    blinkctl_binary()?;
    let key = xtask::images::test_operator_key().with_extension("secret");
    let wrong = xtask::workspace_root().join("keys/development.secret");
    let (key, wrong) = (key.to_str().unwrap(), wrong.to_str().unwrap());

    let mut s = scenario(gic, [VmSpec::guest("domU0", "heartbeat")]);
    s.hypervisor = image;
    // FEAT_RNG: cortex-a72 has none.
    s.cpu = "max".into();
    let sock = serial_socket(&mut s, &format!("auth-v{gic}"))?;
    let mut run = start(&s)?;
    run.expect(&hv::banner(2, gic), DEADLINE)?;
    let on = run.expect(&link_on(), DEADLINE)?;
    check!(
        run,
        on.contains("production image: state changes need an operator session"),
        "the link's start line does not say production: {on}"
    );
    run.expect(
        &re(r"^\[hv\] operator sessions: challenge nonces from the CPU's random number generator \(FEAT_RNG, RNDR\)$"),
        DEADLINE,
    )?;
    run.expect(&heartbeat("domU0"), DEADLINE)?;
    wait_listening(&sock)?;

    // Reading needs no session.
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0
            && out.contains("generation 0,")
            && out.contains("production image: state changes need an operator session")
            && out.contains("session: none (state changes are refused)")
            && out.contains("FEAT_RNG"),
        "status without a session: exit {code}: {err}{out}"
    );
    let (code, out, _) = blinkctl(&sock, &["status", "--json"])?;
    check!(
        run,
        code == 0
            && out.contains("\"production\":true")
            && out.contains("\"operator_keys\":1")
            && out.contains("\"entropy\":\"rndr\""),
        "status --json: exit {code}: {out}"
    );

    // State changes without a session: refused (exit 1), with the reason
    // and what to do.
    for cmd in [&["rejuvenate"][..], &["rollback"], &["upgrade"]] {
        let (code, out, err) = blinkctl(&sock, cmd)?;
        check!(
            run,
            code == 1
                && out.contains(&format!(
                    "'{}' changes the device's state and {REFUSED}",
                    cmd[0]
                ))
                && err.contains("production image and needs an operator session"),
            "{cmd:?} without a session: exit {code}: {err}{out}"
        );
    }
    // The development key is no operator key of this image.
    let (code, out, err) = blinkctl(&sock, &["--operator-key", wrong, "rejuvenate"])?;
    check!(
        run,
        code == 1 && err.contains("refused the operator key: not an operator key of this image"),
        "rejuvenate with the wrong key: exit {code}: {err}{out}"
    );
    // The console shell changes nothing either, and has no debug-*.
    focus_shell(&mut run, DEADLINE)?;
    run.send(b"rejuvenate\r")?;
    run.expect(
        &re(r"^\[hv\] refused: 'rejuvenate' changes state: on this production image only an authenticated operator session on the maintenance link may"),
        DEADLINE,
    )?;
    run.send(b"debug-leak 64\r")?;
    run.expect(&hv::unknown_command("debug-leak 64"), DEADLINE)?;
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.contains("generation 0,"),
        "status after the refusals: exit {code}: {err}{out}"
    );
    run.assert_absent(&any_reload())?;

    // An upload (the next build, signed with the development key, which
    // this test image trusts for uploads) needs a session too.
    let slot_file = signed_next(&format!("auth-v{gic}"))?;
    let slot = slot_file.to_str().unwrap();
    let (code, out, err) = blinkctl(&sock, &["upload", slot])?;
    check!(
        run,
        code == 1
            && err.contains("the device refused the upload: not allowed in this session")
            && err.contains("--operator-key"),
        "upload without a session: exit {code}: {err}{out}"
    );
    let (code, out, _) = blinkctl(&sock, &["images"])?;
    check!(
        run,
        code == 0 && re(r"(?m)^image slot 1 at .*: no image.* \[staged\]$").is_match(&out),
        "the staging slot changed after a refused upload: {out}"
    );
    let (code, out, err) = blinkctl(&sock, &["--operator-key", key, "upload", slot])?;
    check!(
        run,
        code == 0 && out.starts_with("uploaded "),
        "upload in a session: exit {code}: {err}{out}"
    );
    run.expect(
        &re(r"^\[hv\] upload: 'blink \S+\+next' \(version 0\.2\.0, security counter 5, development key\) staged in image slot 1$"),
        DEADLINE,
    )?;

    // The operator key: a session, and the reload happens.
    let last_beat = last_value(&run, beat);
    let (code, out, err) = blinkctl(&sock, &["--operator-key", key, "rejuvenate"])?;
    check!(
        run,
        code == 0 && out.contains("warm reload started"),
        "rejuvenate with the operator key: exit {code}: {err}{out}"
    );
    expect_reload_with_link(&mut run, last_beat)?;

    // The new image starts without a session.
    let (code, out, err) = blinkctl(&sock, &["rollback"])?;
    check!(
        run,
        code == 1 && out.contains(REFUSED),
        "rollback after the reload, without a session: exit {code}: {err}{out}"
    );
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.contains("generation 1,"),
        "status after the reload: exit {code}: {err}{out}"
    );
    run.assert_absent(&hv::tagged(&[
        hv::Tag::Fatal,
        hv::Tag::Panic,
        hv::Tag::Warn,
        hv::Tag::Error,
    ]))?;
    let _ = std::fs::remove_file(&sock);
    if let Some(dir) = slot_file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// The same image on cortex-a72, which has no FEAT_RNG: the nonces come
/// from counter jitter, said to be weak, and a session still opens (the
/// operator's `confirm` reaches the verb, which refuses for its own
/// reason: nothing is on trial).
fn weak_entropy(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let image = xtask::images::require_production_image()?;
    blinkctl_binary()?;
    let key = xtask::images::test_operator_key().with_extension("secret");
    let mut s = scenario(gic, [VmSpec::guest("domU0", "heartbeat")]);
    s.hypervisor = image;
    let sock = serial_socket(&mut s, &format!("auth-weak-v{gic}"))?;
    let mut run = start(&s)?;
    run.expect(&link_on(), DEADLINE)?;
    run.expect(
        &re(r"^\[hv\] operator sessions: challenge nonces from counter jitter and a per-boot value: WEAK entropy \(this CPU has no FEAT_RNG\)$"),
        DEADLINE,
    )?;
    run.expect(&heartbeat("domU0"), DEADLINE)?;
    wait_listening(&sock)?;
    let (code, out, err) = blinkctl(&sock, &["status", "--json"])?;
    check!(
        run,
        code == 0 && out.contains("\"entropy\":\"jitter\""),
        "status --json: exit {code}: {err}{out}"
    );
    let (code, out, err) = blinkctl(&sock, &["confirm"])?;
    check!(
        run,
        code == 1 && out.contains(REFUSED),
        "confirm without a session: exit {code}: {err}{out}"
    );
    let (code, out, err) = blinkctl(&sock, &["--operator-key", key.to_str().unwrap(), "confirm"])?;
    check!(
        run,
        code == 1 && out.contains("not on trial") && !out.contains(REFUSED),
        "confirm in a session: exit {code}: {err}{out}"
    );
    run.assert_absent(&any_reload())?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

mod rndr {
    use super::*;

    #[test]
    fn gicv3() -> anyhow::Result<()> {
        production(3)
    }
}

mod jitter {
    use super::*;

    #[test]
    fn gicv3() -> anyhow::Result<()> {
        weak_entropy(3)
    }
}
