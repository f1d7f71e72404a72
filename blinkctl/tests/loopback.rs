//! blinkctl against an in-process fake device over a real TCP socket (as
//! QEMU's `-serial tcp:` would give): the device end is vmm::maint's
//! endpoint (receiver and command parser), the line damages bytes.
use blinkctl::exit::Code;
use blinkctl::keys::{self, SecretKey};
use blinkctl::link;
use blinkctl::session::Session;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;
use vmm::maint::command::Command;
use vmm::maint::device::{Access, Control, Endpoint, Notice};
use vmm::maint::receiver::{MemSlot, Receiver};
use vmm::maint::sender::SenderConfig;
use vmm::maint::signed::{self, Meta, Policy, TrustedKey, Version};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The fake device's control path: what a hypervisor would answer.
struct FakeControl;
impl Control for FakeControl {
    fn run(&mut self, cmd: Command) -> Result<String, String> {
        match cmd {
            Command::Status { json: true } => Ok("{\"vms\":[]}".to_string()),
            Command::Status { json: false } => Ok("fake: 0 VMs".to_string()),
            Command::Upgrade { .. } => Err("upgrade: no staged image".to_string()),
            c => Ok(format!("{c:?}: ok")),
        }
    }
    fn entropy(&mut self) -> [u8; 32] {
        // A test device; a real one uses its hardware RNG.
        [0x5a; 32]
    }
}

/// Serves one connection until the host hangs up, through the device's
/// real endpoint (`vmm::maint::device`); the line flips one input byte in
/// `1 / noise` during the upload (about 2% of the frames at 20k), so frames arrive
/// damaged and must be resent. Returns the staging slot and the number
/// of bytes damaged.
fn fake_device(listener: TcpListener, mut noise: u64, access: Option<Access>) -> (MemSlot, u64) {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut slot = MemSlot::new(4 << 20);
    let mut dev = Endpoint::new(Receiver::new());
    dev.echo = false;
    dev.access = access;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut damaged = 0;
    s.write_all(b"[hv] blink fake device ready\r\n").unwrap();
    let mut buf = [0u8; 8192];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => continue,
        };
        let mut out = Vec::new();
        for &b in &buf[..n] {
            let b = if noise > 0 && rng.next().is_multiple_of(noise) {
                damaged += 1;
                b ^ 0x5a
            } else {
                b
            };
            if let Some(Notice::UploadComplete(_)) =
                dev.push(b, 0, &mut slot, &mut FakeControl, &mut out)
            {
                // A quiet line for the commands after the upload (they
                // are not resent: a damaged one would just time out).
                noise = 0;
            }
        }
        if !out.is_empty() && s.write_all(&out).is_err() {
            break;
        }
    }
    (slot, damaged)
}

fn seed() -> SecretKey {
    SecretKey {
        seed: [42; 32],
        development: true,
    }
}

fn signed_image(len: usize) -> Vec<u8> {
    let mut raw: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    raw[56..60].copy_from_slice(b"ARM\x64");
    let meta = Meta {
        version: Version {
            major: 0,
            minor: 2,
            patch: 0,
        },
        security_counter: 1,
        boards: vec!["qemu-virt".into()],
        development: true,
    };
    keys::sign_image(&raw, "blink 0.2.0", &meta, &seed()).unwrap()
}

fn connect() -> (Session, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let l = link::open(&format!("tcp:{addr}"), 115_200).unwrap();
    (Session::new(l, Duration::from_secs(2)), listener)
}

#[test]
fn upload_over_a_lossy_loopback_arrives_intact() {
    let (mut s, listener) = connect();
    let dev = thread::spawn(move || fake_device(listener, 20_000, None));
    let slot = signed_image(400 << 10);
    let cfg = SenderConfig {
        rto: 200,
        ..SenderConfig::default()
    };
    let mut last = 0;
    let r = s.upload(&slot, cfg, |n| last = n).unwrap();
    assert_eq!(last, slot.len() as u64);
    assert!(r.wire_bytes >= r.payload_bytes);
    // Commands work on the same line after the upload.
    let reply = s.command("status --json").unwrap();
    assert_eq!(reply.text, "{\"vms\":[]}");
    assert!(!reply.refused);
    let reply = s.command("upgrade --confirm-after 30").unwrap();
    assert!(reply.refused);
    let reply = s.command("frobnicate").unwrap();
    assert!(reply.refused && reply.text.contains("unknown command"));
    // The device's console text was kept apart from the frames.
    assert!(String::from_utf8_lossy(&s.console).contains("fake device ready"));
    drop(s);
    let (staged, damaged) = dev.join().unwrap();
    assert_eq!(&staged.bytes[..slot.len()], &slot[..]);
    println!(
        "loopback: {} bytes, {} bytes damaged on purpose, {} retransmitted, {} wire bytes",
        slot.len(),
        damaged,
        r.retransmissions,
        r.wire_bytes
    );
    // What arrived verifies as the device would check it.
    let keys = [TrustedKey {
        public: signed::public_key(&seed().seed),
        development: true,
    }];
    let p = Policy {
        trusted: &keys,
        board: "qemu-virt",
        min_security_counter: 1,
    };
    signed::verify(&staged.bytes[..slot.len()], &p).unwrap();
}

