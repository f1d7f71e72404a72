//! The typed messages the frames carry, and their payload layouts (all
//! integers little-endian).
//!
//! | kind     | seq            | payload |
//! |----------|----------------|---------|
//! | Command  | request number | one command line, UTF-8 (as typed at the console) |
//! | Reply    | the request's  | text; `FLAG_LAST` on the last part, `FLAG_REFUSED` if refused |
//! | Begin    | 0              | total_len u32, chunk_size u16, flags u16 (bit 0: restart), SHA-256 [32] |
//! | Data     | chunk index    | the chunk's bytes (an LZ4 block with `FLAG_COMPRESSED`) |
//! | Ack      | 0              | next u32, bits u64, chunks u32 |
//! | Finish   | 0              | - |
//! | Done     | 0              | code u8, a u32, b u32 (code 0: the image's digest matched) |
//! | Abort    | 0              | - |
//! | Refused  | 0              | code u8, a u32, b u32 |
//! | AuthRequest | 0           | - |
//! | Challenge | 0             | nonce [32], board name (UTF-8) |
//! | AuthResponse | 0          | operator public key [32], signature [64] |
//! | AuthResult | 0            | code u8 (0: session open; 1 no challenge, 2 unknown operator, 3 bad signature) |
//!
//! `Ack.next` is the first chunk not yet received (every chunk below it
//! is in the staging slot); bit k of `Ack.bits` says chunk `next + 1 + k`
//! has arrived too (selective acknowledgement: the sender resends only
//! what is missing).
use super::auth::{AuthError, Response};
use super::frame::{self, Frame, Kind, FLAG_COMPRESSED, FLAG_LAST, FLAG_REFUSED};
use alloc::vec::Vec;

/// Start (or resume) an upload of `total_len` bytes whose SHA-256 is
/// `sha256`, cut into chunks of `chunk_size` bytes (the last may be short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    pub total_len: u32,
    pub chunk_size: u16,
    /// [`BEGIN_RESTART`]: drop any upload in progress instead of refusing.
    pub flags: u16,
    pub sha256: [u8; 32],
}

pub const BEGIN_RESTART: u16 = 1 << 0;
const BEGIN_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub next: u32,
    pub bits: u64,
    /// Chunks in the upload (lets the sender check it talks about its own).
    pub chunks: u32,
}
const ACK_LEN: usize = 16;

/// Why the device refused a request or failed an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadError {
    /// Data or Finish without a Begin (e.g. after the device restarted
    /// without resume state).
    NoSession,
    /// Another upload is in progress (a second client?); Begin with
    /// `BEGIN_RESTART`, or Abort, to replace it.
    Busy,
    TooLarge {
        len: u32,
        capacity: u32,
    },
    /// Begin with a zero length or a chunk size out of range.
    BadBegin {
        chunk_size: u32,
    },
    /// A chunk index past the end of the image.
    BadChunk {
        index: u32,
    },
    /// A compressed chunk that does not decompress.
    Decompress {
        index: u32,
    },
    /// A chunk of the wrong length.
    ChunkLength {
        index: u32,
        len: u32,
    },
    /// The staging slot refused a write or read.
    Staging {
        offset: u32,
    },
    /// Every chunk arrived, but the image's SHA-256 differs from Begin's.
    DigestMismatch,
    /// Finish before every chunk arrived.
    Incomplete {
        next: u32,
    },
    /// Not allowed in this session (e.g. not authenticated).
    NotAllowed,
    /// The upload arrived whole but is no signed image slot.
    NotSigned,
    /// Signed with a key the running image does not trust.
    UnknownKey,
    /// The signature does not match (the image or its header changed).
    BadSignature,
    /// Signed for other boards only.
    WrongBoard,
    /// Its security counter is below the running image's (a downgrade).
    CounterTooLow {
        image: u32,
        running: u32,
    },
    /// Signed, but not an image this board can run (slot header, length,
    /// digest, arm64 header); the device's log says which.
    BadImage,
    /// A code this side does not know.
    Unknown {
        code: u8,
    },
}

impl UploadError {
    fn to_wire(self) -> (u8, u32, u32) {
        match self {
            UploadError::NoSession => (1, 0, 0),
            UploadError::Busy => (2, 0, 0),
            UploadError::TooLarge { len, capacity } => (3, len, capacity),
            UploadError::BadBegin { chunk_size } => (4, chunk_size, 0),
            UploadError::BadChunk { index } => (5, index, 0),
            UploadError::Decompress { index } => (6, index, 0),
            UploadError::ChunkLength { index, len } => (7, index, len),
            UploadError::Staging { offset } => (8, offset, 0),
            UploadError::DigestMismatch => (9, 0, 0),
            UploadError::Incomplete { next } => (10, next, 0),
            UploadError::NotAllowed => (11, 0, 0),
            UploadError::NotSigned => (12, 0, 0),
            UploadError::UnknownKey => (13, 0, 0),
            UploadError::BadSignature => (14, 0, 0),
            UploadError::WrongBoard => (15, 0, 0),
            UploadError::CounterTooLow { image, running } => (16, image, running),
            UploadError::BadImage => (17, 0, 0),
            UploadError::Unknown { code } => (code, 0, 0),
        }
    }

