//! `cargo xtask bench maint`: what an upload of the real hypervisor image
//! over the maintenance UART costs at 115200 baud, and an `upgrade` after it.
//!
//! Two sources, each for what it can measure:
//!
//! - the host simulation (`vmm::maint::sim`: the real sender against the
//!   real receiver, time in byte times of a 115200-baud 8N1 line) gives the
//!   bytes on the wire, with and without compression, and the
//!   retransmissions under 1% injected frame loss (fixed seeds);
//! - a QEMU run under `-icount shift=0` (counter ticks follow the
//!   instructions executed, 1 instruction = 1 ns) gives the device's
//!   processing time, as the hypervisor reports it after each upload
//!   (`upload timing ...`: every input byte's time in the link's endpoint,
//!   the final SHA-256, signature check and copy), and the warm reload of
//!   the `upgrade` that follows (`reload: ... request to resume N us`).
//!   QEMU's UART does not pace bytes, so the upload's wall-clock time there
//!   means nothing for a real line; its wire bytes are compared with the
//!   simulation's.
//!
//! The upload time at 115200 is then the simulated line time plus the
//! processing that cannot overlap it (see [`Device::not_overlapped_s`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use regex::Regex;

use vmm::maint::receiver::MemSlot;
use vmm::maint::sender::{Sender, SenderConfig};
use vmm::maint::sim::{self, Faults};

use super::hbar_chart;
use crate::{images, QemuRun, Scenario, VmSpec};

/// Bytes per second of a 115200-baud 8N1 line (10 bits a byte); one tick
/// of the simulation is one byte time.
const LINE_BPS: f64 = 11_520.0;
/// MCUmgr/SMP serial upload as measured on a real board: 3.08 KiB/s.
const MCUMGR_BPS: f64 = 3.08 * 1024.0;
/// U-Boot `loady` (YMODEM) at 115200: 7,883 B/s.
const YMODEM_BPS: f64 = 7_883.0;
/// The chunk size and window `blinkctl upload` uses by default.
const CHUNK: u16 = 4096;
const WINDOW: u32 = 16;
/// Seeds of the lossy runs (fixed: the same run every time).
const LOSSY_SEEDS: std::ops::RangeInclusive<u64> = 1..=10;
/// A real PL011's receive FIFO (32 bytes; QEMU models 16): how long the
/// device may be busy in one go before input is lost, at 115200.
const FIFO_BYTES: f64 = 32.0;
const QEMU_TIMEOUT: Duration = Duration::from_secs(600);

/// `blinkctl upload`'s sender on a 115200-baud serial line, in byte ticks:
/// its retransmission timer is 3 frame times + 0.5 s there.
fn sender_config(compress: bool) -> SenderConfig {
    let frame = vmm::maint::frame::wire_len_max(CHUNK as usize) as u64;
    SenderConfig {
        chunk_size: CHUNK,
        window: WINDOW,
        rto: 3 * frame + LINE_BPS as u64 / 2,
        max_tries: 5,
        compress,
        restart: false,
    }
}

/// One simulated upload.
struct SimRun {
    ticks: u64,
    wire_bytes: u64,
    payload_bytes: u64,
    data_frames: u64,
    retransmissions: u64,
    chunks: u64,
}

fn simulate(slot: &[u8], compress: bool, faults: Faults, seed: u64) -> Result<SimRun> {
    let mut mem = MemSlot::new(slot.len().next_power_of_two());
    let mut rx = vmm::maint::receiver::Receiver::new();
    let mut tx = Sender::new(slot, sender_config(compress));
    let r = sim::run(
        &mut tx,
        &mut rx,
        &mut mem,
        faults,
        seed,
        // An hour of line time: far beyond any upload that works.
        3600 * LINE_BPS as u64,
        &mut |_| false,
    );
    match r.outcome {
        Some(Ok(())) => {}
        other => bail!("simulated upload (compress {compress}, seed {seed}) ended {other:?}"),
    }
    ensure!(
        mem.bytes.get(..slot.len()) == Some(slot),
        "simulated upload (seed {seed}) arrived damaged"
    );
    Ok(SimRun {
        ticks: r.ticks,
        wire_bytes: r.sender.wire_bytes,
        payload_bytes: tx.payload_bytes() as u64,
        data_frames: r.sender.data_frames,
        retransmissions: r.sender.retransmissions,
        chunks: tx.total_chunks() as u64,
    })
}

