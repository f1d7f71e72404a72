//! A level-sensitive shared interrupt from a real device: the second
//! PL011 of QEMU `virt` (0x0904_0000, SPI 8 = INTID 40), passed through to
//! the VM under blink. Its transmit interrupt is a level the device holds
//! until the driver clears it (UARTICR), which makes a level SPI on demand.

use core::sync::atomic::{AtomicU32, Ordering};

use guests::println;
use guests::rt::{exception, gic, timer};

use crate::report::{wait_until, Tally, PROGRESS_TIMEOUT_MS};

const UART: usize = 0x0904_0000;
const INTID: u32 = 40;
const DR: usize = 0x000;
const LCR_H: usize = 0x02c;
const CR: usize = 0x030;
const IMSC: usize = 0x038;
const ICR: usize = 0x044;
const PERIPH_ID0: usize = 0xfe0;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const INT_TX: u32 = 1 << 5;
const INT_ALL: u32 = 0x7ff;
/// Rounds of the check: one delivery each.
const ROUNDS: u32 = 10;

/// Interrupts taken from the UART while the check runs (0 = not running).
static TAKEN: AtomicU32 = AtomicU32::new(0);
static RUNNING: AtomicU32 = AtomicU32::new(0);

fn read(offset: usize) -> u32 {
    // SAFETY: a register of the PL011 this module owns (probed first).
    unsafe { core::ptr::read_volatile((UART + offset) as *const u32) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile((UART + offset) as *mut u32, value) }
}

/// Called by the IRQ handler with every IAR; takes the UART's. It ends
/// the interrupt *before* clearing the device, as a driver may: the GIC
/// then sees the line still high for a moment, and must not deliver the
/// interrupt again once the line has dropped.
pub fn on_irq(iar: u32) -> bool {
    if gic::intid(iar) != INTID || RUNNING.load(Ordering::SeqCst) == 0 {
        return false;
    }
    TAKEN.fetch_add(1, Ordering::SeqCst);
    gic::eoi(iar);
    write(ICR, INT_TX);
    true
}

/// `level_spi_after_eoi`: ten times, a byte sent on the UART raises its
/// transmit interrupt (a level SPI), whose handler ends it at the GIC and
/// then clears it at the device: each round exactly one delivery.
pub fn level_after_eoi(t: &mut Tally) {
    let name = "level_spi_after_eoi";
    // A PL011 answers with PeriphID0 = 0x11; nothing there raises an abort.
    match exception::catch(|| read(PERIPH_ID0)) {
        Ok(0x11) => {}
        Ok(id) => {
            return t.skip(
                name,
                format_args!("no PL011 at {UART:#x} (PeriphID0 {id:#x})"),
            )
        }
        Err(_) => {
            return t.skip(
                name,
                format_args!("no device at {UART:#x} (not passed through)"),
            )
        }
    }
    write(CR, 0);
    write(LCR_H, 0x60); // 8 bits, FIFOs off: TX raises its interrupt per byte
    write(IMSC, 0);
    write(ICR, INT_ALL);
    write(CR, CR_UARTEN | CR_TXE);
    RUNNING.store(1, Ordering::SeqCst);
    gic::enable_spi(INTID);
    write(IMSC, INT_TX);
    let mut outcome = Ok(());
    for round in 1..=ROUNDS {
        write(DR, u32::from(b'.'));
        if !wait_until(PROGRESS_TIMEOUT_MS, || {
            TAKEN.load(Ordering::SeqCst) >= round
        }) {
            outcome = Err((round, "never delivered"));
            break;
        }
        // A second copy would come at once; give it time to show.
        timer::delay_ms(20);
        if TAKEN.load(Ordering::SeqCst) != round {
            outcome = Err((round, "delivered again after the device cleared it"));
            break;
        }
    }
    write(IMSC, 0);
    RUNNING.store(0, Ordering::SeqCst);
    let taken = TAKEN.load(Ordering::SeqCst);
    match outcome {
        Ok(()) => {
            println!("INFO level_spi_after_eoi: {ROUNDS} rounds, {taken} deliveries");
            t.pass(name)
        }
        Err((round, why)) => t.fail(
            name,
            format_args!(
                "round {round} of {ROUNDS}: INTID {INTID} {why} ({taken} deliveries in all)"
            ),
        ),
    }
}
