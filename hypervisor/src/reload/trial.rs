//! Trial upgrades (MCUboot's test/confirm, without the reboot): `upgrade`
//! reloads into the staged image *on trial*; `confirm` (or, if asked for,
//! every VM making progress for N seconds) makes it permanent; if neither happens
//! before the trial's deadline, the trial image reloads back into the
//! previous one, which resumes the VMs and says why. The rules are
//! `vmm::maint::trial`; this file keeps the record and acts on verdicts.
//!
//! The trial travels in a *record* in the last page of the handoff region,
//! apart from the handoff block, so an image can read it whatever it makes
//! of the block. The old image writes it just before it jumps, the new one
//! adopts it when it starts, the trial ends by clearing it (confirmed,
//! rolled back) or by marking it reverted and reloading (the previous image
//! then reports the reason and clears it). A cold boot clears it.
//!
//! A trial image that refuses the handoff block, panics or hangs in its
//! warm entry never gets that far: `revert` hands the VMs back.
use super::slots::{self, Target};
use crate::arch::aarch64::cache;
use crate::arch::aarch64::sysreg::{counter, counter_freq};
use crate::board::board;
use crate::vcpu::machine;
use crate::vcpu::vm::VmState;
use alloc::string::String;
use log::{error, info};
use spin::Mutex;
use vmm::maint::trial::{RevertReason, Trial, Verdict, TRIAL_LEN};

/// How long a trial may go unconfirmed when `upgrade` names no timeout.
pub const DEFAULT_TIMEOUT_S: u32 = 300;

/// The trial this image runs (`active`), and the one the reload being
/// prepared starts (`pending`, written into the record just before the
/// jump).
struct Trials {
    active: Option<Trial>,
    pending: Option<Trial>,
}

static TRIALS: Mutex<Trials> = Mutex::new(Trials {
    active: None,
    pending: None,
});

fn record_addr() -> u64 {
    let (base, size) = board().handoff;
    base + size - RECORD_PAGE
}

/// The page the record takes from the end of the handoff region.
pub const RECORD_PAGE: u64 = 0x1000;

pub(super) fn write_record(t: Option<&Trial>) {
    let mut bytes = [0u8; TRIAL_LEN];
    if let Some(t) = t {
        bytes.copy_from_slice(&t.to_bytes());
    }
    // SAFETY: the last page of the handoff region is reserved for the
    // record (the handoff writer stops short of it, see `save`), mapped,
    // outside the heap; only CPU 0 writes it, from this file.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), record_addr() as *mut u8, TRIAL_LEN);
    }
    cache::clean_to_poc(record_addr(), TRIAL_LEN as u64);
}

/// The record as the previous image left it (None: none, or damaged).
pub(super) fn record() -> Option<Trial> {
    // SAFETY: as in `write_record`; read at start, before this image
    // writes it.
    let bytes = unsafe { core::slice::from_raw_parts(record_addr() as *const u8, TRIAL_LEN) };
    Trial::from_bytes(bytes)
}

fn seconds(ticks: u64) -> u64 {
    ticks / counter_freq().max(1)
}

/// `upgrade [--confirm-after N] [--timeout S]`: a reload into the staged
/// image on trial.
pub fn upgrade(confirm_after_s: Option<u32>, timeout_s: Option<u32>) -> Result<(), String> {
    let cur =
        slots::current().ok_or_else(|| String::from("upgrade: no image slot holds this image"))?;
    if let Some(t) = TRIALS.lock().active {
        return Err(alloc::format!(
            "upgrade: this image (slot {}) is itself on trial: 'confirm' or 'rollback' first",
            t.trial_slot
        ));
    }
    let freq = counter_freq();
    let timeout = timeout_s.unwrap_or(DEFAULT_TIMEOUT_S) as u64 * freq;
    let trial = Trial::start(
        cur as u8,
        slots::staging() as u8,
        counter(),
        timeout,
        confirm_after_s.map(|n| n as u64 * freq),
    );
    TRIALS.lock().pending = Some(trial);
    super::request(Target::Staged).inspect_err(|_| {
        TRIALS.lock().pending = None;
    })
}

/// How long a trial image may take from the jump to releasing the first
/// secondary from the holding pen (about a millisecond when it is well)
/// before the pen's watch takes it for hung.
pub const WARM_ENTRY_LIMIT_S: u64 = 5;

/// `perform`, the last step before the jump into `slot`: a trial prepared
/// for it goes into the record and, if secondaries wait in the holding pen
/// (`parked`), they watch the trial image's warm entry. A jump elsewhere
/// keeps the record as it is (a rejuvenation carries a trial on, a
/// rollback ends it in the next image).
pub fn before_jump(slot: usize, parked: bool) {
    let pending = TRIALS.lock().pending.take();
    if let Some(t) = pending.filter(|t| t.trial_slot as usize == slot) {
        // Timed from the jump, not from the request.
        let now = counter();
        let t = Trial::start(
            t.previous_slot,
            t.trial_slot,
            now,
            t.deadline - t.started_at,
            t.confirm_after,
        );
        write_record(Some(&t));
        match (parked, crate::drivers::reset::recipe(board().reset)) {
            (true, Some(r)) => {
                super::pen::watch(now + WARM_ENTRY_LIMIT_S * counter_freq(), r)
            }
            (false, _) => error!(
                "trial: no secondary CPU waits in the holding pen: a hang of the trial image in its warm entry will not be caught"
            ),
            (true, None) => error!(
                "trial: this machine cannot be reset from the holding pen: a hang of the trial image in its warm entry will not be caught"
            ),
        }
    }
}

