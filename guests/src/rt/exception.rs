//! EL1 exception handling.
//!
//! Synchronous exceptions are printed and the faulting instruction is skipped
//! (ELR += 4), so a guest survives a probe that the hypervisor answers with an
//! injected abort or that is UNDEFINED at EL1. Code that *expects* a fault
//! wraps it in [`catch`]: the fault is then recorded quietly and returned.
//! A fault at an instruction outside this image (a call, with `blr`, to an
//! address that cannot be executed) returns to the caller (x30) instead.
//! IRQs go to the handler registered with [`set_irq_handler`].

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use super::{cpu_id, halt, MAX_CPUS};
use crate::println;

/// Registers saved by the vector code (layout shared with `boot.rs`).
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
    /// q0..q31, FPSR, FPCR: saved and restored by the assembly only.
    _fp: [u128; 33],
}

/// Vector table entry kinds, in table order (`rt_vectors` in `boot.rs`).
#[rustfmt::skip]
const KIND_NAMES: [&str; 16] = [
    "sync/SP0", "irq/SP0", "fiq/SP0", "serror/SP0",
    "sync", "irq", "fiq", "serror",
    "sync/lower64", "irq/lower64", "fiq/lower64", "serror/lower64",
    "sync/lower32", "irq/lower32", "fiq/lower32", "serror/lower32",
];
const KIND_SYNC: u64 = 4;
const KIND_IRQ: u64 = 5;
const KIND_FIQ: u64 = 6;
const KIND_SERROR: u64 = 7;

const SPSR_I: u64 = 1 << 7;
const SPSR_F: u64 = 1 << 6;

/// ESR_EL1.EC values we name or treat specially.
pub const EC_UNKNOWN: u64 = 0x00;
pub const EC_SVC64: u64 = 0x15;
pub const EC_INSN_ABORT_SAME: u64 = 0x21;
pub const EC_PC_ALIGN: u64 = 0x22;
pub const EC_DATA_ABORT_SAME: u64 = 0x25;

/// A synchronous exception recorded by [`catch`].
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
}

impl Fault {
    /// Exception class (ESR_EL1.EC).
    pub fn class(&self) -> u64 {
        self.esr >> 26
    }
}

/// Short name of an exception class, for messages.
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        EC_UNKNOWN => "undefined",
        0x01 => "wfi/wfe",
        0x07 => "fp/simd access",
        EC_SVC64 => "svc",
        0x16 => "hvc",
        0x17 => "smc",
        0x18 => "msr/mrs",
        0x20 | EC_INSN_ABORT_SAME => "instruction abort",
        EC_PC_ALIGN => "pc alignment",
        0x24 | EC_DATA_ABORT_SAME => "data abort",
        0x26 => "sp alignment",
        0x2f => "serror",
        0x3c => "brk",
        _ => "other",
    }
}

struct CatchSlot {
    armed: AtomicBool,
    caught: AtomicBool,
    esr: AtomicU64,
    far: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise the array
const EMPTY_SLOT: CatchSlot = CatchSlot {
    armed: AtomicBool::new(false),
    caught: AtomicBool::new(false),
    esr: AtomicU64::new(0),
    far: AtomicU64::new(0),
};
static CATCH: [CatchSlot; MAX_CPUS] = [EMPTY_SLOT; MAX_CPUS];

/// Runs `f`; if it raises a synchronous exception, the faulting instruction is
/// skipped and the first such fault is returned instead of `f`'s result.
/// `f` should be a single access in inline assembly, so that skipping that one
/// instruction leaves the program in a defined state.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Fault> {
    let slot = &CATCH[cpu_id()];
    slot.caught.store(false, Ordering::SeqCst);
    slot.armed.store(true, Ordering::SeqCst);
    let result = f();
    slot.armed.store(false, Ordering::SeqCst);
    if slot.caught.load(Ordering::SeqCst) {
        Err(Fault {
            esr: slot.esr.load(Ordering::SeqCst),
            far: slot.far.load(Ordering::SeqCst),
        })
    } else {
        Ok(result)
    }
}