/// min, mean, max.
fn spread(v: impl Iterator<Item = f64> + Clone) -> (f64, f64, f64) {
    let n = v.clone().count().max(1) as f64;
    (
        v.clone().fold(f64::INFINITY, f64::min),
        v.clone().sum::<f64>() / n,
        v.fold(f64::NEG_INFINITY, f64::max),
    )
}

/// The host side of one mode (raw or LZ4): a clean line and the lossy runs.
struct HostFigures {
    clean: SimRun,
    lossy: Vec<SimRun>,
}

/// The hypervisor's `upload timing at F Hz: bytes=.. data_frames=..
/// data_ticks=.. max_frame_ticks=.. finish_ticks=..` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub freq: u64,
    pub bytes: u64,
    pub data_frames: u64,
    pub data_ticks: u64,
    pub max_frame_ticks: u64,
    pub finish_ticks: u64,
}

impl Device {
    pub fn parse(line: &str) -> Option<Device> {
        let re = Regex::new(
            r"^\[hv\] upload timing at (\d+) Hz: bytes=(\d+) data_frames=(\d+) data_ticks=(\d+) max_frame_ticks=(\d+) finish_ticks=(\d+)$",
        )
        .ok()?;
        let c = re.captures(line)?;
        let n = |i: usize| c[i].parse::<u64>().ok();
        let d = Device {
            freq: n(1)?,
            bytes: n(2)?,
            data_frames: n(3)?,
            data_ticks: n(4)?,
            max_frame_ticks: n(5)?,
            finish_ticks: n(6)?,
        };
        (d.freq > 0).then_some(d)
    }

    fn secs(&self, ticks: u64) -> f64 {
        ticks as f64 / self.freq as f64
    }

    pub fn data_s(&self) -> f64 {
        self.secs(self.data_ticks)
    }

    pub fn max_frame_s(&self) -> f64 {
        self.secs(self.max_frame_ticks)
    }

    pub fn finish_s(&self) -> f64 {
        self.secs(self.finish_ticks)
    }

    /// The processing the line cannot hide. A Data frame is handled as its
    /// bytes arrive and at its end while the next frames are already on
    /// the line (the window keeps the line busy), so it overlaps the wire
    /// as long as it is shorter than a frame's wire time (checked by the
    /// caller). Not hidden: the last Data frame's (before its Ack; bounded
    /// here by the largest frame's) and Finish's (the host waits for Done).
    pub fn not_overlapped_s(&self) -> f64 {
        self.max_frame_s() + self.finish_s()
    }
}

/// What one `blinkctl upload` printed: `uploaded N bytes in X s (..): P
/// payload bytes (..), W on the wire, F frames, R retransmitted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolReport {
    pub bytes: u64,
    pub payload: u64,
    pub wire: u64,
    pub frames: u64,
    pub retransmitted: u64,
}

impl ToolReport {
    pub fn parse(out: &str) -> Option<ToolReport> {
        let re = Regex::new(
            r"uploaded (\d+) bytes in [0-9.]+ s \(\d+ B/s\): (\d+) payload bytes \([0-9.]+% of the image\), (\d+) on the wire, (\d+) frames, (\d+) retransmitted",
        )
        .ok()?;
        let c = re.captures(out)?;
        let n = |i: usize| c[i].parse::<u64>().ok();
        Some(ToolReport {
            bytes: n(1)?,
            payload: n(2)?,
            wire: n(3)?,
            frames: n(4)?,
            retransmitted: n(5)?,
        })
    }
}

