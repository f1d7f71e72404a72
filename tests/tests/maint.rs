//! The maintenance link: blink drives the second PL011 (0x0904_0000, SPI 8),
//! here QEMU's serial on a Unix socket, and `blinkctl` (the real binary,
//! `target/debug/blinkctl`, built by `cargo xtask test` or `cargo build -p
//! blinkctl`) talks to it. `status` names the running build and the VMs;
//! `rejuvenate` reloads the hypervisor under the heartbeat guest, which
//! counts on, and the new image serves the link again; a burst of random
//! bytes (text and broken frames) is survived and the next `status` works.
//! The same `rejuvenate` under Linux; and without a second `-serial` the
//! link is off, said once.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tests::link::{
    blinkctl, blinkctl_binary, expect_reload_with_link, link_on, serial_socket, wait_listening,
};
use tests::*;

fn beat(line: &str) -> Option<u64> {
    heartbeat_n("domU0", line)
}

/// Deterministic noise (xorshift64*).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// The figures of the reply's `link: <t> text bytes, <f> frames, <e> bad
/// frames` line.
fn link_counts(status: &str) -> Option<(u64, u64, u64)> {
    let c = re(r"(?m)^link: (\d+) text bytes, (\d+) frames, (\d+) bad frames").captures(status)?;
    Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?))
}

