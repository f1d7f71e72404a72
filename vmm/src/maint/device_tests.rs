//! The device endpoint: a person typing, the tool framing, uploads,
//! sessions, repeated commands.
use super::command::{Command, MAX_LINE};
use super::decoder::{Decoder, Event};
use super::device::{Access, Control, Endpoint, Notice};
use super::frame::{FrameError, MAX_PAYLOAD};
use super::proto::{Message, UploadError};
use super::receiver::{MemSlot, Receiver};
use super::signed::TrustedKey;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Answers like the control path would, and records what it ran.
#[derive(Default)]
struct Fake(Vec<Command>);
impl Control for Fake {
    fn run(&mut self, cmd: Command) -> Result<String, String> {
        self.0.push(cmd);
        match cmd {
            Command::Upgrade { .. } => Err(String::from("upgrade: no staged image")),
            Command::Log => Ok("x".repeat(MAX_PAYLOAD + 10)),
            Command::Images => Ok(String::from("slot 0\nslot 1\r\n")),
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
fn answers_get_crlf_on_a_terminal_and_stay_as_they_are_in_frames() {
    let mut e = Endpoint::new(Receiver::new());
    e.echo = false;
    let mut c = Fake::default();
    let mut input = b"images\r".to_vec();
    Message::Command {
        seq: 1,
        line: b"images",
    }
    .encode(&mut input);
    let (out, _) = feed(&mut e, &mut c, &input);
    assert!(out.starts_with(b"slot 0\r\nslot 1\r\n\x00"), "{out:?}");
    assert_eq!(frames(&out)[0].3, b"slot 0\nslot 1\r\n".to_vec());
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
