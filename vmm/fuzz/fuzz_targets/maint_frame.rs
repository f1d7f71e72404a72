//! Arbitrary bytes on the maintenance UART: the streaming decoder must
//! tell text from frames without panicking, every frame it accepts must
//! survive a re-encode, and the upload receiver must take whatever
//! messages come out of it (any order, any content) without panicking or
//! writing outside its staging slot. Half the input runs through a
//! receiver that already has an upload in progress, so the Data paths are
//! reached without a valid Begin from the fuzzer; a last pass runs the
//! whole device endpoint (console lines, commands, uploads) over it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::maint::command::Command;
use vmm::maint::decoder::{Decoder, Event};
use vmm::maint::device::{Access, Control, Endpoint};
use vmm::maint::signed::TrustedKey;
use vmm::maint::frame;
use vmm::maint::proto::{Begin, Message};
use vmm::maint::receiver::{MemSlot, Receiver, StagingSlot};

const CAPACITY: usize = 64 * 1024;

struct Echo;
impl Control for Echo {
    fn run(&mut self, cmd: Command) -> Result<String, String> {
        match cmd {
            Command::Log => Err(format!("{cmd:?}")),
            _ => Ok(format!("{cmd:?}")),
        }
    }
    fn entropy(&mut self) -> [u8; 32] {
        [7; 32]
    }
}

fn feed(data: &[u8], rx: &mut Receiver, slot: &mut MemSlot) {
    let mut d = Decoder::new();
    for &b in data {
        match d.push(b) {
            Some(Event::Text(t)) => assert_ne!(t, 0),
            Some(Event::Frame(f)) => {
                let mut again = Vec::new();
                frame::encode(f.kind, f.flags, f.seq, f.payload, &mut again);
                let mut d2 = Decoder::new();
                let back = again.iter().filter_map(|&b| match d2.push(b) {
                    Some(Event::Frame(g)) => Some((g.kind, g.flags, g.seq, g.payload.to_vec())),
                    _ => None,
                });
                assert_eq!(back.collect::<Vec<_>>(), vec![(f.kind, f.flags, f.seq, f.payload.to_vec())]);
                if let Ok(m) = Message::from_frame(&f) {
                    let _ = rx.handle(&m, slot);
                }
            }
            Some(Event::Error(_)) | None => {}
        }
    }
    let _ = d.idle();
    assert!(slot.high_water <= slot.capacity());
    if let Some(s) = rx.resume_state() {
        assert!(s.total_len as usize <= CAPACITY);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut slot = MemSlot::new(CAPACITY);
    feed(data, &mut Receiver::new(), &mut slot);

    // An upload of 40 KiB in 1 KiB chunks already under way.
    let mut slot = MemSlot::new(CAPACITY);
    let mut rx = Receiver::new();
    let begin = Message::Begin(Begin { total_len: 40 * 1024, chunk_size: 1024, flags: 0, sha256: [0; 32] });
    let _ = rx.handle(&begin, &mut slot);
    feed(data, &mut rx, &mut slot);

    // The whole device end: text lines and frames mixed, answers out.
    let mut slot = MemSlot::new(CAPACITY);
    let mut dev = Endpoint::new(Receiver::new());
    // A production endpoint on odd-length inputs, so the gate and the
    // challenge paths are fuzzed too.
    if data.len() % 2 == 1 {
        let public = vmm::maint::signed::public_key(&[1; 32]);
        dev.access = Some(Access {
            operators: vec![TrustedKey { public, development: false }],
            board: "qemu-virt".into(),
        });
    }
    let mut out = Vec::new();
    for (t, &b) in data.iter().enumerate() {
        let _ = dev.push(b, t as u64, &mut slot, &mut Echo, &mut out);
        let _ = dev.tick(t as u64);
    }
    assert!(slot.high_water <= CAPACITY);
});
