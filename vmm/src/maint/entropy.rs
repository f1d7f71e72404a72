//! The entropy pool behind the link's challenge nonces
//! (`device::Control::entropy`): whatever the hypervisor can gather (the
//! CPU's random number generator where it has one, else counter jitter
//! and a per-boot value) is hashed into a pool, and each nonce is a hash
//! of the pool, a running count and fresh input, after which the pool
//! moves on (so a nonce tells nothing about the next one, and a pool
//! seen in memory later tells nothing about the nonces before it).
//!
//! Pure logic: the caller collects the bytes and says how good they are;
//! this only mixes. Mixing does not create entropy: with counter jitter
//! alone the nonces are as guessable as the jitter, which is why the
//! hypervisor names its source in `status`.
use sha2::{Digest, Sha256};

/// Where the pool's input came from, as `status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CPU's FEAT_RNG (`RNDR`).
    Rndr,
    /// Timing jitter of the system counter mixed with a per-boot value:
    /// weak (an observer of the line and the boot may narrow it down).
    Jitter,
}

impl Source {
    /// For `status --json`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rndr => "rndr",
            Source::Jitter => "jitter",
        }
    }

    /// For `status` and the log.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Rndr => "challenge nonces from the CPU's random number generator (FEAT_RNG, RNDR)",
            Source::Jitter => {
                "challenge nonces from counter jitter and a per-boot value: WEAK entropy (this CPU has no FEAT_RNG)"
            }
        }
    }
}

pub struct Pool {
    state: [u8; 32],
    count: u64,
    pub source: Source,
}

const SEED: &[u8] = b"blink entropy pool v1 seed\0";
const NONCE: &[u8] = b"blink entropy pool v1 nonce\0";
const NEXT: &[u8] = b"blink entropy pool v1 next\0";

impl Pool {
    /// A pool from the first input (`seed`: as much as the source gives).
    pub fn new(source: Source, seed: &[u8]) -> Pool {
        let mut p = Pool {
            state: [0; 32],
            count: 0,
            source,
        };
        p.state = Sha256::new()
            .chain_update(SEED)
            .chain_update(seed)
            .finalize()
            .into();
        p
    }

    /// Mixes more input in.
    pub fn stir(&mut self, input: &[u8]) {
        self.state = Sha256::new()
            .chain_update(SEED)
            .chain_update(self.state)
            .chain_update(input)
            .finalize()
            .into();
    }

    /// 32 bytes for a challenge, with `fresh` input of this moment (a
    /// counter reading, more RNG output) mixed in; the pool moves on.
    pub fn nonce(&mut self, fresh: &[u8]) -> [u8; 32] {
        self.count += 1;
        let out: [u8; 32] = Sha256::new()
            .chain_update(NONCE)
            .chain_update(self.state)
            .chain_update(self.count.to_le_bytes())
            .chain_update(fresh)
            .finalize()
            .into();
        self.state = Sha256::new()
            .chain_update(NEXT)
            .chain_update(self.state)
            .chain_update(self.count.to_le_bytes())
            .chain_update(fresh)
            .finalize()
            .into();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ_and_depend_on_every_input() {
        let mut a = Pool::new(Source::Rndr, b"seed");
        let n1 = a.nonce(b"t");
        let n2 = a.nonce(b"t");
        assert_ne!(n1, n2, "the same fresh input twice still gives new nonces");
        // Same inputs, same nonces: the pool is only as good as its input.
        let mut b = Pool::new(Source::Rndr, b"seed");
        assert_eq!(b.nonce(b"t"), n1);
        // Another seed, another fresh input, a stir: all change the nonce.
        assert_ne!(Pool::new(Source::Rndr, b"seed2").nonce(b"t"), n1);
        assert_ne!(Pool::new(Source::Rndr, b"seed").nonce(b"u"), n1);
        let mut c = Pool::new(Source::Rndr, b"seed");
        c.stir(b"more");
        assert_ne!(c.nonce(b"t"), n1);
    }

    #[test]
    fn the_weak_source_says_so() {
        assert!(Source::Jitter.describe().contains("WEAK"));
        assert!(Source::Rndr.describe().contains("RNDR"));
        assert_eq!(Source::Jitter.name(), "jitter");
    }
}