fn maint(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    blinkctl_binary()?;
    let mut s = scenario(gic, [VmSpec::guest("domU0", "heartbeat")]);
    let sock = serial_socket(&mut s, &format!("maint-v{gic}"))?;
    let mut run = start(&s)?;
    let banner = run.expect(&hv::banner(2, gic), DEADLINE)?;
    let version = re(r"^\[hv\] (blink \S+) on ")
        .captures(&banner)
        .map(|c| c[1].to_string())
        .ok_or_else(|| anyhow::anyhow!("no version in {banner:?}"))?;
    run.expect(&link_on(), DEADLINE)?;
    run.expect(&started("domU0"), DEADLINE)?;
    run.expect(&heartbeat("domU0"), DEADLINE)?;
    wait_listening(&sock)?;

    // status: the running build and the VMs.
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(run, code == 0, "blinkctl status: exit {code}: {err}{out}");
    check!(
        run,
        out.starts_with(&format!("{version} on qemu-virt: ")),
        "status does not name {version}: {out}"
    );
    check!(
        run,
        out.contains("generation 0")
            && out.contains("; development image: anyone on the line may change state\n"),
        "status before any reload: {out}"
    );
    check!(
        run,
        re(r"(?m)^vm 0 'domU0': Running, 64 MiB at 0x[0-9a-f]+, 1 vCPUs$").is_match(&out),
        "status does not list the heartbeat VM: {out}"
    );
    let (code, out, _) = blinkctl(&sock, &["status", "--json"])?;
    check!(
        run,
        code == 0
            && out.contains(&format!("\"version\":\"{version}\""))
            && out.contains("\"name\":\"domU0\"")
            // A development image on cortex-a72 (no FEAT_RNG).
            && out.contains("\"production\":false,\"operator_keys\":0,\"entropy\":\"jitter\""),
        "status --json: exit {code}: {out}"
    );
    // `confirm` with no trial in progress is refused with a reason (exit 1).
    let (code, out, _) = blinkctl(&sock, &["confirm"])?;
    check!(
        run,
        code == 1 && out.contains("not on trial"),
        "confirm: exit {code}: {out}"
    );

    // rejuvenate: a warm reload under the heartbeat, the link back after it.
    let last_beat = last_value(&run, beat);
    let (code, out, err) = blinkctl(&sock, &["rejuvenate"])?;
    check!(
        run,
        code == 0,
        "blinkctl rejuvenate: exit {code}: {err}{out}"
    );
    check!(
        run,
        out.contains("warm reload started"),
        "rejuvenate answer: {out}"
    );
    // Asked at once, while the reload may still be under way: answered,
    // and by the new image (the old one leaves input for it).
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.contains("generation 1,"),
        "status right after rejuvenate: exit {code}: {err}{out}"
    );
    expect_reload_with_link(&mut run, last_beat)?;
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.contains("generation 1,"),
        "status after the reload: exit {code}: {err}{out}"
    );
    let before = link_counts(&out).ok_or_else(|| anyhow::anyhow!("no link line: {out}"))?;

    // Line noise: 8 KiB of random bytes straight onto the line (text for
    // the console, zeros opening frames that never check out), then a
    // valid command.
    let burst = noise(0x6d61_696e_7431_u64 ^ gic as u64, 8192);
    // Text up to the first zero; from there each zero closes a frame that
    // does not check out (a bad frame) and opens the next.
    let zeros = burst.iter().filter(|&&b| b == 0).count() as u64;
    {
        let mut line = UnixStream::connect(&sock)?;
        line.write_all(&burst)?;
        // Read what comes back (echo, error answers) until the line is
        // quiet, so that the device has taken all of it.
        line.set_read_timeout(Some(Duration::from_millis(500)))?;
        let mut buf = [0u8; 4096];
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until {
            match line.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.contains(&format!("{version} on qemu-virt: ")),
        "status after the noise: exit {code}: {err}{out}"
    );
    let after = link_counts(&out).ok_or_else(|| anyhow::anyhow!("no link line: {out}"))?;
    check!(
        run,
        after.0 > before.0 && after.2 >= before.2 + zeros / 2,
        "the noise ({zeros} zero bytes) did not reach the link: (text, frames, bad) {before:?} -> {after:?}"
    );
    more_heartbeats(&mut run, "domU0", 2, "heartbeats after the noise")?;
    run.assert_absent(&hv::tagged(&[
        hv::Tag::Fatal,
        hv::Tag::Panic,
        hv::Tag::Warn,
        hv::Tag::Error,
    ]))?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

/// QEMU with one `-serial`: no node for the maintenance UART; blink says
/// so once and puts the link on the console.
fn without_second_serial(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat"])?;
    let mut run = start(&scenario(gic, [VmSpec::guest("domU0", "heartbeat")]))?;
    run.expect(
        &re(r"^\[hv\] maintenance link on the console \(the device tree has no UART at 0x9040000 \(QEMU: give a second -serial\)\): blinkctl frames ride on it, typed text stays with the console; "),
        DEADLINE,
    )?;
    run.expect(&heartbeat("domU0"), DEADLINE)?;
    check!(
        run,
        run.find_all(&re(r"maintenance link")).len() == 1,
        "the link's state said more than once"
    );
    run.assert_absent(&hv::tagged(&[
        hv::Tag::Fatal,
        hv::Tag::Panic,
        hv::Tag::Warn,
        hv::Tag::Error,
    ]))?;
    Ok(())
}

const LINUX_DEADLINE: Duration = Duration::from_secs(240);

/// Linux (2 vCPUs) and the heartbeat: `blinkctl rejuvenate` under a
/// running kernel; its counter service counts on, same boot.
fn linux_rejuvenate(gic: u32) -> anyhow::Result<()> {
    xtask::linux::require()?;
    require_images(&["heartbeat"])?;
    blinkctl_binary()?;
    let mut s = scenario(
        gic,
        [
            VmSpec::linux("domU0").cpus(2),
            VmSpec::guest("domU1", "heartbeat"),
        ],
    );
    let sock = serial_socket(&mut s, &format!("maint-linux-v{gic}"))?;
    let mut run = start(&s)?;
    run.fail_on(re(tests::guest::LINUX_TROUBLE));
    run.expect(&link_on(), DEADLINE)?;
    run.expect(
        &re(r"^\[domU0\] init: ready uptime=[0-9.]+ cpus=2$"),
        LINUX_DEADLINE,
    )?;
    let counter = tests::guest::linux_counter_n;
    wait_beyond(&mut run, LINUX_DEADLINE, "Linux counting", counter, 1)?;
    wait_listening(&sock)?;
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0
            && re(r"(?m)^vm 0 'domU0': Running, \d+ MiB at 0x[0-9a-f]+, 2 vCPUs$").is_match(&out)
            && re(r"(?m)^vm 1 'domU1': Running, ").is_match(&out),
        "status with Linux: exit {code}: {err}{out}"
    );
    let last = last_value(&run, counter);
    let (code, out, err) = blinkctl(&sock, &["rejuvenate"])?;
    check!(
        run,
        code == 0,
        "blinkctl rejuvenate: exit {code}: {err}{out}"
    );
    run.expect(&hv::suspending(2, 1), DEADLINE)?;
    run.expect(&hv::reload_report(1, 2), DEADLINE)?;
    wait_beyond(
        &mut run,
        LINUX_DEADLINE,
        "Linux counting after the reload",
        counter,
        last + 2,
    )?;
    let counts: Vec<u64> = run.lines().iter().filter_map(|l| counter(l)).collect();
    reload::check_continuous(&run, "Linux counter", &counts)?;
    guest::check_started_once(&run, &re(r"^\[domU0\] init: ready"), "Linux")?;
    let (code, out, err) = blinkctl(&sock, &["status"])?;
    check!(
        run,
        code == 0 && out.contains("generation 1,"),
        "status after the reload: exit {code}: {err}{out}"
    );
    run.assert_absent(&hv::tagged(&[
        hv::Tag::Fatal,
        hv::Tag::Panic,
        hv::Tag::Error,
    ]))?;
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

mod link {
    use super::*;
    on_both_gics!(maint);
}

mod linux {
    use super::*;
    on_both_gics!(linux_rejuvenate);
}

mod no_link {
    use super::*;
    on_both_gics!(without_second_serial);
}
