//! The host's side of an upload: a sliding window of chunks, resending
//! only what the device's selective acknowledgements say is missing.
//!
//! Time is in *ticks* the caller chooses (milliseconds in `blinkctl`, byte
//! times in the simulated line of the tests), so the logic is tested
//! without clocks. A chunk is sent again when
//! - its retransmission timer runs out without an acknowledgement (the
//!   configured `rto`, or twice the measured round trip if longer,
//!   doubled after each timeout until a new measurement: see
//!   [`Sender::rto`]), or
//! - three chunks sent after it have been acknowledged while it has not
//!   (it was lost or damaged; waiting for its timer would stall the
//!   window). Three, not one, so a merely reordered frame is not resent.
//!
//! `Begin` and `Finish` are resent on their timer too; after `max_tries`
//! timeouts in a row without progress the upload ends with
//! [`SendError::NoAnswer`]. A device that lost the upload (`NoSession`,
//! e.g. it restarted without resume state) gets a new `Begin`, which also
//! resumes from its verified prefix.
use super::compress;
use super::proto::{Ack, Begin, Message, UploadError, BEGIN_RESTART};
use super::receiver::WINDOW;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderConfig {
    /// Bytes of image per chunk (64..=4096).
    pub chunk_size: u16,
    /// Chunks in flight beyond the first unacknowledged one (<= 64).
    pub window: u32,
    /// Retransmission timeout, in ticks.
    pub rto: u64,
    /// Timeouts in a row without progress before giving up.
    pub max_tries: u32,
    /// Send chunks as LZ4 blocks where that makes them smaller.
    pub compress: bool,
    /// Replace an upload of another image in progress on the device.
    pub restart: bool,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            chunk_size: 4096,
            window: 16,
            rto: 2000,
            max_tries: 5,
            compress: true,
            restart: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The device said no.
    Refused(UploadError),
    /// No answer after `max_tries` timeouts (waiting for `what`).
    NoAnswer { what: &'static str },
    /// The device acknowledged an upload of another length.
    Mismatch { chunks: u32, expected: u32 },
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::Refused(e) => write!(f, "the device refused the upload: {e}"),
            SendError::NoAnswer { what } => write!(f, "no answer from the device ({what})"),
            SendError::Mismatch { chunks, expected } => write!(
                f,
                "the device acknowledged an upload of {chunks} chunks, this one has {expected}"
            ),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SenderStats {
    /// Frames handed to the line, of every kind.
    pub frames: u64,
    /// Data frames, first sends and resends.
    pub data_frames: u64,
    /// Data frames sent again.
    pub retransmissions: u64,
    /// Of those, sent again because their timer ran out.
    pub timeouts: u64,
    /// Bytes handed to the line (frames as encoded).
    pub wire_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Begin,
    Data,
    Finish,
    Done(Result<(), SendError>),
}

struct Chunk {
    bytes: Vec<u8>,
    compressed: bool,
}

pub struct Sender {
    cfg: SenderConfig,
    begin: Begin,
    chunks: Vec<Chunk>,
    phase: Phase,
    /// First chunk the device has not acknowledged cumulatively.
    next: u32,
    acked: Vec<bool>,
    /// Send number (a counter over all data frames) of each chunk's last
    /// send; 0 = never sent.
    sent_no: Vec<u64>,
    sent_at: Vec<u64>,
    /// Chunks sent more than once (their acknowledgement says nothing
    /// about the round trip: Karn's rule).
    resent: Vec<bool>,
    /// Smoothed round trip of chunks sent once, from send to
    /// acknowledgement (None: no sample yet).
    srtt: Option<u64>,
    /// Timeouts since the last round-trip sample: each doubles the
    /// timeout (up to 16x), as TCP does, or a line slower than the
    /// configured timeout would never yield a sample.
    backoff: u32,
    /// Timeouts since the last chunk was acknowledged.
    timeouts_in_row: u32,
    sends: u64,
    /// Highest send number among acknowledged chunks.
    acked_no: u64,
    /// First chunk never sent.
    unsent: u32,
    resend: VecDeque<u32>,
    /// When Begin/Finish was last sent, and timeouts in a row.
    control_at: Option<u64>,
    tries: u32,
    /// Begins sent again because the device lost track.
    resyncs: u32,
    pub stats: SenderStats,
}

impl Sender {
    /// An upload of `image` (the whole slot content: header page and image).
    pub fn new(image: &[u8], cfg: SenderConfig) -> Sender {
        let chunk = (cfg.chunk_size as usize).clamp(64, 4096);
        let chunks: Vec<Chunk> = image
            .chunks(chunk)
            .map(|raw| {
                match cfg
                    .compress
                    .then(|| compress::compress_chunk(raw))
                    .flatten()
                {
                    Some(bytes) => Chunk {
                        bytes,
                        compressed: true,
                    },
                    None => Chunk {
                        bytes: raw.to_vec(),
                        compressed: false,
                    },
                }
            })
            .collect();
        let n = chunks.len();
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&Sha256::digest(image));
        Sender {
            cfg: SenderConfig {
                window: cfg.window.clamp(1, WINDOW),
                ..cfg
            },
            begin: Begin {
                total_len: image.len() as u32,
                chunk_size: chunk as u16,
                flags: if cfg.restart { BEGIN_RESTART } else { 0 },
                sha256,
            },
            chunks,
            phase: Phase::Begin,
            next: 0,
            acked: alloc::vec![false; n],
            sent_no: alloc::vec![0; n],
            sent_at: alloc::vec![0; n],
            resent: alloc::vec![false; n],
            srtt: None,
            backoff: 0,
            timeouts_in_row: 0,
            sends: 0,
            acked_no: 0,
            unsent: 0,
            resend: VecDeque::new(),
            control_at: None,
            tries: 0,
            resyncs: 0,
            stats: SenderStats::default(),
        }
    }

    pub fn total_chunks(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// Bytes of payload the image takes on the wire (compressed chunks).
    pub fn payload_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes.len()).sum()
    }

    /// Image bytes the device has acknowledged (for a progress bar).
    pub fn acked_bytes(&self) -> u64 {
        let chunk = self.begin.chunk_size as u64;
        let n = self.acked.iter().filter(|&&a| a).count() as u64;
        (n * chunk).min(self.begin.total_len as u64)
    }

    /// `Some` once the upload has ended, either way.
    pub fn outcome(&self) -> Option<Result<(), SendError>> {
        match self.phase {
            Phase::Done(r) => Some(r),
            _ => None,
        }
    }

    /// The next frame to put on the line at `now`, appended to `out`;
    /// false if there is nothing to send yet (wait for an answer or a
    /// timer; call again later).
    pub fn poll(&mut self, now: u64, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        match self.phase {
            Phase::Done(_) => return false,
            Phase::Begin => {
                if !self.control_due(now, "the upload's start") {
                    return false;
                }
                Message::Begin(self.begin).encode(out);
            }
            Phase::Finish => {
                if !self.control_due(now, "the image's digest check") {
                    return false;
                }
                Message::Finish.encode(out);
            }
            Phase::Data => {
                let Some(i) = self.next_chunk(now) else {
                    return false;
                };
                self.sends += 1;
                self.resent[i as usize] |= self.sent_no[i as usize] != 0;
                self.sent_no[i as usize] = self.sends;
                self.sent_at[i as usize] = now;
                let c = &self.chunks[i as usize];
                Message::Data {
                    index: i,
                    compressed: c.compressed,
                    bytes: &c.bytes,
                }
                .encode(out);
                self.stats.data_frames += 1;
            }
        }
        self.stats.frames += 1;
        self.stats.wire_bytes += (out.len() - start) as u64;
        true
    }

    /// Whether Begin/Finish is due (first time, or its timer ran out).
    fn control_due(&mut self, now: u64, what: &'static str) -> bool {
        match self.control_at {
            Some(t) if now < t + self.cfg.rto => false,
            Some(_) if self.tries >= self.cfg.max_tries => {
                self.phase = Phase::Done(Err(SendError::NoAnswer { what }));
                false
            }
            t => {
                if t.is_some() {
                    self.tries += 1;
                }
                self.control_at = Some(now);
                true
            }
        }
    }

    fn next_chunk(&mut self, now: u64) -> Option<u32> {
        while let Some(i) = self.resend.pop_front() {
            if !self.acked[i as usize] {
                self.stats.retransmissions += 1;
                return Some(i);
            }
        }
        // The oldest chunk in flight whose timer ran out.
        let rto = self.rto();
        let timed_out = (self.next..self.unsent).find(|&i| {
            let i = i as usize;
            !self.acked[i] && now >= self.sent_at[i] + rto
        });
        if let Some(i) = timed_out {
            // Each timeout in a row has doubled the timer: `max_tries` of
            // them without an acknowledgement in between is a dead line
            // (about 31 times the timeout), not a slow one.
            if self.timeouts_in_row >= self.cfg.max_tries {
                self.phase = Phase::Done(Err(SendError::NoAnswer {
                    what: "acknowledgements",
                }));
                return None;
            }
            self.stats.retransmissions += 1;
            self.stats.timeouts += 1;
            self.backoff = (self.backoff + 1).min(4);
            self.timeouts_in_row += 1;
            return Some(i);
        }
        if self.unsent < self.total_chunks() && self.unsent < self.next + self.cfg.window {
            self.unsent += 1;
            return Some(self.unsent - 1);
        }
        None
    }

    /// An answer from the device.
    pub fn on_message(&mut self, m: &Message<'_>, now: u64) {
        match (*m, self.phase) {
            (_, Phase::Done(_)) => {}
            (
                Message::Refused(UploadError::NoSession | UploadError::Incomplete { .. }),
                Phase::Data | Phase::Finish,
            ) if self.resyncs < self.cfg.max_tries => {
                // The device forgot the upload, or has less than it said:
                // say Begin again, which resumes from whatever prefix it
                // still trusts.
                self.resyncs += 1;
                self.phase = Phase::Begin;
                self.control_at = None;
            }
            (Message::Refused(e), _) => self.phase = Phase::Done(Err(SendError::Refused(e))),
            (Message::Ack(a), Phase::Begin) => {
                if a.chunks != self.total_chunks() {
                    self.phase = Phase::Done(Err(SendError::Mismatch {
                        chunks: a.chunks,
                        expected: self.total_chunks(),
                    }));
                    return;
                }
                self.tries = 0;
                self.phase = Phase::Data;
                // The device's word is the truth now (after a reload it may
                // trust less than it acknowledged before): what it has is
                // done, everything else is sent afresh.
                let n = self.chunks.len();
                self.acked = alloc::vec![false; n];
                self.sent_no = alloc::vec![0; n];
                self.resent = alloc::vec![false; n];
                self.next = 0;
                self.unsent = 0;
                self.acked_no = 0;
                self.resend.clear();
                self.apply_ack(&a, now);
                // The device answered: no timeout so far counts against it.
                self.timeouts_in_row = 0;
                self.after_ack();
            }
            (Message::Ack(a), Phase::Data) if a.chunks == self.total_chunks() => {
                self.apply_ack(&a, now);
                self.after_ack();
            }
            (Message::Done(Ok(())), Phase::Finish) => self.phase = Phase::Done(Ok(())),
            (Message::Done(Err(e)), _) => self.phase = Phase::Done(Err(SendError::Refused(e))),
            _ => {}
        }
    }

    fn after_ack(&mut self) {
        if self.next == self.total_chunks() && self.phase == Phase::Data {
            self.phase = Phase::Finish;
            self.control_at = None;
            self.tries = 0;
        }
    }

    /// The retransmission timeout: the configured one, or twice the
    /// smoothed round trip if that is longer. A line that queues (a
    /// socket into a slow device, a console shared with text, QEMU under
    /// `-icount`) holds a whole window for longer than a frame takes on
    /// the wire; a fixed timeout then resends frames that are only
    /// waiting, which queues more, until nothing is acknowledged in time.
    pub fn rto(&self) -> u64 {
        self.base_rto() << self.backoff
    }

    /// The smoothed round trip measured so far, in ticks.
    pub fn srtt(&self) -> Option<u64> {
        self.srtt
    }

    fn base_rto(&self) -> u64 {
        self.cfg
            .rto
            .max(self.srtt.map_or(0, |s| s.saturating_mul(2)))
    }

    fn mark(&mut self, i: u32, now: u64) {
        let i = i as usize;
        if i < self.acked.len() && !self.acked[i] {
            if !self.resent[i] && self.sent_no[i] != 0 {
                let sample = now.saturating_sub(self.sent_at[i]);
                self.srtt = Some(match self.srtt {
                    None => sample,
                    Some(s) => (7 * s + sample) / 8,
                });
                self.backoff = 0;
            }
            self.acked[i] = true;
            self.acked_no = self.acked_no.max(self.sent_no[i]);
            self.timeouts_in_row = 0;
        }
    }

    fn apply_ack(&mut self, a: &Ack, now: u64) {
        let next = a.next.min(self.total_chunks());
        for i in self.next..next {
            self.mark(i, now);
        }
        self.next = self.next.max(next);
        for k in 0..64 {
            if a.bits & (1 << k) != 0 {
                self.mark(next + 1 + k, now);
            }
        }
        while (self.next as usize) < self.acked.len() && self.acked[self.next as usize] {
            self.next += 1;
        }
        self.unsent = self.unsent.max(self.next);
        // Presumed lost: sent, not acknowledged, and three chunks sent
        // after it were.
        for i in self.next..self.unsent {
            let iu = i as usize;
            if !self.acked[iu]
                && self.sent_no[iu] != 0
                && self.sent_no[iu] + 3 <= self.acked_no
                && !self.resend.contains(&i)
            {
                self.resend.push_back(i);
            }
        }
    }
}
