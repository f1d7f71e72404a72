//! Breakpoints, watchpoints, the PMU and the pointer authentication keys
//! as one VM's own: what a VM writes to them stays, and never shows (or
//! fires) in another VM.
//!
//! The guest plays one of three roles, from its `bootargs`:
//! - none (one VM, or bare): `debug_registers_kept` only;
//! - `conformance.role=holder`: the same, and it must have been
//!   descheduled meanwhile (a second VM shares its CPU);
//! - `conformance.role=probe`: `debug_state_isolated`, beside a holder on
//!   the same CPU.

use core::arch::asm;
use core::sync::atomic::AtomicU64;

use guests::println;
use guests::rt::{dtb, exception, timer};

use crate::report::Tally;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Alone,
    Holder,
    Probe,
}

pub fn role(dtb_addr: usize) -> Role {
    match dtb::bootargs(dtb_addr) {
        Ok(Some(args)) if args.contains("conformance.role=holder") => Role::Holder,
        Ok(Some(args)) if args.contains("conformance.role=probe") => Role::Probe,
        _ => Role::Alone,
    }
}

/// How long the holder keeps checking its registers, and how long the
/// probe probes (longer, so the holder's span lies inside it).
const HOLD_MS: u64 = 1000;
const PROBE_MS: u64 = 2500;
/// A jump of the counter this large between two loop turns means the
/// vCPU was descheduled.
const GAP_US: u64 = 1000;

/// Defines a reader and a writer of one system register.
macro_rules! sysreg {
    ($read:ident, $write:ident, $reg:literal) => {
        fn $read() -> u64 {
            let v: u64;
            // SAFETY: a debug or PMU register read has no side effects.
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack)) };
            v
        }

        fn $write(v: u64) {
            // SAFETY: debug and PMU registers only affect debug events and
            // counting, which this module sets up on purpose.
            unsafe { asm!(concat!("msr ", $reg, ", {}"), "isb", in(reg) v, options(nomem, nostack)) };
        }
    };
}

sysreg!(bvr0, set_bvr0, "dbgbvr0_el1");
sysreg!(bcr0, set_bcr0, "dbgbcr0_el1");
sysreg!(bvr1, set_bvr1, "dbgbvr1_el1");
sysreg!(wvr0, set_wvr0, "dbgwvr0_el1");
sysreg!(wcr0, set_wcr0, "dbgwcr0_el1");
sysreg!(wvr1, set_wvr1, "dbgwvr1_el1");
sysreg!(mdscr, set_mdscr, "mdscr_el1");
// PMEVTYPER0_EL0 and PMCCFILTR_EL0.
sysreg!(pmevtyper0, set_pmevtyper0, "s3_3_c14_c12_0");
sysreg!(pmccfiltr, set_pmccfiltr, "s3_3_c14_c15_7");
// APGAKeyLo_EL1, the generic authentication key (this guest signs nothing).
sysreg!(apgakeylo, set_apgakeylo, "s3_0_c2_c3_0");

const MDSCR_KDE: u64 = 1 << 13;
const MDSCR_MDE: u64 = 1 << 15;
/// Enabled, match at EL1 (PMC = 0b01), all four bytes (BAS), unlinked
/// address match.
const BCR_ARMED: u64 = 1 | 0b01 << 1 | 0xf << 5;
/// Enabled, at EL1 (PAC = 0b01), loads and stores (LSC = 0b11), all eight
/// bytes (BAS).
const WCR_ARMED: u64 = 1 | 0b01 << 1 | 0b11 << 3 | 0xff << 5;
const CTL_ENABLED: u64 = 1;
/// What the holder leaves in the registers it does not arm: addresses
/// (bits [47:2]) no code or data of the probe uses.
const HOLDER_BVR1: u64 = 0x0000_7e57_0000_1230;
const HOLDER_WVR1: u64 = 0x0000_7e57_0000_4560;
/// An event number and filter bits (PMEVTYPER0 and PMCCFILTR).
const HOLDER_EVTYPER: u64 = 0x0800_0011;
const HOLDER_CCFILTR: u64 = 0x0800_0000;
const HOLDER_KEY: u64 = 0x6b65_795f_6f66_5f41;

