//! The streaming decoder: one byte at a time off the UART, text and frames
//! told apart.
//!
//! Outside a frame every byte but 0x00 is text for the line console; a
//! 0x00 opens a frame, the next 0x00 closes it. Consecutive zeros are
//! empty frames and ignored (senders put two between frames). When the
//! bytes between two zeros are not a valid frame (noise, a frame whose
//! start was lost), the closing zero is taken as the opening of the next
//! frame, so one lost frame costs only itself; a valid frame returns the
//! decoder to text. A frame can never swallow text for long: past
//! [`MAX_ENCODED`] bytes without a zero, or when the caller reports the
//! line quiet ([`Decoder::idle`], the way MCUboot's raw mode drops half
//! packets after an input timeout), the partial frame is dropped with a
//! typed error and the decoder is back in text mode.
use super::frame::{self, Frame, FrameError, DELIMITER, MAX_ENCODED};
use alloc::vec::Vec;

/// What one input byte amounted to.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A byte for the line console.
    Text(u8),
    /// A complete, checked frame.
    Frame(Frame<'a>),
    /// Bytes dropped, and why.
    Error(FrameError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    InFrame,
}

/// Counters for `status` and the benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecoderStats {
    pub text_bytes: u64,
    pub frames: u64,
    pub errors: u64,
}