/// `[hv] reload: generation G, N VMs resumed; request to resume R us, VMs
/// paused for P us; ...`: (R, P).
pub fn parse_reload(line: &str) -> Option<(u64, u64)> {
    let re = Regex::new(
        r"^\[hv\] reload: generation \d+, \d+ VMs resumed; request to resume (\d+) us, VMs paused for (\d+) us;",
    )
    .ok()?;
    let c = re.captures(line)?;
    Some((c[1].parse().ok()?, c[2].parse().ok()?))
}

/// What the QEMU run measured.
struct QemuFigures {
    /// Device timing and the tool's report: raw, then LZ4.
    uploads: [(Device, ToolReport); 2],
    /// The `upgrade` command's reply text, and the reload's request to
    /// resume / VMs paused, microseconds of counter time.
    upgrade_reply: String,
    /// The hypervisor's lines the figures were read from, as printed.
    lines: Vec<String>,
    reload_us: (u64, u64),
}

fn run_blinkctl(blinkctl: &Path, sock: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(blinkctl)
        .arg("-d")
        .arg(format!("unix:{}", sock.display()))
        .args(args)
        .output()
        .with_context(|| format!("running {}", blinkctl.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "blinkctl {}: {}: {}{}",
        args.join(" "),
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// `blinkctl sign`s the raw image into `out` (development key, counter 1,
/// `label` so that two signed copies differ in their SHA-256).
fn sign(blinkctl: &Path, raw: &Path, label: &str, out: &Path) -> Result<Vec<u8>> {
    let key = crate::workspace_root().join("keys/development.secret");
    let status = Command::new(blinkctl)
        .arg("sign")
        .arg("--key")
        .arg(&key)
        .arg("--image")
        .arg(raw)
        .args(["--version", "0.1.0", "--security-counter", "1"])
        .args(["--board", "qemu-virt", "--label", label, "--out"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running blinkctl sign")?;
    ensure!(status.success(), "blinkctl sign failed ({status})");
    std::fs::read(out).with_context(|| format!("reading {}", out.display()))
}

/// One QEMU run under icount: the heartbeat guest on 1 CPU (so nothing
/// else runs between two counter reads on CPU 0), the maintenance UART on
/// a Unix socket; the raw upload, the LZ4 upload, then `upgrade`.
fn qemu_run(blinkctl: &Path, slots: [&Path; 2], dir: &Path) -> Result<QemuFigures> {
    let mut s = Scenario::new(3)
        .smp(1)
        .vm(VmSpec::guest("domU0", "heartbeat").append_bootargs("heartbeat.report=quiet"));
    s.icount = true;
    let sock = dir.join(format!("maint-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    s.maint_uart_on_socket(&sock);
    eprintln!("bench maint: QEMU (icount, 1 CPU, heartbeat guest) ...");
    let mut run = QemuRun::start(&s)?;
    let r = drive(&mut run, blinkctl, slots, &sock);
    run.kill();
    let _ = std::fs::remove_file(&sock);
    r.with_context(|| run.report())
}

fn drive(
    run: &mut QemuRun,
    blinkctl: &Path,
    slots: [&Path; 2],
    sock: &Path,
) -> Result<QemuFigures> {
    // Not every ERROR: on 1 CPU the trial says it cannot catch a hang of
    // the trial image (no secondary CPU for its holding pen), as it should.
    run.fail_on(Regex::new(r"^\[hv\] (PANIC|ERROR: upload)")?);
    run.expect(&Regex::new(r"^\[hv\] maintenance link on ")?, QEMU_TIMEOUT)?;
    run.expect(&Regex::new(r"^\[domU0\] heartbeat: quiet: ")?, QEMU_TIMEOUT)?;
    let status = run_blinkctl(blinkctl, sock, &["status"])?;
    ensure!(status.contains("generation 0"), "blinkctl status: {status}");
    let timing = Regex::new(r"^\[hv\] upload timing at ")?;
    let mut uploads = Vec::new();
    let mut lines = Vec::new();
    for (slot, compress) in slots.iter().zip([false, true]) {
        let mode = if compress { "LZ4" } else { "raw" };
        eprintln!("bench maint: blinkctl upload ({mode}) ...");
        let path = slot.to_str().context("slot path is not UTF-8")?;
        // One chunk in flight: under -icount, 16 of them in a burst over
        // QEMU's socket get no answer at all (seen with main's image too;
        // 1 and 4 work). The window changes neither the wire bytes of a
        // clean line nor the device's work per frame, only the waiting.
        let mut args = vec!["upload", path, "--window", "1"];
        if !compress {
            args.push("--no-compress");
        }
        let out = run_blinkctl(blinkctl, sock, &args)?;
        let tool = ToolReport::parse(&out)
            .with_context(|| format!("blinkctl upload printed no report: {out}"))?;
        let line = run.expect(&timing, QEMU_TIMEOUT)?;
        let dev = Device::parse(&line).with_context(|| format!("unreadable: {line}"))?;
        lines.push(line);
        ensure!(
            dev.bytes == tool.bytes,
            "the device timed an upload of {} bytes, blinkctl sent {}",
            dev.bytes,
            tool.bytes
        );
        uploads.push((dev, tool));
    }
    eprintln!("bench maint: blinkctl upgrade ...");
    let upgrade_reply = run_blinkctl(blinkctl, sock, &["upgrade"])?;
    let line = run.expect(
        &Regex::new(r"^\[hv\] reload: generation 1, ")?,
        QEMU_TIMEOUT,
    )?;
    let reload_us = parse_reload(&line).with_context(|| format!("unreadable: {line}"))?;
    lines.push(line);
    let [raw, lz4]: [(Device, ToolReport); 2] = uploads
        .try_into()
        .map_err(|_| anyhow::anyhow!("two uploads expected"))?;
    Ok(QemuFigures {
        uploads: [raw, lz4],
        upgrade_reply,
        lines,
        reload_us,
    })
}

/// Wire bytes of the `upgrade` command and its answer (one Command frame,
/// the Reply frames of `reply`).
fn upgrade_exchange_bytes(reply: &str) -> u64 {
    use vmm::maint::proto::Message;
    let mut out = Vec::new();
    Message::Command {
        seq: 1,
        line: b"upgrade",
    }
    .encode(&mut out);
    for (i, part) in reply
        .as_bytes()
        .chunks(vmm::maint::frame::MAX_PAYLOAD)
        .enumerate()
    {
        Message::Reply {
            seq: 1,
            last: (i + 1) * vmm::maint::frame::MAX_PAYLOAD >= reply.len(),
            refused: false,
            text: part,
        }
        .encode(&mut out);
    }
    out.len() as u64
}

/// `cargo xtask bench maint`; `blinkctl` is the built tool.
pub fn maint(blinkctl: &Path) -> Result<()> {
    let raw_path = images::require_hypervisor_image()?;
    images::require_guest_image("heartbeat")?;
    let dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let work: PathBuf = dir.join("maint");
    std::fs::create_dir_all(&work)?;
    let raw_image = std::fs::read(&raw_path)?;
    // Two signed copies that differ only in their label: the device
    // answers a second upload of an image it already holds without any
    // Data frame, so each mode uploads its own.
    let slot_raw = work.join("hypervisor-raw.slot");
    let slot_lz4 = work.join("hypervisor-lz4.slot");
    let bytes = sign(blinkctl, &raw_path, "blink bench raw", &slot_raw)?;
    let bytes_lz4 = sign(blinkctl, &raw_path, "blink bench lz4", &slot_lz4)?;
    ensure!(
        bytes.len() == bytes_lz4.len(),
        "the two signed slots differ in length"
    );

    eprintln!(
        "bench maint: host simulation, {} seeds at 1% frame loss ...",
        LOSSY_SEEDS.count()
    );
    let loss = Faults {
        drop: 0.01,
        ..Faults::default()
    };
    let mut host = Vec::new();
    for compress in [false, true] {
        let clean = simulate(&bytes, compress, Faults::default(), 1)?;
        let lossy = LOSSY_SEEDS
            .map(|seed| simulate(&bytes, compress, loss, seed))
            .collect::<Result<Vec<_>>>()?;
        host.push(HostFigures { clean, lossy });
    }
    let q = qemu_run(blinkctl, [&slot_raw, &slot_lz4], &work)?;

    let img = bytes.len() as f64;
    let mut t = String::new();
    writeln!(
        t,
        "\nUpload of the hypervisor image over the maintenance UART at 115200 baud 8N1"
    )?;
    writeln!(
        t,
        "image: {} ({} B), signed slot {} B; chunks of {CHUNK} B, window {WINDOW}",
        raw_path.display(),
        raw_image.len(),
        bytes.len()
    )?;
    writeln!(
        t,
        "wire: host simulation (vmm::maint::sim, byte times of the line, 20-byte-time latency each way)"
    )?;
    writeln!(
        t,
        "device: QEMU virt -icount shift=0, 1 CPU (counter ticks = instructions at 1 ns), the hypervisor's `upload timing` line\n"
    )?;
    writeln!(t, "{:<50} {:>14} {:>14}", "", "raw", "LZ4")?;
    let row = |t: &mut String, name: &str, a: String, b: String| {
        let _ = writeln!(t, "{name:<50} {a:>14} {b:>14}");
    };
    let both = |f: &dyn Fn(usize) -> String| (f(0), f(1));
    let (a, b) = both(&|i| format!("{}", host[i].clean.payload_bytes));
    row(&mut t, "frame payload bytes", a, b);
    let (a, b) = both(&|i| format!("{}", host[i].clean.wire_bytes));
    row(&mut t, "wire bytes, clean line", a, b);
    let (a, b) = both(&|i| format!("{}", q.uploads[i].1.wire));
    row(&mut t, "wire bytes, QEMU socket (blinkctl)", a, b);
    let (a, b) = both(&|i| format!("{:.4}", host[i].clean.wire_bytes as f64 / img));
    row(&mut t, "wire bytes per image byte", a, b);
    let (a, b) = both(&|i| {
        format!(
            "{:.4}",
            host[i].clean.wire_bytes as f64 / host[i].clean.payload_bytes as f64
        )
    });
    row(&mut t, "wire bytes per frame payload byte", a, b);
    let (a, b) = both(&|i| format!("{:.2}", host[i].clean.ticks as f64 / LINE_BPS));
    row(&mut t, "line time, clean line (s)", a, b);
    let seeds = LOSSY_SEEDS.count();
    let (a, b) = both(&|i| {
        let (lo, mean, hi) = spread(host[i].lossy.iter().map(|r| r.retransmissions as f64));
        format!("{lo:.0}/{mean:.1}/{hi:.0}")
    });
    row(
        &mut t,
        &format!("1% lost each way, {seeds} seeds: resent min/mean/max"),
        a,
        b,
    );
    let (a, b) = both(&|i| {
        let r = &host[i].lossy;
        let re: u64 = r.iter().map(|r| r.retransmissions).sum();
        let chunks: u64 = r.iter().map(|r| r.chunks).sum();
        format!("{:.2}%", 100.0 * re as f64 / chunks as f64)
    });
    row(&mut t, "  resent per chunk", a, b);
    let (a, b) = both(&|i| {
        let (_, mean, _) = spread(host[i].lossy.iter().map(|r| r.data_frames as f64));
        format!("{mean:.1}")
    });
    row(&mut t, "  data frames sent, mean", a, b);
    let (a, b) = both(&|i| {
        let (_, mean, hi) = spread(host[i].lossy.iter().map(|r| r.wire_bytes as f64 / img));
        format!("{mean:.4}/{hi:.4}")
    });
    row(&mut t, "  wire bytes per image byte, mean/max", a, b);
    let (a, b) = both(&|i| {
        let (lo, mean, hi) = spread(host[i].lossy.iter().map(|r| r.ticks as f64 / LINE_BPS));
        format!("{lo:.1}/{mean:.1}/{hi:.1}")
    });
    row(&mut t, "  line time min/mean/max (s)", a, b);
    let (a, b) = both(&|i| format!("{}", q.uploads[i].0.data_frames));
    row(&mut t, "device: data frames handled", a, b);
    let (a, b) = both(&|i| {
        let d = &q.uploads[i].0;
        format!("{:.1}", d.data_s() * 1e9 / d.bytes as f64)
    });
    row(&mut t, "device: instructions per image byte", a, b);
    let (a, b) = both(&|i| format!("{:.1}", 1e3 * q.uploads[i].0.data_s()));
    row(&mut t, "device: data frames, total (ms)", a, b);
    let (a, b) = both(&|i| format!("{:.3}", 1e3 * q.uploads[i].0.max_frame_s()));
    row(&mut t, "device: largest one frame (ms)", a, b);
    let (a, b) = both(&|i| format!("{:.1}", 1e3 * q.uploads[i].0.finish_s()));
    row(
        &mut t,
        "device: Finish: SHA-256, signature, copy (ms)",
        a,
        b,
    );
    let upload_s =
        |i: usize| host[i].clean.ticks as f64 / LINE_BPS + q.uploads[i].0.not_overlapped_s();
    let serial_s = |i: usize| {
        host[i].clean.ticks as f64 / LINE_BPS + q.uploads[i].0.data_s() + q.uploads[i].0.finish_s()
    };
    let (a, b) = both(&|i| format!("{:.2}", upload_s(i)));
    row(
        &mut t,
        "upload time at 115200 (s) = line + not hidden",
        a,
        b,
    );
    let (a, b) = both(&|i| format!("{:.2}", serial_s(i)));
    row(&mut t, "  if no processing overlapped the wire (s)", a, b);
    let (a, b) = both(&|i| format!("{:.0}", img / upload_s(i)));
    row(&mut t, "image bytes per second", a, b);

    // Overlap holds only if no frame keeps the device busier than the line.
    let frame_wire_s = vmm::maint::frame::wire_len_max(CHUNK as usize) as f64 / LINE_BPS;
    let fifo_s = FIFO_BYTES / LINE_BPS;
    let worst = q
        .uploads
        .iter()
        .map(|u| u.0.max_frame_s())
        .fold(0.0, f64::max);
    writeln!(
        t,
        "\nnot hidden: the last Data frame (bounded by the largest) and Finish, which the host waits for; \
         every other frame's processing overlaps the wire (largest {:.3} ms against {:.0} ms for a frame \
         on the line{})",
        1e3 * worst,
        1e3 * frame_wire_s,
        if worst < fifo_s {
            format!(
                "; also below the {:.1} ms a 32-byte PL011 FIFO takes to fill, so no input is lost while a frame is finished",
                1e3 * fifo_s
            )
        } else {
            format!(
                "; ABOVE the {:.1} ms a 32-byte PL011 FIFO takes to fill: input may be lost on a real line",
                1e3 * fifo_s
            )
        }
    )?;
    ensure!(
        worst < frame_wire_s,
        "a frame's processing ({worst} s) exceeds its wire time: the overlap assumed does not hold"
    );

    let exchange = upgrade_exchange_bytes(&q.upgrade_reply);
    let (request_us, paused_us) = q.reload_us;
    let upgrade_s = exchange as f64 / LINE_BPS + request_us as f64 * 1e-6;
    writeln!(
        t,
        "\n`upgrade` (icount): command and answer {exchange} wire bytes = {:.1} ms at 115200, \
         reload request to resume {:.2} ms (VMs paused {:.2} ms): {:.3} s",
        1e3 * exchange as f64 / LINE_BPS,
        request_us as f64 / 1e3,
        paused_us as f64 / 1e3,
        upgrade_s
    )?;
    writeln!(
        t,
        "end to end, upload (LZ4) + upgrade: {:.2} s; raw: {:.2} s (the trial's confirm not included)",
        upload_s(1) + upgrade_s,
        upload_s(0) + upgrade_s
    )?;

    writeln!(
        t,
        "\nthe hypervisor's lines (raw upload, LZ4 upload, upgrade):"
    )?;
    for l in &q.lines {
        writeln!(t, "  {l}")?;
    }

    writeln!(t, "\nThe same {} B at each rate", bytes.len())?;
    writeln!(t, "{:<36} {:>12} {:>12}", "", "image B/s", "upload s")?;
    let anchors = [
        ("blink, LZ4 (line + device)".to_string(), img / upload_s(1)),
        ("blink, raw (line + device)".to_string(), img / upload_s(0)),
        ("the line: 115200 8N1".to_string(), LINE_BPS),
        ("U-Boot loady (YMODEM)".to_string(), YMODEM_BPS),
        ("MCUmgr/SMP serial".to_string(), MCUMGR_BPS),
    ];
    for (name, bps) in &anchors {
        writeln!(t, "{name:<36} {bps:>12.0} {:>12.1}", img / bps)?;
    }
    print!("{t}");
    std::fs::write(dir.join("maint.txt"), &t)?;

    // Both series: the line alone (wire time) and with the device's
    // processing; the anchors' rates include everything, so they are equal.
    let wire_only = |i: usize| img / (host[i].clean.ticks as f64 / LINE_BPS);
    let rows = vec![
        ("blink LZ4".to_string(), wire_only(1), img / upload_s(1)),
        ("blink raw".to_string(), wire_only(0), img / upload_s(0)),
        ("line 115200 8N1".to_string(), LINE_BPS, LINE_BPS),
        ("YMODEM (loady)".to_string(), YMODEM_BPS, YMODEM_BPS),
        ("MCUmgr/SMP".to_string(), MCUMGR_BPS, MCUMGR_BPS),
    ];
    let svg = hbar_chart(
        "Image upload at 115200 baud, image bytes/s",
        ("wire time only", "with device processing"),
        &rows,
    );
    let path = dir.join("maint.svg");
    std::fs::write(&path, svg)?;
    println!(
        "\nwrote {} and {}",
        dir.join("maint.txt").display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_line_parses() {
        let d = Device::parse("[hv] upload timing at 1000000000 Hz: bytes=409600 data_frames=100 data_ticks=5000000 max_frame_ticks=60000 finish_ticks=20000000").unwrap();
        assert_eq!(d.data_frames, 100);
        assert!((d.data_s() - 0.005).abs() < 1e-12);
        assert!((d.not_overlapped_s() - 0.02006).abs() < 1e-12);
        assert_eq!(Device::parse("[hv] upload timing at 0 Hz: bytes=1 data_frames=1 data_ticks=1 max_frame_ticks=1 finish_ticks=1"), None);
        assert_eq!(Device::parse("[hv] upload timing at 1 Hz: bytes=1"), None);
    }

    #[test]
    fn tool_report_parses() {
        let r = ToolReport::parse("uploaded 401664 bytes in 2.3 s (174636 B/s): 306000 payload bytes (76.2% of the image), 307500 on the wire, 101 frames, 0 retransmitted\n").unwrap();
        assert_eq!(
            (r.bytes, r.payload, r.wire, r.frames, r.retransmitted),
            (401_664, 306_000, 307_500, 101, 0)
        );
        assert_eq!(ToolReport::parse("uploaded x bytes"), None);
    }

    #[test]
    fn reload_line_parses() {
        let l = "[hv] reload: generation 1, 1 VMs resumed; request to resume 2500 us, VMs paused for 1300 us; requested->quiesced 10 us";
        assert_eq!(parse_reload(l), Some((2500, 1300)));
        assert_eq!(parse_reload("[hv] reload: generation 1"), None);
    }

    #[test]
    fn the_upgrade_exchange_is_two_small_frames() {
        let n = upgrade_exchange_bytes("upgrade: warm reload started\n");
        // Two frames: headers, CRCs, COBS and delimiters around 36 bytes.
        assert!(n > 7 + 29 && n < 7 + 29 + 2 * 20, "{n}");
    }
}