const EC_BREAKPOINT_SAME: u64 = 0x31;
const EC_WATCHPOINT_SAME: u64 = 0x35;

core::arch::global_asm!(
    ".global conformance_breakpoint_target",
    "conformance_breakpoint_target:",
    "nop",
    "ret",
);

extern "C" {
    fn conformance_breakpoint_target();
}

/// Watched by the holder's watchpoint; read by both roles.
static WATCHED: AtomicU64 = AtomicU64::new(0);

fn target_address() -> u64 {
    conformance_breakpoint_target as *const () as u64
}

fn watched_address() -> u64 {
    core::ptr::addr_of!(WATCHED) as u64
}

/// Calls the breakpoint target; a breakpoint there is caught.
fn call_target() -> Result<(), exception::Fault> {
    exception::catch(|| {
        // SAFETY: the target is `nop; ret`; a breakpoint on its `nop` is
        // caught and the `nop` skipped.
        unsafe { asm!("bl conformance_breakpoint_target", out("x30") _, options(nostack)) };
    })
}

/// Loads the watched word with one instruction; a watchpoint is caught.
fn load_watched() -> Result<u64, exception::Fault> {
    exception::catch(|| {
        let v: u64;
        // SAFETY: a load of a static; should a watchpoint hit, the load is
        // skipped and the fault caught.
        unsafe { asm!("ldr {}, [{}]", out(reg) v, in(reg) watched_address(), options(nostack)) };
        v
    })
}

/// Releases the OS lock and enables self-hosted debug at EL1; PSTATE.D
/// still masks debug exceptions.
fn enable_debug() -> Result<(), exception::Fault> {
    exception::catch(|| {
        // SAFETY: OSLAR_EL1 / OSDLR_EL1 writes only unlock debug.
        unsafe {
            asm!(
                "msr oslar_el1, xzr",
                "msr osdlr_el1, xzr",
                "isb",
                options(nomem, nostack)
            )
        };
    })?;
    set_mdscr(mdscr() | MDSCR_MDE | MDSCR_KDE);
    Ok(())
}

fn unmask_debug_exceptions(unmask: bool) {
    // SAFETY: only PSTATE.D changes; the vectors handle debug exceptions.
    unsafe {
        if unmask {
            asm!("msr daifclr, #8", "isb", options(nomem, nostack));
        } else {
            asm!("msr daifset, #8", "isb", options(nomem, nostack));
        }
    }
}

/// Whether the PMU is both advertised (ID_AA64DFR0_EL1.PMUVer) and usable.
fn pmu_usable() -> bool {
    let dfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nomem, nostack)) };
    let ver = (dfr0 >> 8) & 0xf;
    ver != 0 && ver != 0xf && exception::catch(pmccfiltr).is_ok()
}

/// Whether pointer authentication is advertised (ID_AA64ISAR1/2_EL1) and
/// its keys readable.
fn pauth_usable() -> bool {
    let (isar1, isar2): (u64, u64);
    // SAFETY: reading ID registers has no side effects.
    unsafe {
        asm!("mrs {}, id_aa64isar1_el1", "mrs {}, s3_0_c0_c6_2", out(reg) isar1, out(reg) isar2,
            options(nomem, nostack));
    }
    (isar1 & 0xff00_0ff0 != 0 || isar2 & 0xff00 != 0) && exception::catch(apgakeylo).is_ok()
}

