//! The warm reload: suspend every VM in memory, jump into a fresh
//! hypervisor image without a reset, resume the VMs from a handoff block.
//! Guest RAM is never read, written or copied on this path; only the
//! hypervisor's own state is rebuilt, which is what clears its aging.
//! (A VM that boots again on its own is a *restart*, see `vcpu::lifecycle`.)
//!
//! In reading order, old image (generation N):
//!  1. [`request`] (`rejuvenate`, `upgrade`, or the periodic timer in
//!     `periodic`) checks the image to start completely, then asks every CPU
//!     to quiesce (`vcpu::quiesce`): each leaves its vCPUs at their next
//!     exit, which saves their complete state, and reports in.
//!  2. Secondaries wait in [`quiesce::park`]; CPU 0 runs [`perform`]: `save`
//!     writes the handoff block (`vmm::handoff`) into the board's handoff
//!     region, then the secondaries go to the holding pen (`pen`) or are
//!     powered off through PSCI.
//!  3. `jump` copies the trampoline (`arch/aarch64/reload.S`) to the board's
//!     trampoline page and enters it: MMU and caches off, the image from
//!     the chosen slot (`slots`: this image's pristine copy, or another
//!     build for an upgrade) copied over the running one, then the new
//!     image's entry with the warm-entry registers below.
//!
//! New image (generation N+1): boots as usual (heap, page tables, GIC);
//! `boot` recognises the warm entry ([`WarmEntry`]) and calls
//! `resume::vms`, which validates the block and rebuilds each VM around
//! its untouched RAM, before it lets the secondaries out of the pen. A
//! block that fails validation is refused with a message and the VMs are
//! cold-booted from their configuration instead, unless the new image is
//! on trial (`trial`): then it, or its panic handler, or the pen's watch
//! of a hung one hands the VMs back to the previous image (`revert`).
//!
//! # Warm-entry ABI (the only description; boot.S and reload.S follow it)
//!
//! | register | cold boot          | warm entry                               |
//! |----------|--------------------|------------------------------------------|
//! | x0       | device tree        | device tree (the same one)               |
//! | x1       | 0 (boot protocol)  | handoff block address (board's region)   |
//! | x2       | 0                  | [`WARM_MAGIC`]                           |
//! | x3       | 0                  | base of the image slot the image came from |
//! | x4       | -                  | counter value when the trampoline started |
//!
//! boot.S passes x0-x4 unchanged to `rust_primary_main`; an entry is warm
//! only if x2 is the magic *and* x1 is this board's handoff region.
pub mod jump;
pub mod pen;
pub mod periodic;
pub mod quiesce;
pub mod resume;
pub mod revert;
pub mod save;
pub mod slots;
#[cfg(blink_test_faults)]
pub mod test_fault;
pub mod trial;
pub mod upload;

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
pub use quiesce::{request, request_corrupted};

/// x2 at a warm entry ("BLINKWRM").
pub const WARM_MAGIC: u64 = 0x424c_494e_4b57_524d;

/// Handoff format minor this build writes: `BLINK_HANDOFF_MINOR` at build
/// time (default 0), so that a "next version" build can be told apart and
/// N -> N+1 -> N exercised with real blocks of both minors.
pub const HANDOFF_MINOR: u16 = parse_u16(env!("BLINK_HANDOFF_MINOR"));

const fn parse_u16(s: &str) -> u16 {
    let b = s.as_bytes();
    let mut v: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "BLINK_HANDOFF_MINOR must be a decimal number"
        );
        v = v * 10 + (b[i] - b'0') as u32;
        assert!(v <= u16::MAX as u32, "BLINK_HANDOFF_MINOR too large");
        i += 1;
    }
    v as u16
}

/// The registers of a warm entry (see the ABI above).
#[derive(Clone, Copy, Debug)]
pub struct WarmEntry {
    pub handoff: u64,
    /// Base of the image slot this image was copied from.
    pub slot_base: u64,
    /// Counter value when the old image's trampoline started.
    pub t_jump: u64,
}

impl WarmEntry {
    /// From x1-x4 at entry; None for a cold boot.
    pub fn from_entry(x1: u64, x2: u64, x3: u64, x4: u64) -> Option<Self> {
        (x2 == WARM_MAGIC && x1 == crate::board::board().handoff.0).then_some(WarmEntry {
            handoff: x1,
            slot_base: x3,
            t_jump: x4,
        })
    }
}

