//! The device's end of the link in one place, so the hypervisor only
//! moves bytes: UART input goes to [`Endpoint::push`], whatever lands in
//! `out` goes to the UART's output. It joins the pieces:
//!
//! - text bytes (a person at a terminal) are echoed and collected into a
//!   line; a complete line is parsed and run, the answer printed as text;
//! - a `Command` frame (the tool) is parsed and run the same way, the
//!   answer sent back as `Reply` frames; the same command again (same
//!   sequence number and line: the tool resends when an answer is lost)
//!   gets the same answer without running twice;
//! - upload frames go to the [`Receiver`], its answers back as frames.
//!
//! Both kinds of command reach the caller's [`Control`] as one typed
//! [`Command`], so the shell and the tool share one path and one refusal
//! path. Time is in the caller's ticks (only used to drop a half frame
//! after the line was quiet for `idle_ticks`).
use super::auth::Authenticator;
use super::command::{self, Command, ParseError, MAX_LINE};
use super::decoder::{Decoder, Event};
use super::frame::{FrameError, MAX_PAYLOAD};
use super::proto::Message;
use super::proto::UploadError;
use super::receiver::{Receiver, ResumeState, StagingSlot};
use super::signed::TrustedKey;
use alloc::string::String;
use alloc::vec::Vec;

/// What runs a command: the hypervisor's control verbs.
pub trait Control {
    /// Runs `cmd`: the answer's text, or why it was refused.
    fn run(&mut self, cmd: Command) -> Result<String, String>;
    /// 32 unpredictable bytes for an authentication challenge.
    fn entropy(&mut self) -> [u8; 32];
}

/// Who may change the device's state: the operator keys built into the
/// image, and this board's name (signed into each session). An endpoint
/// without one accepts anyone (a development image, which says so).
#[derive(Debug, Clone)]
pub struct Access {
    pub operators: Vec<TrustedKey>,
    pub board: String,
}

/// What the caller may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An upload just finished with its digest matching: check the
    /// signature, then stage the image.
    UploadComplete(ResumeState),
    /// Bytes that were not a frame (for the link's counters).
    BadFrame(FrameError),
}

/// A console line being typed.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes typed past `MAX_LINE` (the line is refused at its end).
    overflow: usize,
}

impl LineBuffer {
    /// One text byte; a complete line (without its ending) at CR or LF.
    /// Backspace and DEL erase; other control bytes are dropped.
    pub fn push(&mut self, b: u8) -> Option<Result<Vec<u8>, ParseError>> {
        match b {
            b'\r' | b'\n' => {
                let over = core::mem::take(&mut self.overflow);
                let line = core::mem::take(&mut self.buf);
                Some(if over > 0 {
                    Err(ParseError::TooLong {
                        len: line.len() + over,
                    })
                } else {
                    Ok(line)
                })
            }
            0x08 | 0x7f => {
                if self.overflow > 0 {
                    self.overflow -= 1;
                } else {
                    self.buf.pop();
                }
                None
            }
            0x20..=0x7e | b'\t' if self.buf.len() < MAX_LINE => {
                self.buf.push(b);
                None
            }
            0x20..=0x7e | b'\t' => {
                self.overflow += 1;
                None
            }
            _ => None,
        }
    }
}

pub struct Endpoint {
    decoder: Decoder,
    pub receiver: Receiver,
    line: LineBuffer,
    /// Echo typed text (a terminal expects it; off for tests and scripts).
    pub echo: bool,
    /// A half frame is dropped after this many ticks without input.
    pub idle_ticks: u64,
    last_input: u64,
    /// The last framed command and the frames that answered it: a
    /// command sent again (its answer was lost) is answered again, not
    /// run twice.
    last_command: Option<(u32, Vec<u8>, Vec<u8>)>,
    /// `None`: anyone may change state.
    pub access: Option<Access>,
    /// Challenge and session lifetimes are in the caller's ticks.
    pub auth: Authenticator,
}

impl Endpoint {
    pub fn new(receiver: Receiver) -> Endpoint {
        Endpoint {
            decoder: Decoder::new(),
            receiver,
            line: LineBuffer::default(),
            echo: true,
            idle_ticks: 500,
            last_input: 0,
            last_command: None,
            access: None,
            auth: Authenticator::new(30_000, 600_000),
        }
    }

    /// Runs `cmd` if this session may, else says why not.
    fn run<C: Control>(&self, cmd: Command, now: u64, control: &mut C) -> Result<String, String> {
        if self.auth.allows(&cmd, self.access.is_none(), now) {
            control.run(cmd)
        } else {
            Err(alloc::format!(
                "'{}' changes the device's state and needs an authenticated session \
                 (blinkctl --operator-key)",
                cmd.verb()
            ))
        }
    }

    /// Whether the decoder is inside a frame: on a line shared with a
    /// console (a board with one UART), the bytes that belong to the
    /// link are a 0x00 and everything until the frame ends.
    pub fn in_frame(&self) -> bool {
        self.decoder.is_open()
    }

