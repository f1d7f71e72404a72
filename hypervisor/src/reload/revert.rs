//! The safety net of a trial upgrade's warm entry: a trial image that
//! refuses the handoff block, panics or hangs before it lets the first
//! secondary CPU out of the holding pen hands the VMs back to the previous
//! image, which resumes them from the same block and says why.
//!
//! Until then nothing is lost: the block is untouched (it is consumed
//! only once the VMs are rebuilt), the secondaries are parked outside
//! every image, guest RAM is never touched. So the net is a reload into
//! the previous slot with the block as it is:
//! - refused: [`refused`], from `boot` when `resume::vms` fails;
//! - panicked: [`on_panic`], from the panic handler;
//! - hung: nothing in the image can help. The parked CPUs watch it
//!   (`pen::watch`, armed by the old image before the jump) and reset the
//!   machine at the deadline; RAM survives the reset, and the first boot
//!   after it calls [`after_reset`], which hands the VMs back the same way.
//!   A panic whose hand-back itself gets stuck (say, on the heap's lock)
//!   ends up here too, reported as a hang.
//!
//! Once the first secondary is released ([`disarm`]) a failure cannot be
//! handed back (those CPUs run this image's code, which the reload would
//! overwrite under them); the trial's deadline still reverts an image that
//! runs but is never confirmed (`trial`).
use super::{jump, pen, slots, trial, WarmEntry};
use crate::board::board;
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use log::error;
use vmm::handoff;
use vmm::maint::trial::{Refusal, RevertReason};

/// Armed while this image is a trial image in its warm entry.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The device tree to hand on (the same one, as every reload does).
static DTB: AtomicU64 = AtomicU64::new(0);

/// Warm entry, as soon as the board is known: arm the net if this image
/// came from the slot on trial.
pub fn arm(w: &WarmEntry, dtb: u64) {
    let Some(t) = trial::record() else { return };
    let here = board().image_slots.iter().position(|s| s.0 == w.slot_base);
    if t.reverted.is_none() && here == Some(t.trial_slot as usize) {
        DTB.store(dtb, Ordering::Relaxed);
        ARMED.store(true, Ordering::Release);
    }
}

/// Just before the first secondary leaves the pen: too late to hand back.
pub fn disarm() {
    ARMED.store(false, Ordering::Release);
}

/// `resume::vms` refused the block: if this image is on trial, hand the
/// VMs back (does not return); else return, and `boot` cold-boots them.
pub fn refused(code: Refusal, why: &str) {
    if !ARMED.swap(false, Ordering::AcqRel) {
        return;
    }
    error!(
        "trial: this image refused the handoff block ({}); handing the VMs back to the previous image",
        why
    );
    let e = hand_back(RevertReason::HandoffRefused(code as u32));
    error!("trial: {}; the VMs are cold-booted instead", e);
}

/// The panic handler: if this image is a trial image in its warm entry,
/// hand the VMs back. Returns if it is not, or if that failed (with why).
pub fn on_panic() -> Option<String> {
    ARMED
        .swap(false, Ordering::AcqRel)
        .then(|| hand_back(RevertReason::Panicked))
}

/// Cold boot, before anything touches the VMs' memory: if the holding
/// pen's watch reset the machine while a trial image made its warm entry,
/// hand the VMs, still in RAM with their block, back to the previous image
/// (does not return). Returns if there is nothing to hand back.
pub fn after_reset(dtb: u64) {
    if !pen::watch_fired() {
        return;
    }
    let why = match trial::record() {
        Some(t) if t.reverted.is_none() => {
            hvprintln!(
                "trial: the trial image (slot {}) hung in its warm entry: the holding pen's watch reset the machine; handing the VMs back to slot {}",
                t.trial_slot,
                t.previous_slot
            );
            DTB.store(dtb, Ordering::Relaxed);
            hand_back(RevertReason::Hung)
        }
        _ => String::from("no trial upgrade in progress is on record"),
    };
    error!(
        "the holding pen's watch reset the machine, but the VMs cannot be handed back: {}; cold boot",
        why
    );
    pen::forget();
}

/// Mark the trial reverted and reload into the previous image with the
/// handoff block as it is. Returns only on failure, with why.
fn hand_back(reason: RevertReason) -> String {
    let Some(mut t) = trial::record() else {
        return String::from("the trial record is gone");
    };
    let prev = t.previous_slot as usize;
    if prev >= board().image_slots.len() {
        return alloc::format!("the trial record names slot {prev}, which this board lacks");
    }
    if let Err(e) = vmm::image_slot::verify(slots::bytes(prev), &slots::rules()) {
        return alloc::format!("image slot {prev} holds no valid image: {e}");
    }
    let (src, copy_len) = match slots::copy_source(prev) {
        Ok(s) => s,
        Err(e) => return alloc::format!("image slot {prev}: {e}"),
    };
    // SAFETY: the handoff region is reserved, mapped, and nothing writes it
    // during a warm entry; only its header is read here.
    let block = unsafe {
        core::slice::from_raw_parts(board().handoff.0 as *const u8, board().handoff.1 as usize)
    };
    let handoff_len = match handoff::peek_header(block) {
        Ok(h) => h.total_size as u64,
        Err(e) => return alloc::format!("the handoff block is not there any more: {e}"),
    };
    t.reverted = Some(reason);
    trial::write_record(Some(&t));
    jump::jump(
        DTB.load(Ordering::Relaxed),
        src,
        copy_len,
        handoff_len,
        board().image_slots[prev].0,
    )
}
