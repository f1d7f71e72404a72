//! The receiver's rules one message at a time (the lossy-line runs are
//! in `sim`).
use super::proto::{Ack, Begin, Message, UploadError, BEGIN_RESTART};
use super::receiver::{MemSlot, Receiver, ResumeState, StagingError, StagingSlot, RESUME_LEN};
use sha2::{Digest, Sha256};

fn begin(img: &[u8], chunk: u16) -> Message<'static> {
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&Sha256::digest(img));
    Message::Begin(Begin {
        total_len: img.len() as u32,
        chunk_size: chunk,
        flags: 0,
        sha256,
    })
}

fn data(img: &[u8], chunk: usize, i: u32) -> Message<'_> {
    let start = i as usize * chunk;
    Message::Data {
        index: i,
        compressed: false,
        bytes: &img[start..(start + chunk).min(img.len())],
    }
}

fn ack(next: u32, bits: u64, chunks: u32) -> Option<Message<'static>> {
    Some(Message::Ack(Ack { next, bits, chunks }))
}

#[test]
fn out_of_order_duplicates_and_the_window() {
    let img: Vec<u8> = (0..10 * 256 + 100).map(|i| i as u8).collect();
    let mut slot = MemSlot::new(1 << 16);
    let mut rx = Receiver::new();
    assert_eq!(
        rx.handle(&data(&img, 256, 0), &mut slot),
        Some(Message::Refused(UploadError::NoSession))
    );
    assert_eq!(rx.handle(&begin(&img, 256), &mut slot), ack(0, 0, 11));
    // Chunk 2 before 0 and 1: acknowledged selectively.
    assert_eq!(rx.handle(&data(&img, 256, 2), &mut slot), ack(0, 0b10, 11));
    assert_eq!(rx.handle(&data(&img, 256, 2), &mut slot), ack(0, 0b10, 11));
    assert_eq!(rx.handle(&data(&img, 256, 0), &mut slot), ack(1, 0b1, 11));
    assert_eq!(rx.handle(&data(&img, 256, 1), &mut slot), ack(3, 0, 11));
    assert_eq!(rx.handle(&data(&img, 256, 1), &mut slot), ack(3, 0, 11));
    assert_eq!(rx.stats.duplicates, 2);
    // Past the end, wrong length.
    let past = Message::Data {
        index: 11,
        compressed: false,
        bytes: &img[..10],
    };
    assert_eq!(
        rx.handle(&past, &mut slot),
        Some(Message::Refused(UploadError::BadChunk { index: 11 }))
    );
    let short = Message::Data {
        index: 3,
        compressed: false,
        bytes: &img[..10],
    };
    assert_eq!(
        rx.handle(&short, &mut slot),
        Some(Message::Refused(UploadError::ChunkLength {
            index: 3,
            len: 10
        }))
    );
    // Finish too early, then the rest, then Finish twice.
    assert_eq!(
        rx.handle(&Message::Finish, &mut slot),
        Some(Message::Refused(UploadError::Incomplete { next: 3 }))
    );
    for i in (3..11).rev() {
        rx.handle(&data(&img, 256, i), &mut slot);
    }
    assert_eq!(rx.resume_state().unwrap().verified, 11);
    assert_eq!(
        rx.handle(&Message::Finish, &mut slot),
        Some(Message::Done(Ok(())))
    );
    assert_eq!(
        rx.handle(&Message::Finish, &mut slot),
        Some(Message::Done(Ok(())))
    );
    assert!(rx.completed().is_some());
    assert_eq!(&slot.bytes[..img.len()], &img[..]);
    assert_eq!(slot.high_water, img.len());
    // After completion, another image may begin without --restart.
    assert_eq!(rx.handle(&begin(&img[..300], 256), &mut slot), ack(0, 0, 2));
}

#[test]
fn chunks_beyond_the_window_are_dropped() {
    let img = vec![7u8; 100 * 64];
    let mut slot = MemSlot::new(1 << 16);
    let mut rx = Receiver::new();
    rx.handle(&begin(&img, 64), &mut slot);
    assert_eq!(rx.handle(&data(&img, 64, 65), &mut slot), ack(0, 0, 100));
    assert_eq!(rx.stats.beyond_window, 1);
    assert_eq!(
        rx.handle(&data(&img, 64, 64), &mut slot),
        ack(0, 1 << 63, 100)
    );
}

#[test]
fn a_wrong_digest_fails_and_forgets() {
    let img = vec![1u8; 1000];
    let mut slot = MemSlot::new(1 << 16);
    let mut rx = Receiver::new();
    let Message::Begin(mut b) = begin(&img, 512) else {
        unreachable!()
    };
    b.sha256[0] ^= 1;
    rx.handle(&Message::Begin(b), &mut slot);
    rx.handle(&data(&img, 512, 0), &mut slot);
    rx.handle(&data(&img, 512, 1), &mut slot);
    assert_eq!(
        rx.handle(&Message::Finish, &mut slot),
        Some(Message::Done(Err(UploadError::DigestMismatch)))
    );
    assert!(rx.resume_state().is_none());
}