    fn from_wire(code: u8, a: u32, b: u32) -> UploadError {
        match code {
            1 => UploadError::NoSession,
            2 => UploadError::Busy,
            3 => UploadError::TooLarge {
                len: a,
                capacity: b,
            },
            4 => UploadError::BadBegin { chunk_size: a },
            5 => UploadError::BadChunk { index: a },
            6 => UploadError::Decompress { index: a },
            7 => UploadError::ChunkLength { index: a, len: b },
            8 => UploadError::Staging { offset: a },
            9 => UploadError::DigestMismatch,
            10 => UploadError::Incomplete { next: a },
            11 => UploadError::NotAllowed,
            12 => UploadError::NotSigned,
            13 => UploadError::UnknownKey,
            14 => UploadError::BadSignature,
            15 => UploadError::WrongBoard,
            16 => UploadError::CounterTooLow {
                image: a,
                running: b,
            },
            17 => UploadError::BadImage,
            code => UploadError::Unknown { code },
        }
    }
}

impl core::fmt::Display for UploadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UploadError::NoSession => write!(f, "no upload in progress"),
            UploadError::Busy => write!(
                f,
                "another upload is in progress (`blinkctl upload --restart` replaces it)"
            ),
            UploadError::TooLarge { len, capacity } => write!(
                f,
                "image of {len} bytes does not fit the staging slot ({capacity} bytes)"
            ),
            UploadError::BadBegin { chunk_size } => {
                write!(f, "bad upload parameters (chunk size {chunk_size})")
            }
            UploadError::BadChunk { index } => write!(f, "chunk {index} is past the image's end"),
            UploadError::Decompress { index } => write!(f, "chunk {index} does not decompress"),
            UploadError::ChunkLength { index, len } => {
                write!(f, "chunk {index} has the wrong length ({len} bytes)")
            }
            UploadError::Staging { offset } => {
                write!(f, "the staging slot refused the write at offset {offset}")
            }
            UploadError::DigestMismatch => {
                write!(f, "the image's SHA-256 differs from the announced one")
            }
            UploadError::Incomplete { next } => {
                write!(f, "upload incomplete: chunk {next} is missing")
            }
            UploadError::NotAllowed => write!(f, "not allowed in this session"),
            UploadError::NotSigned => write!(f, "refused: the image is not signed"),
            UploadError::UnknownKey => {
                write!(f, "refused: signed with a key the running image does not trust")
            }
            UploadError::BadSignature => write!(
                f,
                "refused: bad signature (the image or its header was changed)"
            ),
            UploadError::WrongBoard => write!(f, "refused: the image is not for this board"),
            UploadError::CounterTooLow { image, running } => write!(
                f,
                "refused: security counter {image} is below the running image's {running} (a downgrade)"
            ),
            UploadError::BadImage => write!(
                f,
                "refused: not an image this board can run (the device's log says why)"
            ),
            UploadError::Unknown { code } => write!(f, "unknown error code {code}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Command {
        seq: u32,
        line: &'a [u8],
    },
    Reply {
        seq: u32,
        last: bool,
        refused: bool,
        text: &'a [u8],
    },
    Begin(Begin),
    Data {
        index: u32,
        compressed: bool,
        bytes: &'a [u8],
    },
    Ack(Ack),
    Finish,
    Done(Result<(), UploadError>),
    Abort,
    Refused(UploadError),
    AuthRequest,
    Challenge {
        nonce: [u8; 32],
        board: &'a [u8],
    },
    AuthResponse(Response),
    AuthResult(Result<(), AuthError>),
}

/// A frame whose payload does not fit its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPayload {
    pub kind: Kind,
    pub len: usize,
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn error_payload(b: &[u8]) -> (u8, u32, u32) {
    (b[0], le32(b, 1), le32(b, 5))
}

