//! The holding pen (code in `arch/aarch64/reload.S`): where secondary CPUs wait while a
//! warm reload replaces the image, instead of being powered off and on
//! through PSCI — which costs tens of milliseconds, and which spin-table
//! boards (the Raspberry Pi 4) cannot do at all.
//!
//! It lives in the board's trampoline region, outside every image and the
//! heap: the pen code, a header (magic, number of CPUs) and one mailbox per
//! CPU (entry point, state). The old image's secondaries enter it with their
//! MMU and caches off; the new image, and only at a warm entry (a stale pen
//! page after a machine reset must never be trusted), writes each parked
//! CPU's entry point and wakes them with SEV. CPUs that are not in the pen
//! (or a pen page that does not validate) get PSCI CPU_ON as at a cold boot.
//!
//! While a trial image makes its warm entry the pen also *watches* it
//! ([`watch`]): a CPU still parked when the deadline passes resets the
//! machine, marking the header so that the next boot knows the reset came
//! from here (`revert::after_reset`). RAM survives the reset.
//!
//! Header (at `HEADER_OFF`, 8-byte words): magic ([`MAGIC`] while CPUs
//! park, [`RESET_MAGIC`] once the watch fired), number of CPUs, deadline
//! (counter value, 0: no watch), reset kind (0 none, 1 SMC, 2 two MMIO
//! writes), then the kind's arguments: the function, or address/value
//! pairs.
use crate::arch::aarch64::cache;
use crate::board::board;
use crate::drivers::reset::Recipe;
use crate::vcpu::MAX_CPUS;
use core::ptr::{read_volatile, write_volatile};

/// From the board's trampoline address (the trampoline itself is < 4 KiB).
const PEN_OFFSET: u64 = 0x1_0000;
const HEADER_OFF: u64 = 0x780;
const MAILBOX_OFF: u64 = 0x800;
/// One mailbox per cache writeback granule (at most 128 bytes on the cores
/// we run on; CTR_EL0.CWG is checked in `prepare`): a CPU cleaning its own
/// mailbox's line must never write back a neighbour's stale word.
const MAILBOX_SIZE: u64 = 128;
const MAGIC: u64 = u64::from_le_bytes(*b"BLINKPEN");
/// Written by the pen's watch just before it resets the machine.
const RESET_MAGIC: u64 = u64::from_le_bytes(*b"BLINKRST");
const PARKED: u64 = 1;
const DEADLINE: u64 = HEADER_OFF + 16;
const RESET_KIND: u64 = HEADER_OFF + 24;
const RESET_ARGS: u64 = HEADER_OFF + 32;

extern "C" {
    static holding_pen: u8;
    static holding_pen_end: u8;
}

fn base() -> u64 {
    board().trampoline + PEN_OFFSET
}

fn mailbox(cpu: usize) -> u64 {
    base() + MAILBOX_OFF + cpu as u64 * MAILBOX_SIZE
}

/// A word another CPU wrote with its caches off: drop any stale copy of the
/// line first.
fn read_uncached(addr: u64) -> u64 {
    cache::clean_invalidate_to_poc(addr, 8);
    // SAFETY: `addr` is inside the pen page, reserved in the board's
    // trampoline region and identity mapped; aligned to 8.
    unsafe { read_volatile(addr as *const u64) }
}

/// A word for a CPU whose caches are off: write it through to memory.
fn write_through(addr: u64, value: u64) {
    // SAFETY: as in `read_uncached`.
    unsafe { write_volatile(addr as *mut u64, value) };
    cache::clean_to_poc(addr, 8);
}

/// CPU 0 of the old image, before letting the secondaries go: install the
/// pen code and empty mailboxes for `ncpus` CPUs. False if it cannot be
/// used (then the secondaries are powered off instead).
pub fn prepare(ncpus: usize) -> bool {
    // SAFETY: linker symbols delimit the pen code in reload.S.
    let (start, end) = unsafe {
        (
            &holding_pen as *const u8 as u64,
            &holding_pen_end as *const u8 as u64,
        )
    };
    let len = end - start;
    let granule = cache::writeback_granule();
    if len > HEADER_OFF || ncpus > MAX_CPUS || granule > MAILBOX_SIZE {
        return false;
    }
    // SAFETY: the pen page is reserved (trampoline region), mapped, and no
    // CPU runs from it now: the previous reload's secondaries left it long
    // ago (each is back in its run loop before a reload can start). The pen
    // code is position independent.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, base() as *mut u8, len as usize);
        core::ptr::write_bytes(
            (base() + MAILBOX_OFF) as *mut u8,
            0,
            MAX_CPUS * MAILBOX_SIZE as usize,
        );
        // No watch unless `watch` sets one.
        core::ptr::write_bytes((base() + HEADER_OFF) as *mut u8, 0, 0x80);
        write_volatile((base() + HEADER_OFF) as *mut u64, MAGIC);
        write_volatile((base() + HEADER_OFF + 8) as *mut u64, ncpus as u64);
    }
    cache::clean_invalidate_to_poc(base(), MAILBOX_OFF + MAX_CPUS as u64 * MAILBOX_SIZE);
    cache::invalidate_icache();
    true
}

