//! Who may change the device's state: a challenge-response over the link.
//!
//! Anyone at the UART may read (`status`, `images`, `help`, `log`); in a
//! production image the commands that change state (`needs_auth`) need
//! an authenticated session first. The device sends a fresh nonce, the
//! host tool signs it with an operator key (ed25519), the device checks
//! the signature against the operator keys built into its image. The
//! signed message names its purpose, the nonce and the board, so a
//! response cannot be replayed (each nonce is used once) nor be taken
//! from another device's or another protocol's signature; an image
//! signing key does not double as an operator key by accident (the
//! context string differs from anything `signed` signs).
//!
//! Pure logic: the caller supplies the nonce's entropy (a hardware RNG,
//! or counter-based jitter where a board has none) and the clock.
use super::command::{Command, DebugCommand};
use super::signed::TrustedKey;
use alloc::vec::Vec;
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};

/// Prefix of every signed challenge.
pub const CONTEXT: &[u8] = b"blink maintenance session v1\0";

/// What the host tool sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No challenge outstanding (never asked, already used, or expired).
    NoChallenge,
    /// The key is not an operator key of this image.
    UnknownOperator,
    BadSignature,
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AuthError::NoChallenge => write!(f, "no challenge outstanding (ask for a new one)"),
            AuthError::UnknownOperator => write!(f, "not an operator key of this image"),
            AuthError::BadSignature => write!(f, "bad signature on the challenge"),
        }
    }
}

/// The bytes an operator signs.
pub fn message(nonce: &[u8; 32], board: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 32 + board.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(nonce);
    m.extend_from_slice(board.as_bytes());
    m
}

/// The host side: sign a challenge with the operator key made from `seed`.
pub fn respond(seed: &[u8; 32], nonce: &[u8; 32], board: &str) -> Response {
    let kp = KeyPair::from_seed(Seed::new(*seed));
    Response {
        public_key: *kp.pk,
        signature: *kp.sk.sign(message(nonce, board), None),
    }
}

/// Whether `cmd` changes the device's state (and so needs a session in a
/// production image).
pub fn needs_auth(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::Help
            | Command::Status { .. }
            | Command::Exits
            | Command::Images
            | Command::Log
            | Command::Debug(DebugCommand::Vm)
    )
}

/// The device side: one outstanding challenge, one session.
#[derive(Debug, Default)]
pub struct Authenticator {
    pending: Option<([u8; 32], u64)>,
    session: Option<([u8; 32], u64)>,
    /// Ticks a challenge stays answerable.
    pub challenge_ticks: u64,
    /// Ticks a session lasts without being renewed.
    pub session_ticks: u64,
}

impl Authenticator {
    pub fn new(challenge_ticks: u64, session_ticks: u64) -> Authenticator {
        Authenticator {
            pending: None,
            session: None,
            challenge_ticks,
            session_ticks,
        }
    }

    /// A new challenge (replacing any outstanding one). `entropy` must be
    /// unpredictable: the nonce is what keeps old responses worthless.
    pub fn challenge(&mut self, entropy: [u8; 32], now: u64) -> [u8; 32] {
        self.pending = Some((entropy, now));
        entropy
    }

    /// Checks a response; the challenge is used up either way.
    pub fn verify(
        &mut self,
        r: &Response,
        operators: &[TrustedKey],
        board: &str,
        now: u64,
    ) -> Result<(), AuthError> {
        let (nonce, at) = self.pending.take().ok_or(AuthError::NoChallenge)?;
        if now.saturating_sub(at) > self.challenge_ticks {
            return Err(AuthError::NoChallenge);
        }
        if !operators.iter().any(|k| k.public == r.public_key) {
            return Err(AuthError::UnknownOperator);
        }
        let sig = Signature::new(r.signature);
        PublicKey::new(r.public_key)
            .verify(message(&nonce, board), &sig)
            .map_err(|_| AuthError::BadSignature)?;
        self.session = Some((r.public_key, now));
        Ok(())
    }

