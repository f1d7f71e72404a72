//! An upload over a simulated lossy line, host sender against device
//! receiver in one process: frames dropped, damaged and reordered at the
//! rates a test chooses, time in byte times (at 115200 baud 8N1 one tick
//! is 1/11520 s), so the figures are those of a real line apart from the
//! device's processing time.
use super::decoder::{Decoder, Event};
use super::proto::Message;
#[cfg(test)]
use super::proto::UploadError;
#[cfg(test)]
use super::receiver::ResumeState;
use super::receiver::{MemSlot, Receiver};
#[cfg(test)]
use super::sender::SenderConfig;
use super::sender::{SendError, Sender, SenderStats};
use alloc::vec::Vec;

pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*: deterministic, good enough to place faults.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Copy, Default)]
pub struct Faults {
    pub drop: f64,
    pub corrupt: f64,
    pub reorder: f64,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct LineStats {
    pub frames: u64,
    pub dropped: u64,
    pub corrupted: u64,
    pub reordered: u64,
}

/// One direction of a UART: one frame at a time, each taking its length
/// in ticks, arriving `latency` ticks after its last byte left.
struct Line {
    busy_until: u64,
    latency: u64,
    faults: Faults,
    in_flight: Vec<(u64, Vec<u8>)>,
    stats: LineStats,
}

impl Line {
    fn new(faults: Faults) -> Line {
        Line {
            busy_until: 0,
            latency: 20,
            faults,
            in_flight: Vec::new(),
            stats: LineStats::default(),
        }
    }

    fn send(&mut self, now: u64, mut bytes: Vec<u8>, rng: &mut Rng) {
        let start = now.max(self.busy_until);
        self.busy_until = start + bytes.len() as u64;
        let mut arrival = self.busy_until + self.latency;
        self.stats.frames += 1;
        if rng.chance(self.faults.drop) {
            self.stats.dropped += 1;
            return;
        }
        if rng.chance(self.faults.corrupt) {
            let i = rng.next_u64() as usize % bytes.len();
            bytes[i] ^= 1 + (rng.next_u64() % 255) as u8;
            self.stats.corrupted += 1;
        }
        if rng.chance(self.faults.reorder) {
            // Held back long enough for later frames to overtake it.
            arrival += 3 * bytes.len() as u64;
            self.stats.reordered += 1;
        }
        self.in_flight.push((arrival, bytes));
    }