#[test]
fn a_silent_device_is_a_clear_no_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let quiet = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // A console that prints but does not speak frames (today's blink).
        s.write_all(b"[hv] heartbeat\r\n").unwrap();
        let mut b = [0u8; 64];
        while !matches!(s.read(&mut b), Ok(0) | Err(_)) {}
    });
    let l = link::open(&format!("tcp:{addr}"), 115_200).unwrap();
    let mut s = Session::new(l, Duration::from_millis(300));
    let e = s.command("status").unwrap_err();
    assert_eq!(e.code, Code::NoAnswer);
    let msg = e.to_string();
    assert!(
        msg.contains("no answer") && msg.contains("console text"),
        "{msg}"
    );
    let cfg = SenderConfig {
        rto: 50,
        max_tries: 2,
        ..SenderConfig::default()
    };
    let e = s.upload(&signed_image(10_000), cfg, |_| {}).unwrap_err();
    assert_eq!(e.code, Code::NoAnswer);
    drop(s);
    quiet.join().unwrap();
}

#[test]
fn nothing_listening_is_a_link_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert!(link::open(&format!("tcp:{addr}"), 115_200).is_err());
    assert!(link::open("/dev/does-not-exist", 115_200).is_err());
}

#[test]
fn keygen_sign_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("keys/dev");
    let (secret, public) = keys::keygen(&base, true, false).unwrap();
    // Never overwritten without --force.
    assert_eq!(
        keys::keygen(&base, true, false).unwrap_err().code,
        Code::Local
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let k = keys::read_secret(&secret).unwrap();
    let p = keys::read_public(&public).unwrap();
    assert!(k.development && p.development);
    assert_eq!(signed::public_key(&k.seed), p.public);
    // The public file is not a secret key and vice versa.
    assert!(keys::read_secret(&public).is_err());
    assert!(keys::read_public(&secret).is_err());
    assert!(keys::parse_version("1.2").is_err());
    assert_eq!(
        keys::parse_version("1.2.3").unwrap(),
        Version {
            major: 1,
            minor: 2,
            patch: 3
        }
    );
}

#[test]
fn a_production_device_wants_an_operator_key() {
    let op = [77u8; 32];
    let access = Access {
        operators: vec![TrustedKey {
            public: signed::public_key(&op),
            development: false,
        }],
        board: "qemu-virt".into(),
    };
    let (mut s, listener) = connect();
    let dev = thread::spawn(move || fake_device(listener, 0, Some(access)));
    // Reading needs nothing; changing state and uploading need a session.
    assert!(!s.command("status").unwrap().refused);
    let r = s.command("rejuvenate").unwrap();
    assert!(
        r.refused && r.text.contains("authenticated session"),
        "{}",
        r.text
    );
    let cfg = SenderConfig {
        rto: 200,
        ..SenderConfig::default()
    };
    let e = s.upload(&signed_image(10_000), cfg, |_| {}).unwrap_err();
    assert_eq!(e.code, Code::Refused);
    assert!(e.to_string().contains("not allowed"), "{e}");
    // Another key is refused; the operator's opens the session.
    let e = s.authenticate(&[1; 32]).unwrap_err();
    assert_eq!(e.code, Code::Refused);
    s.authenticate(&op).unwrap();
    assert!(!s.command("rejuvenate").unwrap().refused);
    let slot = signed_image(10_000);
    s.upload(&slot, cfg, |_| {}).unwrap();
    drop(s);
    let (staged, _) = dev.join().unwrap();
    assert_eq!(&staged.bytes[..slot.len()], &slot[..]);
}

#[test]
fn commands_survive_a_noisy_line() {
    let (mut s, listener) = connect();
    // One input byte in 200 damaged: about one command frame in eight.
    let dev = thread::spawn(move || fake_device(listener, 200, None));
    for _ in 0..40 {
        let r = s.command("status --json").unwrap();
        assert_eq!(r.text, "{\"vms\":[]}");
    }
    drop(s);
    let (_, damaged) = dev.join().unwrap();
    assert!(damaged > 0);
}
