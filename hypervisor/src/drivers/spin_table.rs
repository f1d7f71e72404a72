//! Starting secondary CPUs through a spin table: the Raspberry Pi firmware's
//! `armstub8` and QEMU `raspi4b`'s boot stub leave every secondary in WFE,
//! polling its own release address (the device tree's `cpu-release-addr`,
//! 0xd8 + 8n on the Pi) with its MMU and caches off; a non-zero value is the
//! physical address it branches to, at EL2.
//!
//! The protocol passes no context register, so a released CPU finds its
//! logical index itself: `spin_table_entry` (boot.S) looks its MPIDR up in
//! [`spin_table_mpidrs`], which [`release`] fills before writing the
//! release address. There is no way back: a released CPU cannot be stopped
//! or started again through the table, so warm reloads park secondaries in
//! the holding pen (reload/pen.rs), which does not depend on how they were
//! started.
use core::sync::atomic::{AtomicU64, Ordering};

/// The most CPUs a table entry exists for (the hypervisor's `MAX_CPUS`).
const SLOTS: usize = platform::MAX_CPUS;

/// MPIDR affinity fields (Aff3, Aff2, Aff1, Aff0): what the device tree's
/// `reg` of a CPU holds and what boot.S compares.
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// Logical index -> MPIDR affinity of each CPU released so far; read by
/// `spin_table_entry` with its MMU and caches off. Index 0 (the boot CPU)
/// is never looked up: a zero entry matches no secondary.
#[no_mangle]
static spin_table_mpidrs: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpinTableError {
    /// No `cpu-release-addr` for this CPU in the device tree.
    NoReleaseAddress,
    /// A release address that is zero or not 8-byte aligned.
    BadReleaseAddress(u64),
    /// A logical index beyond the table, or the boot CPU's.
    BadIndex(usize),
}

/// Push the line holding `addr` to the point of coherency (and drop it),
/// for an observer whose caches are off, and wait until that is done.
fn clean_to_poc(addr: u64) {
    // SAFETY: cache maintenance by address changes no memory contents, it
    // only writes a dirty line back; `addr` is mapped (callers' places).
    unsafe {
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) addr, options(nostack, preserves_flags))
    };
}

/// Release CPU `index` (MPIDR `mpidr`), waiting at `release_addr`, into
/// `entry` (the physical address of `spin_table_entry`). The CPU runs on
/// its own from there; it reports itself online as PSCI-started CPUs do.
pub fn release(
    index: usize,
    mpidr: u64,
    release_addr: Option<u64>,
    entry: u64,
) -> Result<(), SpinTableError> {
    let addr = release_addr.ok_or(SpinTableError::NoReleaseAddress)?;
    if addr == 0 || !addr.is_multiple_of(8) {
        return Err(SpinTableError::BadReleaseAddress(addr));
    }
    if index == 0 || index >= SLOTS {
        return Err(SpinTableError::BadIndex(index));
    }
    // The table entry first: the CPU reads it as soon as it sees its
    // release address.
    let slot = &spin_table_mpidrs[index];
    slot.store(mpidr & MPIDR_AFFINITY, Ordering::Release);
    clean_to_poc(slot.as_ptr() as u64);
    // SAFETY: the release address is the firmware's mailbox for this CPU,
    // in RAM the identity map covers (boot checks it), written by nobody
    // else, and checked aligned above.
    unsafe { core::ptr::write_volatile(addr as *mut u64, entry) };
    clean_to_poc(addr);
    // SAFETY: an event for the CPUs in WFE; the DSB above completed both
    // writes (and their cache maintenance) first.
    unsafe { core::arch::asm!("sev", options(nostack, preserves_flags)) };
    Ok(())
}