    fn deliver(&mut self, now: u64) -> Vec<Vec<u8>> {
        self.in_flight.sort_by_key(|(t, _)| *t);
        let n = self.in_flight.iter().take_while(|(t, _)| *t <= now).count();
        self.in_flight.drain(..n).map(|(_, b)| b).collect()
    }
}

pub struct Run {
    pub outcome: Option<Result<(), SendError>>,
    pub ticks: u64,
    pub sender: SenderStats,
    pub up: LineStats,
    pub down: LineStats,
}

/// Runs `sender` against `receiver` until the upload ends or `stop` says
/// so (checked every tick; the cable is "pulled" then) or `limit` ticks.
pub fn run(
    sender: &mut Sender,
    receiver: &mut Receiver,
    slot: &mut MemSlot,
    faults: Faults,
    seed: u64,
    limit: u64,
    stop: &mut dyn FnMut(&Receiver) -> bool,
) -> Run {
    let mut rng = Rng(seed | 1);
    let (mut up, mut down) = (Line::new(faults), Line::new(faults));
    let (mut dev_dec, mut host_dec) = (Decoder::new(), Decoder::new());
    let mut now = 0;
    while now < limit && sender.outcome().is_none() && !stop(receiver) {
        if now >= up.busy_until {
            let mut buf = Vec::new();
            if sender.poll(now, &mut buf) {
                up.send(now, buf, &mut rng);
            }
        }
        for bytes in up.deliver(now) {
            for b in bytes {
                if let Some(Event::Frame(f)) = dev_dec.push(b) {
                    let Ok(m) = Message::from_frame(&f) else {
                        continue;
                    };
                    if let Some(r) = receiver.handle(&m, slot) {
                        let mut buf = Vec::new();
                        r.encode(&mut buf);
                        down.send(now, buf, &mut rng);
                    }
                }
            }
        }
        for bytes in down.deliver(now) {
            for b in bytes {
                if let Some(Event::Frame(f)) = host_dec.push(b) {
                    if let Ok(m) = Message::from_frame(&f) {
                        sender.on_message(&m, now);
                    }
                }
            }
        }
        now += 1;
    }
    Run {
        outcome: sender.outcome(),
        ticks: now,
        sender: sender.stats,
        up: up.stats,
        down: down.stats,
    }
}

/// Pseudo-random bytes that LZ4 cannot shrink much, with a compressible
/// tail (like a real image: code, then zero-filled tables).
pub fn image(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    (0..len)
        .map(|i| {
            if i < len * 3 / 4 {
                r.next_u64() as u8
            } else {
                (i / 512) as u8
            }
        })
        .collect()
}

#[cfg(test)]
const ONE_PERCENT: Faults = Faults {
    drop: 0.01,
    corrupt: 0.01,
    reorder: 0.01,
};

#[cfg(test)]
fn cfg(chunk: u16) -> SenderConfig {
    SenderConfig {
        chunk_size: chunk,
        window: 16,
        rto: 6 * chunk as u64 + 2000,
        max_tries: 8,
        compress: true,
        restart: false,
    }
}

#[test]
fn a_400_kib_image_arrives_intact_over_a_lossy_line() {
    let img = image(400 << 10, 7);
    for chunk in [1024u16, 4096] {
        let (mut retrans, mut chunks, mut ticks, mut wire) = (0, 0, 0, 0);
        let mut last = (LineStats::default(), LineStats::default());
        for seed in 1..=5u64 {
            let mut slot = MemSlot::new(4 << 20);
            let mut rx = Receiver::new();
            let mut tx = Sender::new(&img, cfg(chunk));
            let r = run(
                &mut tx,
                &mut rx,
                &mut slot,
                ONE_PERCENT,
                seed,
                50_000_000,
                &mut |_| false,
            );
            assert_eq!(r.outcome, Some(Ok(())), "chunk {chunk} seed {seed}");
            assert_eq!(&slot.bytes[..img.len()], &img[..]);
            assert!(slot.high_water <= img.len());
            assert!(rx.completed().is_some());
            retrans += r.sender.retransmissions;
            chunks += tx.total_chunks() as u64;
            ticks += r.ticks;
            wire += r.sender.wire_bytes;
            last = (r.up, r.down);
        }
        std::println!(
            "400 KiB, {chunk}-byte chunks, 1% loss + 1% corruption + 1% reordering, 5 runs: \
             {retrans} retransmissions for {chunks} chunks ({:.2}%), {:.1} s per upload at 115200 baud, \
             {:.3} wire bytes per image byte",
            100.0 * retrans as f64 / chunks as f64,
            ticks as f64 / 5.0 / 11520.0,
            wire as f64 / 5.0 / img.len() as f64
        );
        std::println!("  last run's lines: up {:?}, down {:?}", last.0, last.1);
        // About 2% of frames are lost or damaged; a resend costs one
        // frame, a lost acknowledgement nothing (the next one covers it).
        assert!(retrans * 100 <= chunks * 6, "{retrans} of {chunks}");
    }
}

#[test]
fn a_clean_line_needs_no_retransmission_and_runs_near_line_rate() {
    let img = image(400 << 10, 3);
    let mut slot = MemSlot::new(1 << 20);
    let mut rx = Receiver::new();
    let mut tx = Sender::new(&img, cfg(4096));
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        Faults::default(),
        1,
        10_000_000,
        &mut |_| false,
    );
    assert_eq!(r.outcome, Some(Ok(())));
    assert_eq!(r.sender.retransmissions, 0);
    // Every tick the uplink carried image payload or frame overhead:
    // the transfer takes no longer than its wire bytes plus one round trip.
    assert!(
        r.ticks <= r.sender.wire_bytes + 20_000,
        "{} {}",
        r.ticks,
        r.sender.wire_bytes
    );
    assert!(
        tx.payload_bytes() < img.len(),
        "the compressible tail shrinks"
    );
}

#[test]
fn a_harsh_line_still_gets_there() {
    let img = image(64 << 10, 5);
    let mut slot = MemSlot::new(1 << 20);
    let mut rx = Receiver::new();
    let mut tx = Sender::new(&img, cfg(1024));
    let faults = Faults {
        drop: 0.1,
        corrupt: 0.1,
        reorder: 0.1,
    };
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        faults,
        9,
        50_000_000,
        &mut |_| false,
    );
    assert_eq!(r.outcome, Some(Ok(())));
    assert_eq!(&slot.bytes[..img.len()], &img[..]);
}

