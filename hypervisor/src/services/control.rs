//! The control verbs: everything a front end may ask of the hypervisor,
//! typed. The shell on the console is the first front end; the maintenance
//! link over a UART is the next. A front end only parses and prints: what
//! a verb does, and why it refuses, is decided here and below, once.
use crate::arch::aarch64::sysreg::{counter, counter_freq};
use crate::drivers::reset;
use crate::heap;
use crate::reload::{self, slots::Target};
use crate::vcpu::machine;
use crate::vcpu::vm::VmState;
use alloc::string::String;
use alloc::vec::Vec;

/// A verb that did not happen, and why (a full sentence).
pub type Refusal = String;

pub struct VmStatus {
    pub id: usize,
    pub name: String,
    pub state: VmState,
    pub ram_size: u64,
    pub ram_pa: u64,
    pub vcpus: usize,
}

/// `status`: the machine, the aging indicators and every VM.
pub struct Status {
    /// Seconds on the system counter (since the machine was reset).
    pub uptime_s: u64,
    /// Seconds since this image started.
    pub image_age_s: u64,
    /// Warm reloads since the cold boot.
    pub generation: u64,
    pub heap_used: usize,
    pub heap_total: usize,
    /// Live allocations (requests minus frees).
    pub heap_requested: usize,
    pub largest_free_block: usize,
    pub ncpus: usize,
    pub vms: Vec<VmStatus>,
}

pub fn status() -> Status {
    let m = machine();
    let (heap_used, heap_total) = heap::usage();
    Status {
        uptime_s: counter() / counter_freq(),
        image_age_s: counter().saturating_sub(reload::image_entered()) / counter_freq(),
        generation: reload::generation(),
        heap_used,
        heap_total,
        heap_requested: heap::user_bytes(),
        largest_free_block: heap::largest_free_block(),
        ncpus: m.ncpus,
        vms: m
            .vms
            .iter()
            .map(|vm| VmStatus {
                id: vm.id,
                name: vm.name.clone(),
                state: vm.state(),
                ram_size: vm.ram_size,
                ram_pa: vm.ram_pa,
                vcpus: vm.vcpus.len(),
            })
            .collect(),
    }
}

/// `rejuvenate`: warm reload into a fresh copy of this image.
pub fn rejuvenate() -> Result<(), Refusal> {
    reload::request(Target::Current)
}

/// `upgrade`: warm reload into the staged image (the staging slot: placed
/// there by an upload, or by the boot loader at a cold boot), on trial:
/// reverted unless confirmed within `timeout_s` (default
/// `reload::trial::DEFAULT_TIMEOUT_S`), confirmed by itself after
/// `confirm_after_s` of every VM making progress, if given.
pub fn upgrade(confirm_after_s: Option<u32>, timeout_s: Option<u32>) -> Result<(), Refusal> {
    reload::trial::upgrade(confirm_after_s, timeout_s)
}

/// `confirm`: the running trial image becomes permanent.
pub fn confirm() -> Result<String, Refusal> {
    reload::trial::confirm()
}

/// `rollback`: warm reload into the image the running one was upgraded
/// from.
pub fn rollback() -> Result<(), Refusal> {
    reload::request(Target::Previous)
}

/// `debug-rejuvenate-corrupt`: a reload whose handoff block is damaged on
/// purpose (the new image must refuse it and cold-boot the VMs). Called
/// in development images only (`access`): a production image has no
/// command for it, the optimizer drops it.
#[cfg_attr(not(blink_debug_commands), allow(dead_code))]
pub fn rejuvenate_corrupted() -> Result<(), Refusal> {
    reload::request_corrupted()
}

/// `images`: what each image slot holds.
pub fn images() -> Vec<reload::slots::SlotReport> {
    reload::slots::describe()
}

/// One slot of [`images`] as the text front ends (shell, maintenance link)
/// print it.
pub fn image_line(r: &reload::slots::SlotReport) -> String {
    match &r.content {
        Ok(img) => alloc::format!(
            "image slot {} at {:#x} ({} KiB): '{}', {} bytes, for {}, checksum {:#010x} ok{}",
            r.index,
            r.base,
            r.size / 1024,
            img.version,
            img.image_len,
            img.board,
            img.image_crc,
            r.role
        ),
        Err(e) => alloc::format!(
            "image slot {} at {:#x} ({} KiB): {}{}",
            r.index,
            r.base,
            r.size / 1024,
            e,
            r.role
        ),
    }
}

/// `reboot`: cold reset of the whole machine. Returns only if it could not
/// be done.
pub fn reboot() -> Refusal {
    super::console::flush_all();
    // A watchdog reset takes effect within microseconds; a second is
    // plenty before saying it did not.
    let deadline = counter() + counter_freq();
    reset::system_reset(crate::board::board().reset, || counter() < deadline)
}

/// `debug-leak <KiB>`: leak hypervisor heap in 64 KiB pieces, the aging a
/// warm reload is meant to clear. At most half the free heap. In
/// development images only (`access`).
#[cfg(blink_debug_commands)]
pub fn leak(kib: usize) -> Result<(), Refusal> {
    let (used, total) = heap::usage();
    // Leave the heap at least half free: the point is to age it, not to
    // starve the VMs' own bookkeeping.
    let limit = (total / 2).saturating_sub(used);
    if kib.saturating_mul(1024) > limit {
        return Err(alloc::format!(
            "debug-leak: {} KiB refused: at most {} KiB may be leaked",
            kib,
            limit / 1024
        ));
    }
    let mut left = kib * 1024;
    while left > 0 {
        let n = left.min(64 * 1024);
        core::mem::forget(alloc::vec![0xa5u8; n]);
        left -= n;
    }
    Ok(())
}
