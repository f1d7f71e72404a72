//! Steps 1 and 2 of the old image's side: the request (everything checked
//! before any VM pauses), every CPU leaving its vCPUs, and what the
//! secondaries do once CPU 0 has saved the VMs.
use super::slots::{self, Target};
use super::{pen, periodic, state, Release};
use crate::arch::aarch64::sysreg::{counter, counter_freq, cpu_index, sev, wfe, wfi};
use crate::drivers::psci;
use crate::vcpu::{machine, quiesce, STARTED_CPUS};
use alloc::string::String;
use core::sync::atomic::Ordering;
use log::error;

/// The `debug-rejuvenate-corrupt` command: a reload whose handoff block is
/// damaged after it was written (the new image must refuse it).
pub fn request_corrupted() -> Result<(), String> {
    state().corrupt.store(true, Ordering::Release);
    let r = request(Target::Current);
    if r.is_err() {
        state().corrupt.store(false, Ordering::Release);
    }
    r
}

/// The `rejuvenate` (`Target::Current`), `upgrade` (`Target::Staged`) and
/// `rollback` (`Target::Previous`) verbs. The image to start is checked completely (checksum, arm64
/// header) before any VM is paused; on a refusal nothing changes and the
/// reason is returned (a full sentence, for any front end to show).
pub fn request(target: Target) -> Result<(), String> {
    if quiesce::requested() {
        return Err(String::from("rejuvenate: a reload is already in progress"));
    }
    let started = STARTED_CPUS.load(Ordering::Acquire);
    let online = machine().online.load(Ordering::Acquire);
    if online & started != started {
        return Err(alloc::format!(
            "rejuvenate: CPUs {:#x} started but not all online yet ({:#x}); nothing changes, try again",
            started,
            online
        ));
    }
    let (slot, img) = slots::choose(target)
        .map_err(|e| alloc::format!("rejuvenate: {}; nothing changes, VMs keep running", e))?;
    if target != Target::Current {
        hvprintln!(
            "{}: image slot {} holds '{}' ({} bytes, checksum ok); this is '{}'",
            target.verb(),
            slot,
            img.version,
            img.image_len,
            crate::VERSION
        );
    }
    let s = state();
    s.target_slot.store(slot, Ordering::Release);
    s.t_request.store(counter(), Ordering::Release);
    s.parked.store(0, Ordering::Release);
    s.set_release(Release::Wait);
    hvprintln!(
        "rejuvenate: suspending {} VMs for a warm reload (generation {})",
        machine().vms.len(),
        s.generation.load(Ordering::Relaxed) + 1
    );
    quiesce::request();
    Ok(())
}

/// A secondary CPU with its vCPUs saved: wait for CPU 0's decision. Returns
/// only if the reload was abandoned.
pub fn park() {
    let s = state();
    s.parked.fetch_add(1, Ordering::AcqRel);
    sev();
    loop {
        match s.release() {
            Release::ToPen => pen::enter(cpu_index()),
            Release::PowerOff => {
                if let Some(c) = psci::conduit() {
                    let _ = psci::cpu_off(c);
                }
                // CPU_OFF does not return; if it did, stay quiet.
                loop {
                    wfi();
                }
            }
            Release::Abandoned => return,
            // CPU 0 sends SEV with its decision; the event stream bounds it.
            Release::Wait => wfe(),
        }
    }
}

/// Give up this attempt: the secondaries and the VMs carry on.
pub fn abandon(why: &str) {
    error!("rejuvenate: {}; reload abandoned, VMs resume", why);
    let s = state();
    // A debug corruption applies to this attempt only.
    s.corrupt.store(false, Ordering::Release);
    s.set_release(Release::Abandoned);
    sev();
    quiesce::cancel();
    periodic::restart();
}

/// CPU 0: wait until every secondary in its run loop has parked (`request`
/// made sure every CPU this image started is among them). Returns the
/// secondaries' bit mask and when the last one arrived; None (abandoned)
/// if one does not within 2 s.
pub fn wait_for_secondaries() -> Option<(usize, u64)> {
    let others = machine().online.load(Ordering::Acquire) & !1;
    let deadline = counter() + counter_freq() * 2;
    while state().parked.load(Ordering::Acquire) < others.count_ones() as usize {
        if counter() > deadline {
            abandon("not every CPU stopped its vCPUs within 2 s");
            return None;
        }
        wfe();
    }
    Some((others, counter()))
}

/// CPU 0, the block written: send the parked secondaries to the holding pen
/// (or, without one, power them off) and wait until none runs old code.
/// True if at least one now waits in the pen.
pub fn release_secondaries(others: usize) -> Result<bool, &'static str> {
    let s = state();
    let h = machine();
    let pen = pen::prepare(h.ncpus);
    if !pen && others != 0 && psci::conduit().is_none() {
        return Err("secondary CPUs can be neither parked nor powered off");
    }
    if pen {
        s.set_release(Release::ToPen);
        sev();
        // Past this point there is no way back for a parked CPU (its caches
        // are off, it waits for the new image), and jumping while another
        // CPU still runs old code would overwrite it under its feet: wait
        // for every one, however long, and say so.
        for cpu in (1..usize::BITS as usize).filter(|c| others & (1 << c) != 0) {
            while !pen::wait_parked(cpu, counter() + counter_freq()) {
                error!(
                    "rejuvenate: cpu {} has not reached the holding pen yet; waiting",
                    cpu
                );
            }
        }
    } else {
        s.set_release(Release::PowerOff);
        sev();
        if let Some(c) = psci::conduit() {
            for cpu in h.cpu_mpidrs.iter().skip(1) {
                let deadline = counter() + counter_freq();
                while !psci::is_off(c, *cpu) && counter() < deadline {
                    core::hint::spin_loop();
                }
            }
        }
    }
    Ok(pen && others != 0)
}