/// The cable is pulled halfway; the device reloads itself, carrying only
/// `ResumeState` in its handoff block; a new `blinkctl upload` continues
/// from the verified prefix instead of from zero.
#[test]
fn an_upload_cut_midway_resumes_after_a_reload() {
    let img = image(400 << 10, 11);
    let mut slot = MemSlot::new(1 << 20);
    let mut rx = Receiver::new();
    let mut tx = Sender::new(&img, cfg(4096));
    let half = tx.total_chunks() / 2;
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        ONE_PERCENT,
        2,
        50_000_000,
        &mut |rx| rx.resume_state().is_some_and(|s| s.verified >= half),
    );
    assert_eq!(r.outcome, None);
    let saved = rx.resume_state().unwrap().to_bytes();

    let mut rx = Receiver::resume(ResumeState::from_bytes(&saved).unwrap());
    let mut tx = Sender::new(&img, cfg(4096));
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        ONE_PERCENT,
        3,
        50_000_000,
        &mut |_| false,
    );
    assert_eq!(r.outcome, Some(Ok(())));
    assert_eq!(&slot.bytes[..img.len()], &img[..]);
    assert_eq!(rx.stats.resumed, 1);
    let rest = (tx.total_chunks() - half) as u64;
    assert!(
        r.sender.data_frames <= rest + 10,
        "{} for {rest}",
        r.sender.data_frames
    );

    // Staging memory damaged across the reload: the prefix CRC no longer
    // matches and the upload starts over, still ending intact.
    let mut rx = Receiver::resume(ResumeState::from_bytes(&saved).unwrap());
    slot.bytes[100] ^= 0xff;
    let mut tx = Sender::new(&img, cfg(4096));
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        Faults::default(),
        4,
        50_000_000,
        &mut |_| false,
    );
    assert_eq!(r.outcome, Some(Ok(())));
    assert_eq!(rx.stats.resumed, 0);
    assert!(r.sender.data_frames >= tx.total_chunks() as u64);
    assert_eq!(&slot.bytes[..img.len()], &img[..]);
}

#[test]
fn a_second_client_is_refused_unless_it_restarts() {
    let a = image(20_000, 1);
    let b = image(30_000, 2);
    let mut slot = MemSlot::new(1 << 20);
    let mut rx = Receiver::new();
    let mut tx = Sender::new(&a, cfg(1024));
    run(
        &mut tx,
        &mut rx,
        &mut slot,
        Faults::default(),
        1,
        50_000_000,
        &mut |rx| rx.resume_state().is_some_and(|s| s.verified > 3),
    );
    let mut other = Sender::new(&b, cfg(1024));
    let r = run(
        &mut other,
        &mut rx,
        &mut slot,
        Faults::default(),
        1,
        50_000_000,
        &mut |_| false,
    );
    assert_eq!(r.outcome, Some(Err(SendError::Refused(UploadError::Busy))));
    let mut other = Sender::new(
        &b,
        SenderConfig {
            restart: true,
            ..cfg(1024)
        },
    );
    let r = run(
        &mut other,
        &mut rx,
        &mut slot,
        Faults::default(),
        1,
        50_000_000,
        &mut |_| false,
    );
    assert_eq!(r.outcome, Some(Ok(())));
    assert_eq!(&slot.bytes[..b.len()], &b[..]);
}

#[test]
fn no_answer_and_oversized_images_end_with_clear_errors() {
    let img = image(10_000, 1);
    let mut slot = MemSlot::new(1 << 20);
    let mut rx = Receiver::new();
    let mut tx = Sender::new(&img, cfg(1024));
    let dead = Faults {
        drop: 1.0,
        ..Faults::default()
    };
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        dead,
        1,
        50_000_000,
        &mut |_| false,
    );
    assert!(matches!(r.outcome, Some(Err(SendError::NoAnswer { .. }))));

    let mut small = MemSlot::new(4096);
    let mut tx = Sender::new(&img, cfg(1024));
    let r = run(
        &mut tx,
        &mut Receiver::new(),
        &mut small,
        Faults::default(),
        1,
        1_000_000,
        &mut |_| false,
    );
    assert_eq!(
        r.outcome,
        Some(Err(SendError::Refused(UploadError::TooLarge {
            len: 10_000,
            capacity: 4096
        })))
    );
    assert_eq!(small.high_water, 0);
}