    /// Counters of the decoder (text bytes, frames, errors).
    pub fn decoder_stats(&self) -> super::decoder::DecoderStats {
        self.decoder.stats
    }

    /// Call now and then (e.g. from the UART's poll): drops a half frame
    /// once the line has been quiet for `idle_ticks`.
    pub fn tick(&mut self, now: u64) -> Option<Notice> {
        if self.decoder.in_frame() && now.saturating_sub(self.last_input) >= self.idle_ticks {
            return self.decoder.idle().map(Notice::BadFrame);
        }
        None
    }

    /// One byte from the UART; bytes to send back are appended to `out`.
    pub fn push<S: StagingSlot, C: Control>(
        &mut self,
        b: u8,
        now: u64,
        slot: &mut S,
        control: &mut C,
        out: &mut Vec<u8>,
    ) -> Option<Notice> {
        self.last_input = now;
        match self.decoder.push(b)? {
            Event::Error(e) => Some(Notice::BadFrame(e)),
            Event::Text(t) => {
                if self.echo {
                    match t {
                        b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
                        0x08 | 0x7f => out.extend_from_slice(b"\x08 \x08"),
                        0x20..=0x7e => out.push(t),
                        _ => {}
                    }
                }
                let line = self.line.push(t)?;
                let answer = match line.and_then(|l| command::parse(&l)) {
                    Ok(None) => return None,
                    Ok(Some(cmd)) => self.run(cmd, now, control),
                    Err(e) => Err(alloc::format!("{e}")),
                };
                match answer {
                    Ok(text) => crlf(text.as_bytes(), out),
                    Err(why) => {
                        out.extend_from_slice(b"error: ");
                        crlf(why.as_bytes(), out);
                    }
                }
                if !out.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
                None
            }
            Event::Frame(f) => {
                let Ok(m) = Message::from_frame(&f) else {
                    return None;
                };
                match m {
                    Message::Command { seq, line } => {
                        // Copied: it borrows the decoder, and running the
                        // command needs the whole endpoint.
                        let line = line.to_vec();
                        if let Some((s, l, frames)) = &self.last_command {
                            if *s == seq && *l == line {
                                out.extend_from_slice(frames);
                                return None;
                            }
                        }
                        let answer = match command::parse(&line) {
                            Ok(Some(cmd)) => self.run(cmd, now, control),
                            Ok(None) => Ok(String::new()),
                            Err(e) => Err(alloc::format!("{e}")),
                        };
                        let mut frames = Vec::new();
                        reply(seq, answer, &mut frames);
                        out.extend_from_slice(&frames);
                        self.last_command = Some((seq, line, frames));
                        return None;
                    }
                    Message::AuthRequest => {
                        match &self.access {
                            None => Message::AuthResult(Ok(())).encode(out),
                            Some(a) => Message::Challenge {
                                nonce: self.auth.challenge(control.entropy(), now),
                                board: a.board.as_bytes(),
                            }
                            .encode(out),
                        }
                        return None;
                    }
                    Message::AuthResponse(r) => {
                        let result = match &self.access {
                            None => Ok(()),
                            Some(a) => self.auth.verify(&r, &a.operators, &a.board, now),
                        };
                        Message::AuthResult(result).encode(out);
                        return None;
                    }
                    Message::Begin(_) | Message::Data { .. } | Message::Finish | Message::Abort
                        if self.access.is_some() && self.auth.operator(now).is_none() =>
                    {
                        Message::Refused(UploadError::NotAllowed).encode(out);
                        return None;
                    }
                    _ => {}
                }
                let was_complete = self.receiver.completed().is_some();
                if let Some(r) = self.receiver.handle(&m, slot) {
                    r.encode(out);
                }
                match self.receiver.completed() {
                    Some(s) if !was_complete => Some(Notice::UploadComplete(*s)),
                    _ => None,
                }
            }
        }
    }
}

/// An answer's text for a terminal: each `\n` becomes `\r\n` (answers
/// are written with `\n`, as they go into `Reply` frames unchanged).
fn crlf(text: &[u8], out: &mut Vec<u8>) {
    let mut prev = 0u8;
    for &b in text {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

/// `Reply` frames for an answer, split to fit frames.
fn reply(seq: u32, answer: Result<String, String>, out: &mut Vec<u8>) {
    let (text, refused) = match &answer {
        Ok(t) => (t.as_bytes(), false),
        Err(t) => (t.as_bytes(), true),
    };
    let mut parts = text.chunks(MAX_PAYLOAD).peekable();
    if parts.peek().is_none() {
        Message::Reply {
            seq,
            last: true,
            refused,
            text: &[],
        }
        .encode(out);
    }
    while let Some(p) = parts.next() {
        Message::Reply {
            seq,
            last: parts.peek().is_none(),
            refused,
            text: p,
        }
        .encode(out);
    }
}
