//! One conversation with a device: console commands as frames, and
//! uploads driven by `vmm::maint::sender` with a millisecond clock.
//!
//! Text the device prints between frames (its console) is kept in
//! `console`, so a person's terminal output and the tool's frames can
//! share one line without confusing either.
use crate::exit::{Code, Failure, Result, Tag};
use crate::link::{self, Link};
use anyhow::anyhow;
use std::io::Write;
use std::time::{Duration, Instant};
use vmm::maint::decoder::{Decoder, Event};
use vmm::maint::proto::Message;
use vmm::maint::sender::{SendError, Sender, SenderConfig};

pub struct Session {
    link: Link,
    decoder: Decoder,
    seq: u32,
    start: Instant,
    /// When the line will have sent what was written so far (ms since
    /// `start`), for links whose rate is known.
    line_free_at: f64,
    /// How long a command waits for its answer.
    pub answer_timeout: Duration,
    /// Console text that arrived between frames.
    pub console: Vec<u8>,
}

/// A command's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub refused: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct UploadReport {
    pub image_bytes: u64,
    /// Image bytes as sent (compressed chunks).
    pub payload_bytes: u64,
    /// Every byte handed to the line, frames and retransmissions included.
    pub wire_bytes: u64,
    pub frames: u64,
    pub retransmissions: u64,
    pub elapsed: Duration,
}

impl Session {
    pub fn new(link: Link, answer_timeout: Duration) -> Session {
        // Sequence numbers start somewhere new in every run: the device
        // answers a repeated (seq, line) from its memory instead of running
        // it again, which must not catch the next run's first command.
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        Session {
            link,
            decoder: Decoder::new(),
            seq,
            start: Instant::now(),
            line_free_at: 0.0,
            answer_timeout,
            console: Vec::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.link.stream.write_all(bytes).link()?;
        self.link.stream.flush().link()?;
        if let Some(baud) = self.link.baud {
            // 8N1: ten bit times per byte.
            let ms = bytes.len() as f64 * 10_000.0 / baud as f64;
            self.line_free_at = self.line_free_at.max(self.now_ms() as f64) + ms;
        }
        Ok(())
    }

    /// One read (at most `link::POLL` of waiting); each message decoded
    /// goes to `on_msg`, text to `console`.
    fn pump(&mut self, mut on_msg: impl FnMut(&Message<'_>)) -> Result<()> {
        let mut buf = [0u8; 4096];
        let n = link::read_some(&mut *self.link.stream, &mut buf).link()?;
        for &b in &buf[..n] {
            match self.decoder.push(b) {
                Some(Event::Text(t)) => self.console.push(t),
                Some(Event::Frame(f)) => {
                    if let Ok(m) = Message::from_frame(&f) {
                        on_msg(&m);
                    }
                }
                Some(Event::Error(_)) | None => {}
            }
        }
        Ok(())
    }

    fn no_answer(&self, what: &str) -> Failure {
        let heard = if self.console.is_empty() {
            String::from("nothing came back at all")
        } else {
            format!(
                "{} bytes of console text came back, but no frame",
                self.console.len()
            )
        };
        Failure::new(
            Code::NoAnswer,
            anyhow!(
                "no answer from {} to {what} within {:.1} s ({heard}). Is blink running there \
                 with its maintenance link on this line? (It is off when a VM owns that UART \
                 or the board has none: see the hypervisor's console.)",
                self.link.name,
                self.answer_timeout.as_secs_f64()
            ),
        )
    }

    /// Runs one console command on the device and returns its answer.
    pub fn command(&mut self, line: &str) -> Result<Reply> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut out = Vec::new();
        Message::Command {
            seq,
            line: line.as_bytes(),
        }
        .encode(&mut out);
        self.send(&out)?;
        let start = Instant::now();
        let deadline = start + self.answer_timeout;
        // Resent (same seq) while no answer came: a lost command or a lost
        // answer costs a retry, not the whole timeout; the device runs it
        // once and answers a repeat from memory.
        let retry = (self.answer_timeout / 3).max(Duration::from_millis(100));
        let mut next_retry = start + retry;
        let mut text = Vec::new();
        let mut refused = None;
        while refused.is_none() && Instant::now() < deadline {
            if Instant::now() >= next_retry && text.is_empty() {
                self.send(&out)?;
                next_retry += retry;
            }
            self.pump(|m| {
                if let Message::Reply {
                    seq: s,
                    last,
                    refused: r,
                    text: t,
                } = *m
                {
                    if s == seq {
                        text.extend_from_slice(t);
                        if last {
                            refused = Some(r);
                        }
                    }
                }
            })?;
        }
        match refused {
            None => Err(self.no_answer(&format!("'{line}'"))),
            Some(refused) => Ok(Reply {
                text: String::from_utf8_lossy(&text).into_owned(),
                refused,
            }),
        }
    }

    /// Opens an authenticated session with the operator key `seed`
    /// (a device that accepts anyone says so at once).
    pub fn authenticate(&mut self, seed: &[u8; 32]) -> Result<()> {
        let mut out = Vec::new();
        Message::AuthRequest.encode(&mut out);
        self.send(&out)?;
        let mut challenge = None;
        let mut result = None;
        let deadline = Instant::now() + self.answer_timeout;
        while challenge.is_none() && result.is_none() && Instant::now() < deadline {
            self.pump(|m| match *m {
                Message::Challenge { nonce, board } => {
                    challenge = Some((nonce, String::from_utf8_lossy(board).into_owned()))
                }
                Message::AuthResult(r) => result = Some(r),
                _ => {}
            })?;
        }
        if let Some((nonce, board)) = challenge {
            let r = vmm::maint::auth::respond(seed, &nonce, &board);
            out.clear();
            Message::AuthResponse(r).encode(&mut out);
            self.send(&out)?;
            let deadline = Instant::now() + self.answer_timeout;
            while result.is_none() && Instant::now() < deadline {
                self.pump(|m| {
                    if let Message::AuthResult(r) = *m {
                        result = Some(r);
                    }
                })?;
            }
        }
        match result {
            None => Err(self.no_answer("the session request")),
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Failure::new(
                Code::Refused,
                anyhow!("the device refused the operator key: {e}"),
            )),
        }
    }