pub struct Decoder {
    state: State,
    buf: Vec<u8>,
    pub stats: DecoderStats,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Text,
            buf: Vec::with_capacity(MAX_ENCODED),
            stats: DecoderStats::default(),
        }
    }

    /// True while bytes of a frame are being collected (the console should
    /// not echo, a sender should not interleave text).
    pub fn in_frame(&self) -> bool {
        self.state == State::InFrame && !self.buf.is_empty()
    }

    /// True from a frame's opening 0x00 on, until it ends (a line shared
    /// with a console hands the decoder every byte while this holds).
    pub fn is_open(&self) -> bool {
        self.state == State::InFrame
    }

    /// Feeds one byte; `None` when the byte is part of a frame not yet
    /// complete (or a delimiter).
    pub fn push(&mut self, b: u8) -> Option<Event<'_>> {
        match (self.state, b) {
            (State::Text, DELIMITER) => {
                self.state = State::InFrame;
                self.buf.clear();
                None
            }
            (State::Text, b) => {
                self.stats.text_bytes += 1;
                Some(Event::Text(b))
            }
            (State::InFrame, DELIMITER) if self.buf.is_empty() => None,
            (State::InFrame, DELIMITER) => {
                // Only success or failure is kept here: a borrow of the
                // buffer cannot be returned from one arm while the other
                // clears it, so `decoded` reads the frame back.
                let result = frame::decode_in_place(&mut self.buf).map(|_| ());
                match result {
                    Ok(()) => {
                        self.state = State::Text;
                        self.stats.frames += 1;
                        Some(Event::Frame(self.decoded()))
                    }
                    Err(e) => {
                        self.buf.clear();
                        self.stats.errors += 1;
                        Some(Event::Error(e))
                    }
                }
            }
            (State::InFrame, b) => {
                if self.buf.len() >= MAX_ENCODED {
                    self.buf.clear();
                    self.state = State::Text;
                    self.stats.errors += 1;
                    return Some(Event::Error(FrameError::TooLong));
                }
                self.buf.push(b);
                None
            }
        }
    }

    /// The line has been quiet for the caller's timeout: a partial frame is
    /// given up (and reported), the decoder returns to text.
    pub fn idle(&mut self) -> Option<FrameError> {
        let partial = self.in_frame();
        self.state = State::Text;
        self.buf.clear();
        if partial {
            self.stats.errors += 1;
            Some(FrameError::Truncated)
        } else {
            None
        }
    }

    /// The frame `push` just decoded in place. The buffer now holds the
    /// decoded bytes, whose header says how many there are.
    fn decoded(&mut self) -> Frame<'_> {
        let b = &self.buf;
        let len = u16::from_le_bytes([b[6], b[7]]) as usize;
        Frame {
            kind: frame::Kind::from_u8(b[0]).expect("checked by decode_in_place"),
            flags: b[1],
            seq: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            payload: &b[frame::HEADER_LEN..frame::HEADER_LEN + len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maint::frame::{encode, Kind};
    use alloc::vec;

    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Text(Vec<u8>),
        Frame(Kind, u32, Vec<u8>),
        Error(FrameError),
    }

    /// Runs `bytes` through a decoder; adjacent text bytes are merged.
    fn run(d: &mut Decoder, bytes: &[u8]) -> Vec<Got> {
        let mut out: Vec<Got> = Vec::new();
        for &b in bytes {
            match d.push(b) {
                None => {}
                Some(Event::Text(t)) => match out.last_mut() {
                    Some(Got::Text(v)) => v.push(t),
                    _ => out.push(Got::Text(vec![t])),
                },
                Some(Event::Frame(f)) => out.push(Got::Frame(f.kind, f.seq, f.payload.to_vec())),
                Some(Event::Error(e)) => out.push(Got::Error(e)),
            }
        }
        out
    }

    fn frame(kind: Kind, seq: u32, p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode(kind, 0, seq, p, &mut v);
        v
    }

    #[test]
    fn text_and_frames_share_the_line() {
        let mut line = b"status\r".to_vec();
        line.extend(frame(Kind::Command, 1, b"images"));
        line.extend(b"help\r");
        line.extend(frame(Kind::Data, 2, &[0, 0, 0, 1]));
        line.extend(frame(Kind::Data, 3, &[]));
        let mut d = Decoder::new();
        assert_eq!(
            run(&mut d, &line),
            vec![
                Got::Text(b"status\r".to_vec()),
                Got::Frame(Kind::Command, 1, b"images".to_vec()),
                Got::Text(b"help\r".to_vec()),
                Got::Frame(Kind::Data, 2, vec![0, 0, 0, 1]),
                Got::Frame(Kind::Data, 3, vec![]),
            ]
        );
        assert_eq!(d.stats.frames, 3);
        assert_eq!(d.stats.text_bytes, 12);
    }

    #[test]
    fn resynchronises_after_a_cut_frame_and_after_garbage() {
        let good = frame(Kind::Ack, 9, b"payload");
        // The first half of a frame (its end lost), then a whole frame:
        // only the cut one is lost.
        let mut line = good[..good.len() / 2].to_vec();
        line.extend(&good);
        let mut d = Decoder::new();
        let got = run(&mut d, &line);
        assert!(matches!(got[0], Got::Error(_)), "{got:?}");
        assert_eq!(got[1], Got::Frame(Kind::Ack, 9, b"payload".to_vec()));
        assert_eq!(got.len(), 2);

        // Random garbage containing zeros, then a frame.
        let mut x = 0x1234_5678u32;
        let mut line = Vec::new();
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            line.push(if x.is_multiple_of(50) { 0 } else { x as u8 });
        }
        line.extend(frame(Kind::Ack, 10, b"after"));
        line.extend(b"ok\r");
        let got = run(&mut d, &line);
        let n = got.len();
        assert_eq!(got[n - 2], Got::Frame(Kind::Ack, 10, b"after".to_vec()));
        assert_eq!(got[n - 1], Got::Text(b"ok\r".to_vec()));
    }

    #[test]
    fn over_long_and_quiet_frames_give_text_back() {
        let mut d = Decoder::new();
        let mut line = vec![0u8];
        line.extend(core::iter::repeat_n(b'a', MAX_ENCODED + 1));
        line.extend(b"\rhelp\r");
        let got = run(&mut d, &line);
        assert_eq!(got[0], Got::Error(FrameError::TooLong));
        // What follows the limit is text again.
        assert!(matches!(&got[1], Got::Text(t) if t.ends_with(b"\rhelp\r")));

        // A partial frame, then silence: dropped, and text works.
        let f = frame(Kind::Ack, 1, b"abc");
        assert!(run(&mut d, &f[..5]).is_empty());
        assert!(d.in_frame());
        assert_eq!(d.idle(), Some(FrameError::Truncated));
        assert_eq!(d.idle(), None);
        assert_eq!(run(&mut d, b"x"), vec![Got::Text(b"x".to_vec())]);
    }
}