/// A secondary of the old image, its vCPUs saved: go to the pen and wait
/// for the new image.
pub fn enter(cpu: usize) -> ! {
    // The hypervisor timer must not fire into the next image's vectors
    // before it has set them up; no guest state stays live.
    crate::arch::aarch64::timer::disarm_hyp_timer();
    crate::arch::aarch64::guest::leave_vm();
    // SAFETY: `prepare` installed the pen code at `base()` and cleaned it
    // to memory; it never returns (it enters the new image).
    unsafe {
        let pen: extern "C" fn(u64, u64, u64) -> ! = core::mem::transmute(base() as usize);
        pen(cpu as u64, mailbox(cpu), base() + HEADER_OFF)
    }
}

/// CPU 0 of the old image, the pen prepared, before the jump into a trial
/// image: the parked CPUs reset the machine with `reset` unless the new
/// image releases them before the counter reaches `deadline`.
pub fn watch(deadline: u64, reset: Recipe) {
    let (kind, args) = match reset {
        Recipe::Smc { function } => (1, [function as u64, 0, 0, 0]),
        Recipe::Mmio32([(a0, v0), (a1, v1)]) => (2, [a0, v0 as u64, a1, v1 as u64]),
    };
    for (i, a) in args.iter().enumerate() {
        write_through(RESET_ARGS + base() + 8 * i as u64, *a);
    }
    write_through(base() + RESET_KIND, kind);
    write_through(base() + DEADLINE, deadline);
}

/// Whether the machine was reset by the pen's watch (see [`watch`]) since
/// CPUs last parked: read by the first boot after a reset, left in place
/// for the image it hands the VMs back to.
pub fn watch_fired() -> bool {
    read_uncached(base() + HEADER_OFF) == RESET_MAGIC
}

/// A boot that will not resume VMs: forget a fired watch.
pub fn forget() {
    if watch_fired() {
        write_through(base() + HEADER_OFF, 0);
    }
}

/// What the new image found in the pen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// CPUs released (a bit mask; 0 if the pen page describes none).
    Released(u64),
    /// The pen's watch reset the machine: every CPU starts as at a cold
    /// boot (a spin table is fresh again).
    MachineReset,
}

/// CPU 0 of the old image: whether `cpu` reached the pen (its caches are
/// clean and off) before the counter reaches `deadline`.
pub fn wait_parked(cpu: usize, deadline: u64) -> bool {
    use crate::arch::aarch64::sysreg::counter;
    loop {
        if read_uncached(mailbox(cpu) + 8) == PARKED {
            return true;
        }
        if counter() > deadline {
            return false;
        }
        // The pen sends SEV once parked; the event stream bounds the wait.
        crate::arch::aarch64::sysreg::wfe();
    }
}

/// New image, warm entry only: release every CPU parked in the pen into
/// `entry` (with x0 = its index). The pen header is erased either way, so
/// it is used at most once.
pub fn release(ncpus: usize, entry: u64) -> Found {
    match read_uncached(base() + HEADER_OFF) {
        MAGIC => {}
        RESET_MAGIC => {
            write_through(base() + HEADER_OFF, 0);
            return Found::MachineReset;
        }
        _ => return Found::Released(0),
    }
    // The watch first: no CPU may reset the machine once one is released.
    write_through(base() + DEADLINE, 0);
    let parked_cpus = read_uncached(base() + HEADER_OFF + 8) as usize;
    let mut released = 0;
    for cpu in 1..ncpus.min(parked_cpus).min(MAX_CPUS) {
        if read_uncached(mailbox(cpu) + 8) == PARKED {
            write_through(mailbox(cpu), entry);
            released |= 1 << cpu;
        }
    }
    write_through(base() + HEADER_OFF, 0);
    crate::arch::aarch64::sysreg::dsb_sy_sev();
    Found::Released(released)
}