    /// Retransmission timeout for this link: a few frame times on a
    /// paced serial line, a second on a socket.
    pub fn default_rto_ms(&self, chunk_size: u16) -> u64 {
        match self.link.baud {
            Some(baud) => {
                let frame_ms = vmm::maint::frame::wire_len_max(chunk_size as usize) as u64 * 10_000
                    / baud as u64;
                3 * frame_ms + 500
            }
            None => 1000,
        }
    }

    /// Uploads `slot` (a signed slot's whole content) into the device's
    /// staging slot. `progress` gets the bytes acknowledged so far.
    pub fn upload(
        &mut self,
        slot: &[u8],
        cfg: SenderConfig,
        mut progress: impl FnMut(u64),
    ) -> Result<UploadReport> {
        let started = Instant::now();
        let mut tx = Sender::new(slot, cfg);
        let mut buf = Vec::new();
        let outcome = loop {
            let now = self.now_ms();
            if now as f64 >= self.line_free_at {
                buf.clear();
                if tx.poll(now, &mut buf) {
                    self.send(&buf)?;
                }
            }
            // Timed after the send, which blocks while the line (or the
            // queue in front of a slow device) is full: answers read now
            // arrived now, not when the loop began.
            let now = self.now_ms();
            self.pump(|m| tx.on_message(m, now))?;
            progress(tx.acked_bytes());
            if let Some(r) = tx.outcome() {
                break r;
            }
        };
        match outcome {
            Ok(()) => Ok(UploadReport {
                image_bytes: slot.len() as u64,
                payload_bytes: tx.payload_bytes() as u64,
                wire_bytes: tx.stats.wire_bytes,
                frames: tx.stats.frames,
                retransmissions: tx.stats.retransmissions,
                elapsed: started.elapsed(),
            }),
            Err(SendError::NoAnswer { what }) => Err(self.no_answer(what)),
            Err(e @ SendError::Refused(vmm::maint::proto::UploadError::NotAllowed)) => {
                Err(Failure::new(
                    Code::Refused,
                    anyhow!(
                        "{e} (a production image takes uploads only in an operator session: \
                         give --operator-key FILE or BLINK_OPERATOR_KEY)"
                    ),
                ))
            }
            Err(e) => Err(Failure::new(Code::Refused, anyhow!("{e}"))),
        }
    }
}