static IRQ_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the function called for every IRQ (it must acknowledge the GIC).
pub fn set_irq_handler(handler: fn()) {
    IRQ_HANDLER.store(handler as *mut (), Ordering::SeqCst);
}

fn read_esr_far() -> (u64, u64) {
    let (esr, far): (u64, u64);
    // SAFETY: reading the syndrome registers has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, esr_el1", "mrs {}, far_el1", out(reg) esr, out(reg) far,
            options(nomem, nostack, preserves_flags));
    }
    (esr, far)
}

/// Called by `rt_exception_common` with the saved registers.
pub(super) extern "C" fn exception_entry(frame: &mut Frame, kind: u64) {
    match kind {
        KIND_SYNC => sync_exception(frame),
        KIND_IRQ => {
            let handler = IRQ_HANDLER.load(Ordering::SeqCst);
            if handler.is_null() {
                println!("exception: irq without handler; masking irqs");
                frame.spsr |= SPSR_I;
            } else {
                // SAFETY: the pointer was stored from a `fn()` by `set_irq_handler`.
                let handler: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(handler) };
                handler();
            }
        }
        KIND_FIQ => {
            println!("exception: unexpected fiq; masking fiqs");
            frame.spsr |= SPSR_F;
        }
        KIND_SERROR => {
            let (esr, _) = read_esr_far();
            println!(
                "exception: serror esr={:#x} elr={:#x}; continuing",
                esr, frame.elr
            );
        }
        _ => {
            let (esr, far) = read_esr_far();
            let name = KIND_NAMES.get(kind as usize).copied().unwrap_or("?");
            println!(
                "exception: unexpected {} esr={:#x} elr={:#x} far={:#x}; cpu halted",
                name, esr, frame.elr, far
            );
            halt();
        }
    }
}

/// Whether `pc` lies inside this image's code and data.
fn in_image(pc: u64) -> bool {
    extern "C" {
        static __image_start: u8;
    }
    let start = core::ptr::addr_of!(__image_start) as u64;
    (start..super::image_end() as u64).contains(&pc)
}

fn sync_exception(frame: &mut Frame) {
    let (esr, far) = read_esr_far();
    let ec = esr >> 26;
    let slot = &CATCH[cpu_id()];
    let armed = slot.armed.load(Ordering::SeqCst);
    let fetch = matches!(ec, EC_INSN_ABORT_SAME | EC_PC_ALIGN) || !in_image(frame.elr);
    if armed && fetch {
        // A `blr` under `catch` went astray: back to its caller.
        if !slot.caught.load(Ordering::SeqCst) {
            slot.esr.store(esr, Ordering::SeqCst);
            slot.far.store(far, Ordering::SeqCst);
            slot.caught.store(true, Ordering::SeqCst);
        }
        frame.elr = frame.x[30];
        return;
    }
    // An exception at the instruction fetch itself cannot be skipped.
    if matches!(ec, EC_INSN_ABORT_SAME | EC_PC_ALIGN) {
        println!(
            "exception: {} esr={:#x} elr={:#x} far={:#x}; cpu halted",
            class_name(ec),
            esr,
            frame.elr,
            far
        );
        halt();
    }
    if armed && !slot.caught.load(Ordering::SeqCst) {
        slot.esr.store(esr, Ordering::SeqCst);
        slot.far.store(far, Ordering::SeqCst);
        slot.caught.store(true, Ordering::SeqCst);
    } else if !armed {
        println!(
            "exception: {} esr={:#x} elr={:#x} far={:#x}; skipping instruction",
            class_name(ec),
            esr,
            frame.elr,
            far
        );
    }
    // SVC has ELR pointing after the instruction already; everything else
    // (aborts, UNDEFINED, brk, traps) points at the faulting instruction.
    if ec != EC_SVC64 {
        frame.elr += 4;
    }
}
