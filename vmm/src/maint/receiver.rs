//! The device's side of an upload: chunks in any order into a staging
//! slot, selective acknowledgements out, and a state small enough to carry
//! across a warm reload so an upload resumes where it was.
//!
//! Rules (docs/maintenance.md has the whole story):
//! - Every write goes through [`StagingSlot`], never anywhere else. The
//!   hypervisor implements it over memory that holds neither the running
//!   image nor a valid staged one; what it holds is meaningless until
//!   [`Receiver::completed`] says the whole image arrived with the digest
//!   announced in `Begin`, and only then may the caller check the
//!   signature and make it an image slot's content.
//! - The *verified prefix* (chunks `0..verified`) is every chunk that has
//!   arrived without a gap below it, read back from the staging slot and
//!   covered by a running CRC-32. After a reload the CRC is recomputed
//!   over the slot before the prefix is trusted again; chunks past the
//!   prefix are asked for again (they are few: at most a window).
//! - Duplicates and chunks that are already there are acknowledged again
//!   (the sender may have lost the acknowledgement), chunks beyond the
//!   window are dropped (the sender will send them again).
//! - One upload at a time: a `Begin` for another image while one is in
//!   progress is refused as `Busy` unless it asks to restart.
use super::compress;
use super::proto::{Ack, Begin, Message, UploadError, BEGIN_RESTART};
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// Where an upload is written. Offsets are bytes from the start of the
/// staging area; the receiver never writes past the `Begin`'s length,
/// which it has checked against `capacity`.
pub trait StagingSlot {
    fn capacity(&self) -> usize;
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), StagingError>;
    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), StagingError>;
    /// The whole upload (`len` bytes) arrived with the announced digest:
    /// check what it is (a signed image slot the running image accepts)
    /// and make it the staged image. Refused, the upload is forgotten and
    /// its answer is this error. The default accepts anything (tests).
    fn accept(&mut self, len: usize) -> Result<(), UploadError> {
        let _ = len;
        Ok(())
    }
}

/// The staging slot could not do a read or write (out of its range, or
/// the memory behind it is gone); the receiver refuses the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingError;

/// Chunks tracked beyond the verified prefix (the width of `Ack.bits`).
pub const WINDOW: u32 = 64;
pub const MIN_CHUNK: u32 = 64;
pub const MAX_CHUNK: u32 = 4096;

/// What survives a warm reload: plain data, [`ResumeState::to_bytes`] for
/// the handoff block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeState {
    pub sha256: [u8; 32],
    pub total_len: u32,
    pub chunk_size: u32,
    /// Chunks `0..verified` are in the staging slot, covered by `prefix_crc`.
    pub verified: u32,
    /// CRC-32 of the staging slot's bytes `0..verified * chunk_size`
    /// (or `total_len` if smaller).
    pub prefix_crc: u32,
    /// Every chunk arrived and the SHA-256 matched.
    pub complete: bool,
}

const RESUME_MAGIC: [u8; 4] = *b"BLUP";
pub const RESUME_LEN: usize = 60;

impl ResumeState {
    fn chunks(&self) -> u32 {
        self.total_len.div_ceil(self.chunk_size)
    }

    fn prefix_len(&self) -> usize {
        (self.verified as usize * self.chunk_size as usize).min(self.total_len as usize)
    }