/// What a quiesced secondary does next (CPU 0 decides, see `perform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Release {
    /// Not decided yet: wait.
    Wait = 0,
    /// Power off through PSCI CPU_OFF (no holding pen).
    PowerOff = 1,
    /// The reload was abandoned: go back to running vCPUs.
    Abandoned = 2,
    /// Enter the holding pen and wait for the new image.
    ToPen = 3,
}

/// Everything the reload keeps in this image, in one place.
pub struct ReloadState {
    /// Secondaries that reached `park`.
    parked: AtomicUsize,
    /// A [`Release`].
    release: AtomicU8,
    t_request: AtomicU64,
    /// Debug: damage the block after writing it, to exercise the refusal
    /// path.
    corrupt: AtomicBool,
    /// This image's generation (reloads since the cold boot).
    generation: AtomicU64,
    /// Counter value when this image was entered (its age, for `status`).
    image_entered: AtomicU64,
    /// Image slot the pending reload starts (see `slots`).
    target_slot: AtomicUsize,
    /// Periodic reload: counter value at which CPU 0 starts the next one
    /// (`u64::MAX`: off), and its period. Each image sets it from the
    /// device tree when it starts, so the period carries on across reloads.
    periodic_due: AtomicU64,
    periodic_ms: AtomicU64,
    /// Slot holding the running image, and the slot of the image that
    /// handed over to this one (`slots::NONE`: none).
    current_slot: AtomicUsize,
    previous_slot: AtomicUsize,
}

static STATE: ReloadState = ReloadState {
    parked: AtomicUsize::new(0),
    release: AtomicU8::new(Release::Wait as u8),
    t_request: AtomicU64::new(0),
    corrupt: AtomicBool::new(false),
    generation: AtomicU64::new(0),
    image_entered: AtomicU64::new(0),
    target_slot: AtomicUsize::new(0),
    periodic_due: AtomicU64::new(u64::MAX),
    periodic_ms: AtomicU64::new(0),
    current_slot: AtomicUsize::new(slots::NONE),
    previous_slot: AtomicUsize::new(slots::NONE),
};

fn state() -> &'static ReloadState {
    &STATE
}

impl ReloadState {
    fn release(&self) -> Release {
        match self.release.load(Ordering::Acquire) {
            1 => Release::PowerOff,
            2 => Release::Abandoned,
            3 => Release::ToPen,
            _ => Release::Wait,
        }
    }

    fn set_release(&self, r: Release) {
        self.release.store(r as u8, Ordering::Release);
    }
}

/// This image's generation (warm reloads since the cold boot).
pub fn generation() -> u64 {
    STATE.generation.load(Ordering::Relaxed)
}

/// Counter value when this image was entered.
pub fn image_entered() -> u64 {
    STATE.image_entered.load(Ordering::Relaxed)
}

/// Boot, first thing: when this image started.
pub fn set_image_entered(t: u64) {
    STATE.image_entered.store(t, Ordering::Relaxed);
}

/// CPU 0, its own vCPUs saved: finish the suspend and jump. Returns only if
/// the reload had to be abandoned (the VMs then simply continue).
/// `console_pending` gives each VM's partial console line, carried in the
/// block so that it is not printed split.
/// `upload` is an upload over the maintenance link in progress, resumed by
/// the next image.
pub fn perform(
    dtb: u64,
    console_pending: &dyn Fn(usize) -> alloc::vec::Vec<u8>,
    upload: Option<vmm::maint::receiver::ResumeState>,
) {
    let Some((others, t_quiesced)) = quiesce::wait_for_secondaries() else {
        return;
    };
    let handoff_len = match save::write_block(t_quiesced, console_pending, upload) {
        Ok(len) => len,
        Err(why) => return quiesce::abandon(&why),
    };
    let slot = STATE.target_slot.load(Ordering::Acquire);
    let (src, copy_len) = match slots::copy_source(slot) {
        Ok(s) => s,
        Err(e) => {
            return quiesce::abandon(&alloc::format!(
                "image slot {slot} no longer holds a valid image: {e}"
            ))
        }
    };
    let parked = match quiesce::release_secondaries(others) {
        Ok(p) => p,
        Err(why) => return quiesce::abandon(why),
    };
    trial::before_jump(slot, parked);
    jump::jump(
        dtb,
        src,
        copy_len,
        handoff_len,
        crate::board::board().image_slots[slot].0,
    );
}
