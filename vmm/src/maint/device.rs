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
                    Ok(text) => out.extend_from_slice(text.as_bytes()),
                    Err(why) => {
                        out.extend_from_slice(b"error: ");
                        out.extend_from_slice(why.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maint::receiver::MemSlot;
    use alloc::vec;

    /// Answers like the control path would, and records what it ran.
    #[derive(Default)]
    struct Fake(Vec<Command>);
    impl Control for Fake {
        fn run(&mut self, cmd: Command) -> Result<String, String> {
            self.0.push(cmd);
            match cmd {
                Command::Upgrade { .. } => Err(String::from("upgrade: no staged image")),
                Command::Log => Ok("x".repeat(MAX_PAYLOAD + 10)),
                _ => Ok(alloc::format!("{cmd:?}")),
            }
        }
        fn entropy(&mut self) -> [u8; 32] {
            [self.0.len() as u8; 32]
        }
    }

    fn feed(e: &mut Endpoint, c: &mut Fake, bytes: &[u8]) -> (Vec<u8>, Vec<Notice>) {
        let mut slot = MemSlot::new(1 << 16);
        let mut out = Vec::new();
        let notes = bytes
            .iter()
            .filter_map(|&b| e.push(b, 0, &mut slot, c, &mut out))
            .collect();
        (out, notes)
    }

    fn frames(bytes: &[u8]) -> Vec<(u32, bool, bool, Vec<u8>)> {
        let mut d = Decoder::new();
        let mut v = Vec::new();
        for &b in bytes {
            if let Some(Event::Frame(f)) = d.push(b) {
                if let Ok(Message::Reply {
                    seq,
                    last,
                    refused,
                    text,
                }) = Message::from_frame(&f)
                {
                    v.push((seq, last, refused, text.to_vec()));
                }
            }
        }
        v
    }

    #[test]
    fn a_person_types_commands() {
        let mut e = Endpoint::new(Receiver::new());
        let mut c = Fake::default();
        let (out, _) = feed(
            &mut e,
            &mut c,
            b"staus\x08\x08tus --json\r\r\nupgrade\rfoo\r",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Status { json: true }"), "{text}");
        assert!(text.contains("error: upgrade: no staged image"));
        assert!(text.contains("error: unknown command 'foo'"));
        // Echo, with the erased characters rubbed out.
        assert!(text.starts_with("staus\x08 \x08\x08 \x08tus --json\r\n"));
        assert_eq!(c.0.len(), 2);
        // An over-long line is refused as a whole, not cut and run.
        let mut long = vec![b'a'; MAX_LINE + 5];
        long.push(b'\r');
        let (out, _) = feed(&mut e, &mut c, &long);
        assert!(String::from_utf8(out).unwrap().contains("longer than 128"));
        assert_eq!(c.0.len(), 2);
    }

    #[test]
    fn the_tool_gets_framed_replies_on_the_same_line() {
        let mut e = Endpoint::new(Receiver::new());
        e.echo = false;
        let mut c = Fake::default();
        let mut input = b"help\r".to_vec();
        for (seq, line) in [(1, &b"status"[..]), (2, b"upgrade"), (3, b"log"), (4, b"")] {
            Message::Command { seq, line }.encode(&mut input);
        }
        let (out, _) = feed(&mut e, &mut c, &input);
        let f = frames(&out);
        assert_eq!(f[0], (1, true, false, b"Status { json: false }".to_vec()));
        assert_eq!(f[1], (2, true, true, b"upgrade: no staged image".to_vec()));
        // A long answer in two frames, the last marked.
        assert_eq!((f[2].0, f[2].1, f[2].3.len()), (3, false, MAX_PAYLOAD));
        assert_eq!((f[3].0, f[3].1, f[3].3.len()), (3, true, 10));
        assert_eq!(f[4], (4, true, false, vec![]));
        // The person's line was answered as text before the frames.
        assert!(out.starts_with(b"Help\r\n"));
    }

    #[test]
    fn uploads_are_noticed_once_and_half_frames_dropped_when_quiet() {
        use crate::maint::proto::Begin;
        use sha2::{Digest, Sha256};
        let img = vec![5u8; 300];
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&Sha256::digest(&img));
        let mut input = Vec::new();
        Message::Begin(Begin {
            total_len: 300,
            chunk_size: 256,
            flags: 0,
            sha256,
        })
        .encode(&mut input);
        for (i, part) in img.chunks(256).enumerate() {
            Message::Data {
                index: i as u32,
                compressed: false,
                bytes: part,
            }
            .encode(&mut input);
        }
        Message::Finish.encode(&mut input);
        Message::Finish.encode(&mut input);
        let mut e = Endpoint::new(Receiver::new());
        let mut c = Fake::default();
        let (_, notes) = feed(&mut e, &mut c, &input);
        assert!(matches!(&notes[..], [Notice::UploadComplete(s)] if s.total_len == 300));

        let mut slot = MemSlot::new(1024);
        let mut out = Vec::new();
        for &b in &input[..10] {
            e.push(b, 1000, &mut slot, &mut c, &mut out);
        }
        assert_eq!(e.tick(1100), None);
        assert_eq!(e.tick(1500), Some(Notice::BadFrame(FrameError::Truncated)));
    }

    #[test]
    fn a_production_endpoint_wants_an_operator_for_state_changes() {
        use crate::maint::auth;
        use crate::maint::signed::public_key;
        let op = [4u8; 32];
        let mut e = Endpoint::new(Receiver::new());
        e.echo = false;
        e.access = Some(Access {
            operators: vec![TrustedKey {
                public: public_key(&op),
                development: false,
            }],
            board: String::from("qemu-virt"),
        });
        let mut c = Fake::default();
        let mut slot = MemSlot::new(1 << 16);
        let mut talk = |e: &mut Endpoint, c: &mut Fake, m: Message<'_>| {
            let mut input = Vec::new();
            m.encode(&mut input);
            let mut out = Vec::new();
            for &b in &input {
                e.push(b, 5, &mut slot, c, &mut out);
            }
            out
        };
        // Reading is open, changing is not; uploads neither.
        let out = talk(
            &mut e,
            &mut c,
            Message::Command {
                seq: 1,
                line: b"status",
            },
        );
        assert!(!frames(&out)[0].2);
        let out = talk(
            &mut e,
            &mut c,
            Message::Command {
                seq: 2,
                line: b"rejuvenate",
            },
        );
        let f = &frames(&out)[0];
        assert!(f.2 && String::from_utf8_lossy(&f.3).contains("'rejuvenate' changes"));
        assert_eq!(c.0, vec![Command::Status { json: false }]);
        let out = talk(&mut e, &mut c, Message::Abort);
        assert!(out.ends_with(&{
            let mut v = Vec::new();
            Message::Refused(UploadError::NotAllowed).encode(&mut v);
            v
        }));
        // A person typing is refused the same way.
        let mut out = Vec::new();
        let mut other = MemSlot::new(16);
        for &b in b"reboot\r" {
            e.push(b, 5, &mut other, &mut c, &mut out);
        }
        assert!(String::from_utf8_lossy(&out).contains("needs an authenticated session"));

        // The challenge, answered by the operator.
        let out = talk(&mut e, &mut c, Message::AuthRequest);
        let mut d = Decoder::new();
        let (nonce, board) = out
            .iter()
            .find_map(|&b| match d.push(b) {
                Some(Event::Frame(f)) => match Message::from_frame(&f) {
                    Ok(Message::Challenge { nonce, board }) => Some((nonce, board.to_vec())),
                    _ => None,
                },
                _ => None,
            })
            .unwrap();
        assert_eq!(board, b"qemu-virt");
        let wrong = auth::respond(&[5; 32], &nonce, "qemu-virt");
        let out = talk(&mut e, &mut c, Message::AuthResponse(wrong));
        let mut v = Vec::new();
        Message::AuthResult(Err(auth::AuthError::UnknownOperator)).encode(&mut v);
        assert_eq!(out, v);
        // The failed answer used the nonce up: ask again.
        let out = talk(&mut e, &mut c, Message::AuthRequest);
        let mut d = Decoder::new();
        let nonce = out
            .iter()
            .find_map(|&b| match d.push(b) {
                Some(Event::Frame(f)) => match Message::from_frame(&f) {
                    Ok(Message::Challenge { nonce, .. }) => Some(nonce),
                    _ => None,
                },
                _ => None,
            })
            .unwrap();
        let out = talk(
            &mut e,
            &mut c,
            Message::AuthResponse(auth::respond(&op, &nonce, "qemu-virt")),
        );
        let mut v = Vec::new();
        Message::AuthResult(Ok(())).encode(&mut v);
        assert_eq!(out, v);
        let out = talk(
            &mut e,
            &mut c,
            Message::Command {
                seq: 3,
                line: b"rejuvenate",
            },
        );
        assert!(!frames(&out)[0].2);
        assert_eq!(c.0.last(), Some(&Command::Rejuvenate));
    }

    #[test]
    fn a_command_sent_again_is_answered_again_not_run_twice() {
        let mut e = Endpoint::new(Receiver::new());
        let mut c = Fake::default();
        let mut input = Vec::new();
        Message::Command {
            seq: 7,
            line: b"rejuvenate",
        }
        .encode(&mut input);
        let (first, _) = feed(&mut e, &mut c, &input);
        let (again, _) = feed(&mut e, &mut c, &input);
        assert_eq!(first, again);
        assert_eq!(c.0, vec![Command::Rejuvenate]);
        // Another sequence number, or another line, runs.
        let mut input = Vec::new();
        Message::Command {
            seq: 8,
            line: b"rejuvenate",
        }
        .encode(&mut input);
        Message::Command {
            seq: 8,
            line: b"status",
        }
        .encode(&mut input);
        feed(&mut e, &mut c, &input);
        assert_eq!(c.0.len(), 3);
    }
}
