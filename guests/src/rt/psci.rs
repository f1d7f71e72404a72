//! PSCI 1.0 calls through the SMCCC `hvc #0` conduit (the VM's DTB says
//! `method = "hvc"`), plus `smc #0` for probing that SMC is trapped too.

use core::arch::asm;
use core::sync::atomic::{AtomicPtr, Ordering};

pub const VERSION: u32 = 0x8400_0000;
pub const CPU_OFF: u32 = 0x8400_0002;
pub const CPU_ON: u32 = 0xc400_0003;
pub const AFFINITY_INFO: u32 = 0xc400_0004;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;
pub const FEATURES: u32 = 0x8400_000a;

pub const SUCCESS: i64 = 0;
pub const NOT_SUPPORTED: i64 = -1;
pub const INVALID_PARAMETERS: i64 = -2;
pub const DENIED: i64 = -3;
pub const ALREADY_ON: i64 = -4;
pub const INVALID_ADDRESS: i64 = -9;

/// AFFINITY_INFO results.
pub const AFFINITY_ON: i64 = 0;
pub const AFFINITY_OFF: i64 = 1;

/// SMCCC call via HVC; returns x0 sign-extended (PSCI errors are negative).
pub fn hvc(function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: an SMCCC call to the hypervisor; it may clobber x0-x17 (SMCCC
    // 1.0 rules), which are declared. It does not touch our memory, except
    // for CPU_ON/OFF whose effects the callers handle.
    unsafe {
        asm!("hvc #0",
            inout("x0") u64::from(function) => ret, inout("x1") a1 => _, inout("x2") a2 => _,
            inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack));
    }
    ret as i64
}

/// SMCCC call via SMC (a hypervisor traps and emulates it; without EL3 and
/// without a hypervisor the instruction is UNDEFINED: use inside `catch`).
pub fn smc(function: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: as for `hvc`.
    unsafe {
        asm!("smc #0",
            inout("x0") u64::from(function) => ret, inout("x1") a1 => _, inout("x2") a2 => _,
            inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack));
    }
    ret as i64
}

/// PSCI_VERSION: major in bits [31:16], minor in [15:0].
pub fn version() -> i64 {
    hvc(VERSION, 0, 0, 0)
}

/// Raw CPU_ON (used by probes with deliberately bad arguments).
pub fn cpu_on(target_mpidr: u64, entry: u64, context: u64) -> i64 {
    hvc(CPU_ON, target_mpidr, entry, context)
}

/// AFFINITY_INFO at affinity level 0 for `target_mpidr`.
pub fn affinity_info(target_mpidr: u64) -> i64 {
    hvc(AFFINITY_INFO, target_mpidr, 0, 0)
}

/// CPU_OFF for the calling vCPU; returns only on failure (with the error).
pub fn cpu_off() -> i64 {
    hvc(CPU_OFF, 0, 0, 0)
}

/// SYSTEM_OFF; if it returns, the vCPU halts.
pub fn system_off() -> ! {
    hvc(SYSTEM_OFF, 0, 0, 0);
    super::halt()
}

/// Function the secondary vCPUs run (all secondaries share one).
static SECONDARY_MAIN: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Starts vCPU `target_mpidr` with CPU_ON: it runs the runtime's secondary
/// trampoline (FP, vectors, MMU, own stack) and then `main(context)`.
/// Returns the PSCI status.
pub fn start_secondary(target_mpidr: u64, main: fn(u64) -> !, context: u64) -> i64 {
    SECONDARY_MAIN.store(main as *mut (), Ordering::SeqCst);
    cpu_on(
        target_mpidr,
        super::boot::rt_secondary_entry as *const () as u64,
        context,
    )
}

/// First Rust code on a secondary vCPU (called from `rt_secondary_entry`).
pub(super) extern "C" fn secondary_main(context: u64) -> ! {
    let main = SECONDARY_MAIN.load(Ordering::SeqCst);
    if main.is_null() {
        super::halt();
    }
    // SAFETY: the pointer was stored from a `fn(u64) -> !` by `start_secondary`.
    let main: fn(u64) -> ! = unsafe { core::mem::transmute::<*mut (), fn(u64) -> !>(main) };
    main(context)
}