impl<'a> Message<'a> {
    pub fn from_frame(f: &Frame<'a>) -> Result<Message<'a>, BadPayload> {
        let p = f.payload;
        let bad = BadPayload {
            kind: f.kind,
            len: p.len(),
        };
        let want = |n: usize| if p.len() == n { Ok(()) } else { Err(bad) };
        Ok(match f.kind {
            Kind::Command => Message::Command {
                seq: f.seq,
                line: p,
            },
            Kind::Reply => Message::Reply {
                seq: f.seq,
                last: f.flags & FLAG_LAST != 0,
                refused: f.flags & FLAG_REFUSED != 0,
                text: p,
            },
            Kind::Begin => {
                want(BEGIN_LEN)?;
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(&p[8..40]);
                Message::Begin(Begin {
                    total_len: le32(p, 0),
                    chunk_size: u16::from_le_bytes([p[4], p[5]]),
                    flags: u16::from_le_bytes([p[6], p[7]]),
                    sha256,
                })
            }
            Kind::Data => Message::Data {
                index: f.seq,
                compressed: f.flags & FLAG_COMPRESSED != 0,
                bytes: p,
            },
            Kind::Ack => {
                want(ACK_LEN)?;
                let mut bits = [0u8; 8];
                bits.copy_from_slice(&p[4..12]);
                Message::Ack(Ack {
                    next: le32(p, 0),
                    bits: u64::from_le_bytes(bits),
                    chunks: le32(p, 12),
                })
            }
            Kind::Finish => {
                want(0)?;
                Message::Finish
            }
            Kind::Abort => {
                want(0)?;
                Message::Abort
            }
            Kind::Done => {
                want(9)?;
                let (code, a, b) = error_payload(p);
                Message::Done(if code == 0 {
                    Ok(())
                } else {
                    Err(UploadError::from_wire(code, a, b))
                })
            }
            Kind::Refused => {
                want(9)?;
                let (code, a, b) = error_payload(p);
                Message::Refused(UploadError::from_wire(code, a, b))
            }
            Kind::AuthRequest => {
                want(0)?;
                Message::AuthRequest
            }
            Kind::Challenge => {
                if p.len() < 32 {
                    return Err(bad);
                }
                let mut nonce = [0u8; 32];
                nonce.copy_from_slice(&p[..32]);
                Message::Challenge {
                    nonce,
                    board: &p[32..],
                }
            }
            Kind::AuthResponse => {
                want(96)?;
                let mut r = Response {
                    public_key: [0; 32],
                    signature: [0; 64],
                };
                r.public_key.copy_from_slice(&p[..32]);
                r.signature.copy_from_slice(&p[32..]);
                Message::AuthResponse(r)
            }
            Kind::AuthResult => {
                want(1)?;
                Message::AuthResult(match p[0] {
                    0 => Ok(()),
                    1 => Err(AuthError::NoChallenge),
                    2 => Err(AuthError::UnknownOperator),
                    3 => Err(AuthError::BadSignature),
                    _ => return Err(bad),
                })
            }
        })
    }

    /// Appends this message's frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut p = [0u8; BEGIN_LEN];
        match *self {
            Message::Command { seq, line } => frame::encode(Kind::Command, 0, seq, line, out),
            Message::Reply {
                seq,
                last,
                refused,
                text,
            } => {
                let flags =
                    if last { FLAG_LAST } else { 0 } | if refused { FLAG_REFUSED } else { 0 };
                frame::encode(Kind::Reply, flags, seq, text, out)
            }
            Message::Begin(b) => {
                p[0..4].copy_from_slice(&b.total_len.to_le_bytes());
                p[4..6].copy_from_slice(&b.chunk_size.to_le_bytes());
                p[6..8].copy_from_slice(&b.flags.to_le_bytes());
                p[8..40].copy_from_slice(&b.sha256);
                frame::encode(Kind::Begin, 0, 0, &p, out)
            }
            Message::Data {
                index,
                compressed,
                bytes,
            } => {
                let flags = if compressed { FLAG_COMPRESSED } else { 0 };
                frame::encode(Kind::Data, flags, index, bytes, out)
            }
            Message::Ack(a) => {
                p[0..4].copy_from_slice(&a.next.to_le_bytes());
                p[4..12].copy_from_slice(&a.bits.to_le_bytes());
                p[12..16].copy_from_slice(&a.chunks.to_le_bytes());
                frame::encode(Kind::Ack, 0, 0, &p[..ACK_LEN], out)
            }
            Message::Finish => frame::encode(Kind::Finish, 0, 0, &[], out),
            Message::Abort => frame::encode(Kind::Abort, 0, 0, &[], out),
            Message::Done(r) => {
                let (code, a, b) = match r {
                    Ok(()) => (0, 0, 0),
                    Err(e) => e.to_wire(),
                };
                put_error(&mut p, code, a, b);
                frame::encode(Kind::Done, 0, 0, &p[..9], out)
            }
            Message::Refused(e) => {
                let (code, a, b) = e.to_wire();
                put_error(&mut p, code, a, b);
                frame::encode(Kind::Refused, 0, 0, &p[..9], out)
            }
            Message::AuthRequest => frame::encode(Kind::AuthRequest, 0, 0, &[], out),
            Message::Challenge { nonce, board } => {
                let mut b = Vec::with_capacity(32 + board.len());
                b.extend_from_slice(&nonce);
                b.extend_from_slice(board);
                frame::encode(Kind::Challenge, 0, 0, &b, out)
            }
            Message::AuthResponse(r) => {
                let mut b = [0u8; 96];
                b[..32].copy_from_slice(&r.public_key);
                b[32..].copy_from_slice(&r.signature);
                frame::encode(Kind::AuthResponse, 0, 0, &b, out)
            }
            Message::AuthResult(r) => {
                let code = match r {
                    Ok(()) => 0u8,
                    Err(AuthError::NoChallenge) => 1,
                    Err(AuthError::UnknownOperator) => 2,
                    Err(AuthError::BadSignature) => 3,
                };
                frame::encode(Kind::AuthResult, 0, 0, &[code], out)
            }
        }
    }
}