/// Counts the turns of `body` after which the counter jumped by more than
/// [`GAP_US`] (the vCPU was descheduled), for `ms` of counter time; stops
/// early when `body` returns an error.
fn for_span<E>(ms: u64, mut body: impl FnMut() -> Result<(), E>) -> Result<u32, E> {
    let (start, span, gap) = (
        timer::counter(),
        timer::ms_to_ticks(ms),
        timer::ms_to_ticks(1),
    );
    let gap = gap * GAP_US / 1000;
    let (mut last, mut gaps) = (start, 0);
    while last.wrapping_sub(start) < span {
        body()?;
        let now = timer::counter();
        if now.wrapping_sub(last) > gap {
            gaps += 1;
        }
        last = now;
    }
    Ok(gaps)
}

/// `debug_registers_kept`: arms breakpoint 0 on a function and watchpoint
/// 0 on a variable (debug exceptions masked), leaves values in breakpoint
/// and watchpoint 1 and, if the PMU is usable, in PMEVTYPER0 and
/// PMCCFILTR; for 1 s they must read back unchanged (while another VM, if
/// any, runs on the same CPU), and so must a pointer authentication key,
/// where the VM has them; then, unmasked, both must fire.
pub fn registers_kept(t: &mut Tally, role: Role) {
    let name = "debug_registers_kept";
    if role == Role::Probe {
        return t.skip(name, format_args!("this VM is the probe"));
    }
    if let Err(f) = enable_debug() {
        return t.fail(
            name,
            format_args!("OSLAR_EL1/OSDLR_EL1 write faulted (ESR {:#x})", f.esr),
        );
    }
    let pmu = pmu_usable();
    let pauth = pauth_usable();
    let expected = [
        target_address(),
        BCR_ARMED,
        HOLDER_BVR1,
        watched_address(),
        WCR_ARMED,
        HOLDER_WVR1,
    ];
    let writers: [fn(u64); 6] = [set_bvr0, set_bcr0, set_bvr1, set_wvr0, set_wcr0, set_wvr1];
    let readers: [fn() -> u64; 6] = [bvr0, bcr0, bvr1, wvr0, wcr0, wvr1];
    const NAMES: [&str; 6] = [
        "DBGBVR0", "DBGBCR0", "DBGBVR1", "DBGWVR0", "DBGWCR0", "DBGWVR1",
    ];
    for (write, value) in writers.iter().zip(expected) {
        write(value);
    }
    if pmu {
        set_pmevtyper0(HOLDER_EVTYPER);
        set_pmccfiltr(HOLDER_CCFILTR);
    }
    if pauth {
        set_apgakeylo(HOLDER_KEY);
    }
    let held = for_span(HOLD_MS, || {
        if let Some(i) = (0..6).find(|&i| readers[i]() != expected[i]) {
            return Err((NAMES[i], readers[i](), expected[i]));
        }
        if pmu && pmevtyper0() != HOLDER_EVTYPER {
            return Err(("PMEVTYPER0", pmevtyper0(), HOLDER_EVTYPER));
        }
        if pmu && pmccfiltr() != HOLDER_CCFILTR {
            return Err(("PMCCFILTR", pmccfiltr(), HOLDER_CCFILTR));
        }
        if pauth && apgakeylo() != HOLDER_KEY {
            return Err(("APGAKeyLo_EL1", apgakeylo(), HOLDER_KEY));
        }
        // Masked: neither may fire now.
        call_target().map_err(|_| ("PSTATE.D", 1, 0))?;
        load_watched().map(|_| ()).map_err(|_| ("PSTATE.D", 1, 0))
    });
    unmask_debug_exceptions(true);
    let breakpoint = call_target();
    let watchpoint = load_watched();
    unmask_debug_exceptions(false);
    set_bcr0(0);
    set_wcr0(0);
    let shown = |usable| if usable { "usable" } else { "hidden" };
    println!(
        "INFO debug_registers_kept: pmu {}, pauth keys {}",
        shown(pmu),
        shown(pauth)
    );
    match held {
        Err(("PSTATE.D", _, _)) => t.fail(name, format_args!("a debug exception was taken while masked")),
        Err((reg, got, want)) => t.fail(
            name,
            format_args!("{reg} changed under this VM: reads {got:#x}, wrote {want:#x}"),
        ),
        Ok(0) if role == Role::Holder => t.fail(
            name,
            format_args!("never descheduled in {HOLD_MS} ms: no other VM shared this CPU"),
        ),
        Ok(gaps) => match (breakpoint, watchpoint) {
            (Err(b), Err(w)) if b.class() == EC_BREAKPOINT_SAME && w.class() == EC_WATCHPOINT_SAME => {
                println!("INFO debug_registers_kept: descheduled {gaps} times in {HOLD_MS} ms");
                t.pass(name)
            }
            (b, w) => t.fail(
                name,
                format_args!(
                    "unmasked, the breakpoint gave {} and the watchpoint {} (want EC {EC_BREAKPOINT_SAME:#x} and {EC_WATCHPOINT_SAME:#x})",
                    describe(b.map(|_| 0)),
                    describe(w)
                ),
            ),
        },
    }
}