    /// The operator of the session open at `now`, if any.
    pub fn operator(&self, now: u64) -> Option<[u8; 32]> {
        self.session
            .filter(|(_, since)| now.saturating_sub(*since) <= self.session_ticks)
            .map(|(k, _)| k)
    }

    /// Whether `cmd` may run now: always if it reads only, or if this
    /// image accepts anyone (`open`: a development image, which says so
    /// in `status`), else only in a session.
    pub fn allows(&self, cmd: &Command, open: bool, now: u64) -> bool {
        open || !needs_auth(cmd) || self.operator(now).is_some()
    }

    pub fn end(&mut self) {
        self.session = None;
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maint::signed::public_key;

    const OP: [u8; 32] = [1; 32];

    fn ops() -> [TrustedKey; 1] {
        [TrustedKey {
            public: public_key(&OP),
            development: false,
        }]
    }

    #[test]
    fn an_operator_opens_a_session_once_per_nonce() {
        let mut a = Authenticator::new(100, 1000);
        let up = Command::Upgrade {
            confirm_after_s: None,
            timeout_s: None,
        };
        assert!(!a.allows(&up, false, 0));
        assert!(a.allows(&Command::Status { json: true }, false, 0));
        assert!(a.allows(&up, true, 0), "a development image accepts anyone");
        let n = a.challenge([9; 32], 10);
        let r = respond(&OP, &n, "qemu-virt");
        assert_eq!(a.verify(&r, &ops(), "qemu-virt", 20), Ok(()));
        assert!(a.allows(&up, false, 30));
        assert_eq!(a.operator(30), Some(public_key(&OP)));
        // The same response again: the nonce is used up.
        assert_eq!(
            a.verify(&r, &ops(), "qemu-virt", 40),
            Err(AuthError::NoChallenge)
        );
        // The session runs out.
        assert!(!a.allows(&up, false, 2000));
        a.end();
        assert_eq!(a.operator(30), None);
    }

    #[test]
    fn refusals() {
        let mut a = Authenticator::new(100, 1000);
        let n = a.challenge([9; 32], 0);
        // Another device's board, another key, a late answer, a forged one.
        assert_eq!(
            a.verify(&respond(&OP, &n, "raspi4b"), &ops(), "qemu-virt", 1),
            Err(AuthError::BadSignature)
        );
        let n = a.challenge([10; 32], 0);
        assert_eq!(
            a.verify(&respond(&[2; 32], &n, "qemu-virt"), &ops(), "qemu-virt", 1),
            Err(AuthError::UnknownOperator)
        );
        let n = a.challenge([11; 32], 0);
        assert_eq!(
            a.verify(&respond(&OP, &n, "qemu-virt"), &ops(), "qemu-virt", 101),
            Err(AuthError::NoChallenge)
        );
        let n = a.challenge([12; 32], 0);
        let mut r = respond(&OP, &n, "qemu-virt");
        r.signature[3] ^= 1;
        assert_eq!(
            a.verify(&r, &ops(), "qemu-virt", 1),
            Err(AuthError::BadSignature)
        );
        // A response to an old nonce after a new challenge.
        let old = a.challenge([13; 32], 0);
        a.challenge([14; 32], 0);
        assert_eq!(
            a.verify(&respond(&OP, &old, "qemu-virt"), &ops(), "qemu-virt", 1),
            Err(AuthError::BadSignature)
        );
        assert_eq!(a.operator(1), None);
    }

    #[test]
    fn what_needs_a_session() {
        for c in [
            Command::Upload,
            Command::Confirm,
            Command::Rollback,
            Command::Rejuvenate,
            Command::Reboot,
            Command::Upgrade {
                confirm_after_s: Some(3),
                timeout_s: Some(9),
            },
            Command::Debug(DebugCommand::Leak { kib: 1 }),
            Command::Debug(DebugCommand::Fault),
        ] {
            assert!(needs_auth(&c), "{c:?}");
        }
        for c in [Command::Help, Command::Images, Command::Log, Command::Exits] {
            assert!(!needs_auth(&c), "{c:?}");
        }
    }
}