#[test]
fn begin_is_checked_and_abort_forgets() {
    let img = vec![1u8; 1000];
    let mut slot = MemSlot::new(1 << 16);
    let mut rx = Receiver::new();
    for chunk in [0u16, 32, 8192] {
        assert!(matches!(
            rx.handle(&begin(&img, chunk), &mut slot),
            Some(Message::Refused(UploadError::BadBegin { .. }))
        ));
    }
    assert!(matches!(
        rx.handle(&begin(&[], 256), &mut slot),
        Some(Message::Refused(UploadError::BadBegin { .. }))
    ));
    rx.handle(&begin(&img, 256), &mut slot);
    assert_eq!(
        rx.handle(&begin(&img[..999], 256), &mut slot),
        Some(Message::Refused(UploadError::Busy))
    );
    let Some(Message::Begin(mut b)) = Some(begin(&img[..999], 256)) else {
        unreachable!()
    };
    b.flags = BEGIN_RESTART;
    assert_eq!(rx.handle(&Message::Begin(b), &mut slot), ack(0, 0, 4));
    assert_eq!(rx.handle(&Message::Abort, &mut slot), ack(0, 0, 0));
    assert!(rx.resume_state().is_none());
    // Console messages are not the receiver's.
    let c = Message::Command {
        seq: 1,
        line: b"status",
    };
    assert_eq!(rx.handle(&c, &mut slot), None);
}

/// A slot that refuses every write: the chunk is refused, nothing counts.
struct Broken;
impl StagingSlot for Broken {
    fn capacity(&self) -> usize {
        1 << 20
    }
    fn write(&mut self, _: usize, _: &[u8]) -> Result<(), StagingError> {
        Err(StagingError)
    }
    fn read(&self, _: usize, _: &mut [u8]) -> Result<(), StagingError> {
        Err(StagingError)
    }
}

#[test]
fn a_failing_slot_is_a_refusal() {
    let img = vec![1u8; 1000];
    let mut rx = Receiver::new();
    rx.handle(&begin(&img, 256), &mut Broken);
    assert_eq!(
        rx.handle(&data(&img, 256, 1), &mut Broken),
        Some(Message::Refused(UploadError::Staging { offset: 256 }))
    );
    assert_eq!(rx.resume_state().unwrap().verified, 0);
}

#[test]
fn resume_state_bytes_round_trip_and_refuse_damage() {
    let s = ResumeState {
        sha256: [3; 32],
        total_len: 5000,
        chunk_size: 1024,
        verified: 3,
        prefix_crc: 0x1234_5678,
        complete: false,
    };
    let b = s.to_bytes();
    assert_eq!(b.len(), RESUME_LEN);
    assert_eq!(ResumeState::from_bytes(&b), Some(s));
    for i in 0..RESUME_LEN {
        let mut d = b;
        d[i] ^= 0x40;
        assert_eq!(ResumeState::from_bytes(&d), None, "byte {i}");
    }
    assert_eq!(ResumeState::from_bytes(&b[..59]), None);
    assert_eq!(ResumeState::from_bytes(&[0; RESUME_LEN]), None);
    // A well-formed block with impossible fields.
    let bad = ResumeState { verified: 99, ..s };
    assert_eq!(ResumeState::from_bytes(&bad.to_bytes()), None);
}

/// A staging slot whose owner refuses what arrived (a bad signature, say).
struct Refusing(MemSlot);

impl StagingSlot for Refusing {
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), StagingError> {
        self.0.write(offset, data)
    }
    fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), StagingError> {
        self.0.read(offset, out)
    }
    fn accept(&mut self, _: usize) -> Result<(), UploadError> {
        Err(UploadError::BadSignature)
    }
}

#[test]
fn an_upload_refused_for_what_it_is_is_forgotten() {
    let img: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let mut slot = Refusing(MemSlot::new(4096));
    let mut rx = Receiver::new();
    assert_eq!(rx.handle(&begin(&img, 256), &mut slot), ack(0, 0, 2));
    rx.handle(&data(&img, 256, 0), &mut slot);
    rx.handle(&data(&img, 256, 1), &mut slot);
    assert_eq!(
        rx.handle(&Message::Finish, &mut slot),
        Some(Message::Done(Err(UploadError::BadSignature)))
    );
    assert_eq!(rx.completed(), None);
    assert_eq!(rx.resume_state(), None);
    // Finish again: nothing to finish (the sender must start over).
    assert_eq!(
        rx.handle(&Message::Finish, &mut slot),
        Some(Message::Refused(UploadError::NoSession))
    );
}
