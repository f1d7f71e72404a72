//! Who may change this hypervisor's state, decided once at build time:
//! an image built with operator public keys (`BLINK_OPERATOR_KEYS`,
//! hypervisor/build.rs) is a **production image**: on the maintenance
//! link only an authenticated operator session may change state
//! (`vmm::maint::device::Access`), the console shell changes nothing, and
//! the `debug-*` commands are not compiled in. Without operator keys it
//! is a **development image**, which accepts anyone and says so.
//!
//! Also the challenge nonces' entropy: the CPU's FEAT_RNG (`RNDR`) when
//! it has one, else counter jitter mixed with a per-boot value, named as
//! weak wherever the source is shown.
use crate::arch::aarch64::rng;
use crate::arch::aarch64::sysreg::counter;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Mutex;
use vmm::maint::device::Access;
use vmm::maint::entropy::{Pool, Source};
use vmm::maint::signed::TrustedKey;

include!(concat!(env!("OUT_DIR"), "/operator_keys.rs"));

/// A production image: built with operator keys.
pub fn production() -> bool {
    !OPERATOR_KEYS.is_empty()
}

/// What the maintenance link's endpoint enforces: `None` in a development
/// image (anyone may change state).
pub fn access() -> Option<Access> {
    production().then(|| Access {
        operators: OPERATOR_KEYS
            .iter()
            .map(|&(public, development)| TrustedKey {
                public,
                development,
            })
            .collect(),
        board: String::from(crate::board::board().name),
    })
}

/// The image's rule in one sentence, for `status`, the link's start line
/// and the log.
pub fn describe() -> String {
    if !production() {
        return String::from("development image: anyone on the line may change state");
    }
    let test = OPERATOR_KEYS.iter().filter(|k| k.1).count();
    alloc::format!(
        "production image: state changes need an operator session (blinkctl --operator-key; {} operator key{}{})",
        OPERATOR_KEYS.len(),
        if OPERATOR_KEYS.len() == 1 { "" } else { "s" },
        if test > 0 {
            ", including a development/test key: not for a real device"
        } else {
            ""
        }
    )
}

/// Why the console shell refuses the command `line` in a production
/// image (`None`: a development image, a verb that only reads, or a
/// `debug-*` command, which a production image does not have at all).
pub fn console_refusal(line: &str) -> Option<String> {
    if !production() {
        return None;
    }
    match vmm::maint::command::parse(line.as_bytes()) {
        // Not compiled in here: the shell says it does not know them.
        Ok(Some(vmm::maint::command::Command::Debug(_))) => None,
        Ok(Some(cmd)) if vmm::maint::auth::needs_auth(&cmd) => Some(alloc::format!(
            "'{}' changes state: on this production image only an authenticated operator session on the maintenance link may (blinkctl --operator-key FILE {})",
            cmd.verb(),
            cmd.verb()
        )),
        _ => None,
    }
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// The source the nonces come from (decided at the first use).
pub fn source() -> Source {
    with_pool(|p| p.source)
}

/// 32 bytes for a challenge nonce.
pub fn entropy() -> [u8; 32] {
    with_pool(|p| {
        let mut fresh = Vec::with_capacity(48);
        fresh.extend_from_slice(&counter().to_le_bytes());
        if p.source == Source::Rndr {
            for _ in 0..4 {
                if let Some(v) = rndr_retrying() {
                    fresh.extend_from_slice(&v.to_le_bytes());
                }
            }
        } else {
            fresh.extend_from_slice(&jitter(64));
        }
        p.nonce(&fresh)
    })
}

fn with_pool<T>(f: impl FnOnce(&mut Pool) -> T) -> T {
    let mut guard = POOL.lock();
    let pool = guard.get_or_insert_with(|| {
        // The per-boot value: when this image started, how many reloads
        // came before it, and when the pool was first asked for.
        let mut seed = Vec::with_capacity(160);
        seed.extend_from_slice(&crate::reload::image_entered().to_le_bytes());
        seed.extend_from_slice(&crate::reload::generation().to_le_bytes());
        seed.extend_from_slice(&counter().to_le_bytes());
        let mut source = Source::Jitter;
        if rng::has_rndr() {
            let mut got = 0;
            for _ in 0..8 {
                if let Some(v) = rndr_retrying() {
                    seed.extend_from_slice(&v.to_le_bytes());
                    got += 1;
                }
            }
            // 256 bits from the generator, or it does not count.
            if got >= 4 {
                source = Source::Rndr;
            }
        }
        seed.extend_from_slice(&jitter(256));
        Pool::new(source, &seed)
    });
    f(pool)
}

/// `RNDR` may fail now and then (the architecture lets it); a few tries.
fn rndr_retrying() -> Option<u64> {
    (0..10).find_map(|_| rng::rndr())
}

/// Counter jitter: how long `n` small, data-dependent pieces of work take,
/// the low byte of each duration. Weak: under an emulator or on a quiet
/// core much of it is predictable.
fn jitter(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut scratch = [0u64; 16];
    let mut x = counter();
    for i in 0..n {
        let t0 = counter();
        let rounds = 1 + (x as usize & 15);
        for r in 0..rounds {
            let slot = (x as usize).wrapping_add(r) & 15;
            x = x.rotate_left(7) ^ scratch[slot] ^ i as u64;
            // black_box: the work must happen, for its timing.
            scratch[slot] = core::hint::black_box(x);
        }
        let dt = counter().wrapping_sub(t0);
        x ^= dt;
        out.push(dt as u8);
    }
    out
}