    /// magic, SHA-256, total_len, chunk_size, verified, prefix_crc,
    /// flags, then a CRC-32 of all that (LE).
    pub fn to_bytes(&self) -> [u8; RESUME_LEN] {
        let mut b = [0u8; RESUME_LEN];
        b[0..4].copy_from_slice(&RESUME_MAGIC);
        b[4..36].copy_from_slice(&self.sha256);
        b[36..40].copy_from_slice(&self.total_len.to_le_bytes());
        b[40..44].copy_from_slice(&self.chunk_size.to_le_bytes());
        b[44..48].copy_from_slice(&self.verified.to_le_bytes());
        b[48..52].copy_from_slice(&self.prefix_crc.to_le_bytes());
        b[52..56].copy_from_slice(&(self.complete as u32).to_le_bytes());
        let crc = crate::crc32::hash(&b[..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` for anything that is not what `to_bytes` wrote (a block from
    /// an image without uploads, damage): the upload then starts afresh.
    pub fn from_bytes(b: &[u8]) -> Option<ResumeState> {
        let le = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if b.len() != RESUME_LEN
            || b[0..4] != RESUME_MAGIC
            || le(56) != crate::crc32::hash(&b[..56])
        {
            return None;
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[4..36]);
        let s = ResumeState {
            sha256,
            total_len: le(36),
            chunk_size: le(40),
            verified: le(44),
            prefix_crc: le(48),
            complete: le(52) == 1,
        };
        let sane = s.total_len > 0
            && (MIN_CHUNK..=MAX_CHUNK).contains(&s.chunk_size)
            && s.verified <= s.chunks()
            && (!s.complete || s.verified == s.chunks())
            && le(52) <= 1;
        sane.then_some(s)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverStats {
    pub data_frames: u64,
    pub duplicates: u64,
    pub beyond_window: u64,
    /// Uploads resumed from a verified prefix (after a reload or a new
    /// `Begin` for the same image).
    pub resumed: u64,
}

struct Session {
    state: ResumeState,
    /// Bit k: chunk `verified + 1 + k` is in the staging slot.
    bits: u64,
    /// False after a reload until the prefix CRC was checked against the
    /// slot again.
    checked: bool,
}

pub struct Receiver {
    session: Option<Session>,
    /// One chunk: decompression target and read-back buffer.
    scratch: Vec<u8>,
    pub stats: ReceiverStats,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver {
            session: None,
            scratch: alloc::vec![0u8; MAX_CHUNK as usize],
            stats: ReceiverStats::default(),
        }
    }

    /// A receiver that continues the upload `state` described (from the
    /// handoff block); its prefix is checked against the slot at the next
    /// `Begin` for the same image.
    pub fn resume(state: ResumeState) -> Receiver {
        let mut r = Receiver::new();
        r.session = Some(Session {
            state,
            bits: 0,
            checked: false,
        });
        r
    }

    /// What to carry across a reload, if an upload is in progress or done.
    pub fn resume_state(&self) -> Option<ResumeState> {
        self.session.as_ref().map(|s| s.state)
    }

    /// The finished upload: every chunk is in the staging slot and its
    /// SHA-256 is `sha256`.
    pub fn completed(&self) -> Option<&ResumeState> {
        self.session
            .as_ref()
            .map(|s| &s.state)
            .filter(|s| s.complete)
    }

    /// Forget the upload (its bytes stay in the slot, meaningless).
    pub fn abort(&mut self) {
        self.session = None;
    }

    /// Handles one upload message; returns the answer to send, if any
    /// (messages that are not about uploads get `None`).
    pub fn handle<S: StagingSlot>(
        &mut self,
        m: &Message<'_>,
        slot: &mut S,
    ) -> Option<Message<'static>> {
        Some(match *m {
            Message::Begin(b) => self.begin(&b, slot),
            Message::Data {
                index,
                compressed,
                bytes,
            } => self.data(index, compressed, bytes, slot),
            Message::Finish => self.finish(slot),
            Message::Abort => {
                self.session = None;
                Message::Ack(Ack {
                    next: 0,
                    bits: 0,
                    chunks: 0,
                })
            }
            _ => return None,
        })
    }

    fn ack(&self) -> Message<'static> {
        match &self.session {
            Some(s) => Message::Ack(Ack {
                next: s.state.verified,
                bits: s.bits,
                chunks: s.state.chunks(),
            }),
            None => Message::Refused(UploadError::NoSession),
        }
    }

    fn begin<S: StagingSlot>(&mut self, b: &Begin, slot: &mut S) -> Message<'static> {
        let chunk_size = b.chunk_size as u32;
        if b.total_len == 0 || !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
            return Message::Refused(UploadError::BadBegin { chunk_size });
        }
        let capacity = slot.capacity().min(u32::MAX as usize) as u32;
        if b.total_len > capacity {
            return Message::Refused(UploadError::TooLarge {
                len: b.total_len,
                capacity,
            });
        }
        if let Some(s) = &mut self.session {
            let same = s.state.sha256 == b.sha256
                && s.state.total_len == b.total_len
                && s.state.chunk_size == chunk_size;
            if same {
                if !s.checked {
                    s.checked = true;
                    if prefix_crc(slot, &s.state, &mut self.scratch) == Some(s.state.prefix_crc) {
                        self.stats.resumed += 1;
                    } else {
                        // The staging memory changed under us: start over.
                        s.state.verified = 0;
                        s.state.prefix_crc = 0;
                        s.state.complete = false;
                    }
                } else if s.state.verified > 0 {
                    self.stats.resumed += 1;
                }
                return self.ack();
            }
            if !s.state.complete && b.flags & BEGIN_RESTART == 0 {
                return Message::Refused(UploadError::Busy);
            }
        }
        self.session = Some(Session {
            state: ResumeState {
                sha256: b.sha256,
                total_len: b.total_len,
                chunk_size,
                verified: 0,
                prefix_crc: 0,
                complete: false,
            },
            bits: 0,
            checked: true,
        });
        self.ack()
    }

    fn data<S: StagingSlot>(
        &mut self,
        index: u32,
        compressed: bool,
        bytes: &[u8],
        slot: &mut S,
    ) -> Message<'static> {
        let Some(s) = &mut self.session else {
            return Message::Refused(UploadError::NoSession);
        };
        if !s.checked {
            // Resumed from a reload, but the sender has not said `Begin`
            // yet: it must, so the prefix gets checked.
            return Message::Refused(UploadError::NoSession);
        }
        self.stats.data_frames += 1;
        let st = &s.state;
        if index >= st.chunks() {
            return Message::Refused(UploadError::BadChunk { index });
        }
        if index < st.verified || st.complete {
            self.stats.duplicates += 1;
            return self.ack();
        }
        let ahead = index - st.verified;
        if ahead > WINDOW {
            self.stats.beyond_window += 1;
            return self.ack();
        }
        if ahead > 0 && s.bits & (1 << (ahead - 1)) != 0 {
            self.stats.duplicates += 1;
            return self.ack();
        }
        let offset = index as usize * st.chunk_size as usize;
        let len = (st.total_len as usize - offset).min(st.chunk_size as usize);
        let chunk: &[u8] = if compressed {
            let out = &mut self.scratch[..len];
            if compress::decompress_chunk(bytes, out).is_err() {
                return Message::Refused(UploadError::Decompress { index });
            }
            out
        } else if bytes.len() != len {
            return Message::Refused(UploadError::ChunkLength {
                index,
                len: bytes.len() as u32,
            });
        } else {
            bytes
        };
        if slot.write(offset, chunk).is_err() {
            return Message::Refused(UploadError::Staging {
                offset: offset as u32,
            });
        }
        if ahead > 0 {
            s.bits |= 1 << (ahead - 1);
            return self.ack();
        }
        // The chunk at the prefix's end: extend the prefix over it and over
        // every chunk that arrived early and now has no gap below it.
        loop {
            let st = &mut s.state;
            let offset = st.verified as usize * st.chunk_size as usize;
            let len = (st.total_len as usize - offset).min(st.chunk_size as usize);
            let buf = &mut self.scratch[..len];
            if slot.read(offset, buf).is_err() {
                return Message::Refused(UploadError::Staging {
                    offset: offset as u32,
                });
            }
            let mut h = crc32fast::Hasher::new_with_initial(st.prefix_crc);
            h.update(buf);
            st.prefix_crc = h.finalize();
            st.verified += 1;
            let more = s.bits & 1 != 0;
            s.bits >>= 1;
            if !more {
                break;
            }
        }
        self.ack()
    }

    fn finish<S: StagingSlot>(&mut self, slot: &mut S) -> Message<'static> {
        let Some(s) = &mut self.session else {
            return Message::Refused(UploadError::NoSession);
        };
        if s.state.complete {
            return Message::Done(Ok(()));
        }
        if s.state.verified < s.state.chunks() {
            return Message::Refused(UploadError::Incomplete {
                next: s.state.verified,
            });
        }
        let mut h = Sha256::new();
        let total = s.state.total_len as usize;
        let mut off = 0;
        while off < total {
            let n = (total - off).min(self.scratch.len());
            if slot.read(off, &mut self.scratch[..n]).is_err() {
                return Message::Refused(UploadError::Staging { offset: off as u32 });
            }
            h.update(&self.scratch[..n]);
            off += n;
        }
        if h.finalize()[..] != s.state.sha256[..] {
            // Nothing in the slot can be trusted: the next Begin starts over.
            self.session = None;
            return Message::Done(Err(UploadError::DigestMismatch));
        }
        if let Err(e) = slot.accept(total) {
            // Refused for what it is: sending it again changes nothing.
            self.session = None;
            return Message::Done(Err(e));
        }
        s.state.complete = true;
        Message::Done(Ok(()))
    }
}

/// CRC-32 of the verified prefix as the slot holds it now.
fn prefix_crc<S: StagingSlot>(slot: &S, st: &ResumeState, scratch: &mut [u8]) -> Option<u32> {
    let mut h = crc32fast::Hasher::new();
    let end = st.prefix_len();
    let mut off = 0;
    while off < end {
        let n = (end - off).min(scratch.len());
        slot.read(off, &mut scratch[..n]).ok()?;
        h.update(&scratch[..n]);
        off += n;
    }
    Some(h.finalize())
}

/// A staging slot in a `Vec` (tests, the host tool's loopback).
#[derive(Debug, Clone, Default)]
pub struct MemSlot {
    pub bytes: Vec<u8>,
    /// Highest byte written + 1.
    pub high_water: usize,
}

impl MemSlot {
    pub fn new(capacity: usize) -> MemSlot {
        MemSlot {
            bytes: alloc::vec![0; capacity],
            high_water: 0,
        }
    }
}

impl StagingSlot for MemSlot {
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), StagingError> {
        let end = offset.checked_add(data.len()).ok_or(StagingError)?;
        self.bytes
            .get_mut(offset..end)
            .ok_or(StagingError)?
            .copy_from_slice(data);
        self.high_water = self.high_water.max(end);
        Ok(())
    }
    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), StagingError> {
        let end = offset.checked_add(out.len()).ok_or(StagingError)?;
        out.copy_from_slice(self.bytes.get(offset..end).ok_or(StagingError)?);
        Ok(())
    }
}
