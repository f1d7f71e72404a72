//! Quiesce: ask every physical CPU to leave its vCPUs (each saves their
//! complete state as it unloads them) and hand itself to the layer above.
//! The mechanism of a warm reload's suspend; the reload decides what
//! happens next.
use super::machine;
use crate::arch::aarch64::gic::{gic, SGI_KICK};
use crate::arch::aarch64::sysreg::cpu_index;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set while every CPU must leave its vCPUs.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Raise the request and kick every other CPU out of its guest.
pub fn request() {
    REQUESTED.store(true, Ordering::Release);
    for cpu in 0..machine().ncpus {
        if cpu != cpu_index() {
            gic().send_sgi(cpu, SGI_KICK);
        }
    }
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Acquire)
}

/// The request is over (abandoned): CPUs run their vCPUs again.
pub fn cancel() {
    REQUESTED.store(false, Ordering::Release);
}