fn put_error(p: &mut [u8], code: u8, a: u32, b: u32) {
    p[0] = code;
    p[1..5].copy_from_slice(&a.to_le_bytes());
    p[5..9].copy_from_slice(&b.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maint::decoder::{Decoder, Event};

    fn round_trip(m: Message<'_>) {
        let mut w = Vec::new();
        m.encode(&mut w);
        let mut d = Decoder::new();
        let mut got = None;
        for &b in &w {
            if let Some(Event::Frame(f)) = d.push(b) {
                let back = Message::from_frame(&f).unwrap();
                assert_eq!(back, m);
                got = Some(());
            }
        }
        assert!(got.is_some(), "{m:?}");
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(Message::Command {
            seq: 3,
            line: b"status --json",
        });
        round_trip(Message::Reply {
            seq: 3,
            last: true,
            refused: false,
            text: b"{}",
        });
        round_trip(Message::Reply {
            seq: 4,
            last: false,
            refused: true,
            text: b"upgrade: no staged image",
        });
        round_trip(Message::Begin(Begin {
            total_len: 400 << 10,
            chunk_size: 4096,
            flags: BEGIN_RESTART,
            sha256: [0xa5; 32],
        }));
        round_trip(Message::Data {
            index: 7,
            compressed: true,
            bytes: &[0, 1, 2, 0],
        });
        round_trip(Message::Ack(Ack {
            next: 5,
            bits: 0x8000_0000_0000_0001,
            chunks: 100,
        }));
        round_trip(Message::AuthRequest);
        round_trip(Message::Challenge {
            nonce: [1; 32],
            board: b"qemu-virt",
        });
        round_trip(Message::AuthResponse(Response {
            public_key: [2; 32],
            signature: [3; 64],
        }));
        round_trip(Message::AuthResult(Ok(())));
        for e in [
            AuthError::NoChallenge,
            AuthError::UnknownOperator,
            AuthError::BadSignature,
        ] {
            round_trip(Message::AuthResult(Err(e)));
        }
        round_trip(Message::Finish);
        round_trip(Message::Abort);
        round_trip(Message::Done(Ok(())));
        for e in [
            UploadError::NoSession,
            UploadError::Busy,
            UploadError::TooLarge {
                len: 1,
                capacity: 2,
            },
            UploadError::BadBegin { chunk_size: 3 },
            UploadError::BadChunk { index: 4 },
            UploadError::Decompress { index: 5 },
            UploadError::ChunkLength { index: 6, len: 7 },
            UploadError::Staging { offset: 8 },
            UploadError::DigestMismatch,
            UploadError::Incomplete { next: 9 },
            UploadError::NotAllowed,
            UploadError::NotSigned,
            UploadError::UnknownKey,
            UploadError::BadSignature,
            UploadError::WrongBoard,
            UploadError::CounterTooLow {
                image: 1,
                running: 5,
            },
            UploadError::BadImage,
            UploadError::Unknown { code: 200 },
        ] {
            round_trip(Message::Done(Err(e)));
            round_trip(Message::Refused(e));
        }
    }

    #[test]
    fn wrong_payload_lengths_are_refused() {
        let f = Frame {
            kind: Kind::Ack,
            flags: 0,
            seq: 0,
            payload: &[0; 15],
        };
        assert_eq!(
            Message::from_frame(&f),
            Err(BadPayload {
                kind: Kind::Ack,
                len: 15
            })
        );
        let f = Frame {
            kind: Kind::Finish,
            flags: 0,
            seq: 0,
            payload: &[1],
        };
        assert!(Message::from_frame(&f).is_err());
    }
}