/// The real hypervisor image as a signed slot would carry it, when one has
/// been built (`cargo xtask build`): time at 115200 baud from the bytes on
/// the wire, with and without compression, clean and at 1% faults.
#[test]
fn upload_time_of_the_hypervisor_image_at_115200() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/images/hypervisor.bin"
    );
    let Ok(raw) = std::fs::read(path) else {
        std::println!("skipped: no {path} (run `cargo xtask build` first)");
        return;
    };
    let slot = crate::image_slot::package("blink", "qemu-virt", &raw);
    for (compress, faults, what) in [
        (false, Faults::default(), "raw, clean line"),
        (true, Faults::default(), "LZ4, clean line"),
        (true, ONE_PERCENT, "LZ4, 1% loss+corruption+reordering"),
    ] {
        let mut mem = MemSlot::new(4 << 20);
        let mut rx = Receiver::new();
        let mut tx = Sender::new(
            &slot,
            SenderConfig {
                compress,
                ..cfg(4096)
            },
        );
        let r = run(
            &mut tx,
            &mut rx,
            &mut mem,
            faults,
            5,
            100_000_000,
            &mut |_| false,
        );
        assert_eq!(r.outcome, Some(Ok(())));
        assert_eq!(&mem.bytes[..slot.len()], &slot[..]);
        let s = r.ticks as f64 / 11520.0;
        std::println!(
            "hypervisor slot {} bytes, {what}: {} wire bytes, {} retransmissions, {:.1} s at 115200 baud = {:.0} image B/s",
            slot.len(),
            r.sender.wire_bytes,
            r.sender.retransmissions,
            s,
            slot.len() as f64 / s
        );
    }
}

/// Many short uploads under heavy faults, each with its own seed: no
/// combination of losses, damage and reordering may stall the protocol
/// or corrupt the image.
#[test]
fn many_seeds_never_stall() {
    let faults = Faults {
        drop: 0.05,
        corrupt: 0.05,
        reorder: 0.05,
    };
    for seed in 1..=200u64 {
        let img = image(20_000 + (seed as usize * 37) % 3000, seed);
        let mut slot = MemSlot::new(1 << 16);
        let mut rx = Receiver::new();
        let chunk = [64u16, 256, 1024, 4096][seed as usize % 4];
        let mut tx = Sender::new(&img, cfg(chunk));
        let r = run(
            &mut tx,
            &mut rx,
            &mut slot,
            faults,
            seed,
            20_000_000,
            &mut |_| false,
        );
        assert_eq!(r.outcome, Some(Ok(())), "seed {seed} chunk {chunk}");
        assert_eq!(&slot.bytes[..img.len()], &img[..], "seed {seed}");
    }
}

#[test]
fn a_retransmission_timeout_shorter_than_the_round_trip_adapts() {
    // blinkctl's 1 s on a socket is shorter than a round trip through a
    // queue (a console line, QEMU under -icount). Here the configured
    // timeout, 1,000 ticks, is a quarter of this line's round trip for an
    // incompressible 4 KiB chunk (~4,300 ticks). A fixed timeout resends
    // every such chunk and, once 5 timeouts pass without an
    // acknowledgement, gives up; the measured round trip takes over after
    // the first few timeouts (each doubling the timer until a sample).
    let img = image(400 << 10, 5);
    let mut slot = MemSlot::new(1 << 20);
    let mut rx = Receiver::new();
    let mut tx = Sender::new(
        &img,
        SenderConfig {
            rto: 1000,
            max_tries: 5,
            ..cfg(4096)
        },
    );
    let r = run(
        &mut tx,
        &mut rx,
        &mut slot,
        Faults::default(),
        1,
        20_000_000,
        &mut |_| false,
    );
    assert_eq!(
        r.outcome,
        Some(Ok(())),
        "{:?} ticks {} srtt {:?}",
        r.sender,
        r.ticks,
        tx.srtt()
    );
    assert_eq!(&slot.bytes[..img.len()], &img[..]);
    assert!(
        r.sender.retransmissions <= 4,
        "{} retransmissions for {} chunks",
        r.sender.retransmissions,
        tx.total_chunks()
    );
    let srtt = tx.srtt().unwrap_or(0);
    assert!(
        srtt > 0 && tx.rto() >= 2 * srtt,
        "rto {} srtt {srtt}",
        tx.rto()
    );
}