/// Boot, once the slots are known: cold (`warm` false) forgets any record;
/// warm adopts a trial of this image, or reports how one ended.
pub fn start(warm: bool) {
    if !warm {
        write_record(None);
        return;
    }
    let Some(t) = record() else { return };
    let cur = slots::current();
    if t.reverted.is_none() && cur == Some(t.trial_slot as usize) {
        let left = seconds(t.deadline.saturating_sub(counter()));
        match t.confirm_after {
            Some(n) => info!(
                "trial: this image (slot {}) is on trial: confirmed after {} s of every VM making progress, or by 'confirm'; reverts to slot {} in {} s otherwise",
                t.trial_slot,
                seconds(n),
                t.previous_slot,
                left
            ),
            None => info!(
                "trial: this image (slot {}) is on trial: 'confirm' within {} s or it reverts to slot {}",
                t.trial_slot, left, t.previous_slot
            ),
        }
        TRIALS.lock().active = Some(t);
        return;
    }
    if cur == Some(t.previous_slot as usize) {
        match t.reverted {
            Some(r) => {
                slots::forget_previous();
                info!(
                    "trial: the upgrade to slot {} was reverted ({}); this image (slot {}) resumed the VMs, slot {} is staged again",
                    t.trial_slot,
                    reason(r),
                    t.previous_slot,
                    t.trial_slot
                )
            }
            None => info!(
                "trial: the upgrade to slot {} ended by rollback; this image (slot {}) runs",
                t.trial_slot, t.previous_slot
            ),
        }
    }
    write_record(None);
}

fn reason(r: RevertReason) -> String {
    match r {
        RevertReason::NotConfirmed => String::from("not confirmed in time"),
        RevertReason::HandoffRefused(code) => alloc::format!(
            "the trial image refused the handoff block: {}",
            vmm::maint::trial::Refusal::describe(code)
        ),
        RevertReason::Panicked => String::from("the trial image panicked"),
        RevertReason::Hung => String::from("the trial image hung in its warm entry"),
    }
}

/// `confirm`: make the running trial image permanent.
pub fn confirm() -> Result<String, String> {
    let cur = slots::current().unwrap_or(slots::NONE) as u8;
    let mut t = TRIALS.lock();
    Trial::confirm(t.active.as_ref(), cur, cur).map_err(|e| alloc::format!("{e}"))?;
    t.active = None;
    write_record(None);
    info!(
        "trial: confirmed by the operator: this image (slot {}) is permanent",
        cur
    );
    Ok(alloc::format!(
        "confirm: the image in slot {cur} is permanent\n"
    ))
}

/// For `status`: the trial in progress, if any.
pub fn describe() -> Option<String> {
    let t = TRIALS.lock().active?;
    let left = seconds(t.deadline.saturating_sub(counter()));
    Some(alloc::format!(
        "trial: slot {} on trial, reverts to slot {} in {} s unless confirmed{}",
        t.trial_slot,
        t.previous_slot,
        left,
        match t.confirm_after {
            Some(n) => alloc::format!(
                " (confirms itself after {} s of every VM making progress{})",
                seconds(n),
                match stalled(counter()) {
                    s if s.is_empty() => String::new(),
                    s => alloc::format!("; no progress now: {s}"),
                }
            ),
            None => String::new(),
        }
    ))
}

/// When CPU 0 must look at the trial next (`u64::MAX`: no trial).
pub fn due() -> u64 {
    match TRIALS.try_lock().and_then(|t| t.active) {
        Some(_) => counter() + counter_freq() / 4,
        None => u64::MAX,
    }
}

/// A VM counts as making progress if it runs and showed a sign of life
/// (`Vm::note_progress`: an exit of its own, or an interrupt it finished)
/// within this window. Long enough for a tickless idle kernel, which still
/// wakes for its own timers (Linux idles at ~65 exits/s here, `bench
/// linux`); a guest spinning with its interrupts masked shows none.
const PROGRESS_WINDOW_S: u64 = 3;

/// The VMs not making progress at `now`, as "vm 1 'name' (why)", comma
/// separated; empty if every VM is.
fn stalled(now: u64) -> String {
    let since = now.saturating_sub(PROGRESS_WINDOW_S * counter_freq());
    let mut out = String::new();
    for vm in machine().vms.iter() {
        let why = if vm.state() != VmState::Running {
            String::from("not running")
        } else if !vm.progressed_since(since) {
            alloc::format!("no exit or finished interrupt of its own for {PROGRESS_WINDOW_S} s")
        } else {
            continue;
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&alloc::format!("vm {} '{}' ({})", vm.id, vm.name, why));
    }
    out
}

/// CPU 0, between guest exits: confirm a healthy trial, revert an
/// unconfirmed one at its deadline.
pub fn check() {
    if crate::vcpu::quiesce::requested() {
        return;
    }
    let Some(mut guard) = TRIALS.try_lock() else {
        return;
    };
    let Some(t) = guard.active.as_mut() else {
        return;
    };
    let now = counter();
    let stalled = stalled(now);
    match t.poll(now, stalled.is_empty()) {
        Verdict::Wait => {}
        Verdict::Confirm => {
            let slot = t.trial_slot;
            guard.active = None;
            drop(guard);
            write_record(None);
            info!(
                "trial: every VM made progress for the time asked: this image (slot {}) is permanent",
                slot
            );
        }
        Verdict::Revert(r) => {
            let mut t = *t;
            guard.active = None;
            drop(guard);
            t.reverted = Some(r);
            write_record(Some(&t));
            if t.confirm_after.is_some() && !stalled.is_empty() {
                info!("trial: no progress at the deadline: {}", stalled);
            }
            info!(
                "trial: {}: reverting to the previous image (slot {})",
                reason(r),
                t.previous_slot
            );
            if let Err(why) = super::request(Target::Previous) {
                write_record(None);
                error!("trial: cannot revert: {}; this image stays, permanent", why);
            }
        }
    }
}