fn describe(r: Result<u64, exception::Fault>) -> DebugEvent {
    DebugEvent(r.err().map(|f| f.class()))
}

struct DebugEvent(Option<u64>);

impl core::fmt::Display for DebugEvent {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            None => write!(f, "no exception"),
            Some(ec) => write!(f, "EC {ec:#x}"),
        }
    }
}

/// `debug_state_isolated`: with debug exceptions enabled and unmasked and
/// its own breakpoints and watchpoints left alone, the probe calls the
/// function and reads the variable the holder (the other VM on this CPU,
/// running the same image at the same addresses) watches, for 2.5 s: no
/// debug exception may come, and none of the holder's values may show in
/// its registers.
pub fn state_isolated(t: &mut Tally, role: Role) {
    let name = "debug_state_isolated";
    if role != Role::Probe {
        return t.skip(
            name,
            format_args!("needs a holder VM beside this one (conformance.role=probe)"),
        );
    }
    if let Err(f) = enable_debug() {
        return t.fail(
            name,
            format_args!("OSLAR_EL1/OSDLR_EL1 write faulted (ESR {:#x})", f.esr),
        );
    }
    let pmu = pmu_usable();
    let pauth = pauth_usable();
    unmask_debug_exceptions(true);
    let probed = for_span(PROBE_MS, || {
        if let Err(f) = call_target() {
            return Err((
                "a call of the function the holder's breakpoint is on raised EC",
                f.class(),
            ));
        }
        if let Err(f) = load_watched() {
            return Err((
                "a load of the variable the holder watches raised EC",
                f.class(),
            ));
        }
        if bcr0() & CTL_ENABLED != 0 || wcr0() & CTL_ENABLED != 0 {
            return Err((
                "the holder's enabled breakpoint/watchpoint shows: DBGBCR0",
                bcr0(),
            ));
        }
        if bvr1() == HOLDER_BVR1 || wvr1() == HOLDER_WVR1 {
            return Err(("the holder's value shows in DBGBVR1", bvr1()));
        }
        if pmu && (pmevtyper0() == HOLDER_EVTYPER || pmccfiltr() == HOLDER_CCFILTR) {
            return Err(("the holder's PMU setup shows: PMEVTYPER0", pmevtyper0()));
        }
        if pauth && apgakeylo() == HOLDER_KEY {
            return Err(("the holder's key shows: APGAKeyLo_EL1", apgakeylo()));
        }
        Ok(())
    });
    unmask_debug_exceptions(false);
    match probed {
        Err((what, value)) => t.fail(name, format_args!("{what} {value:#x}")),
        Ok(0) => t.fail(
            name,
            format_args!("never descheduled in {PROBE_MS} ms: no holder VM shared this CPU"),
        ),
        Ok(gaps) => {
            println!("INFO debug_state_isolated: descheduled {gaps} times in {PROBE_MS} ms");
            t.pass(name)
        }
    }
}
