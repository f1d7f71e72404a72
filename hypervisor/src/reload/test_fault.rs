//! Faults on demand, for the tests of a trial upgrade's safety net
//! (`revert`): compiled only into a build made with `BLINK_TEST_FAULTS=1`
//! (`cargo xtask build` makes one, `hypervisor-faulty.bin`, never shipped),
//! which at a warm entry fails the way `/chosen/blink,test-fault` says:
//! `"refuse"` the handoff block, `"panic"`, or `"hang"` with its
//! secondaries still in the holding pen. The image it reloads from ignores
//! the property, so one device tree serves the whole test.
use log::error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Refuse,
    Panic,
    Hang,
}

static ASKED: spin::Once<Option<Fault>> = spin::Once::new();

/// Boot: read what the device tree asks for.
pub fn init(dtb: &[u8]) {
    ASKED.call_once(|| {
        let tree = vmm::dtb::Dtb::parse(dtb).ok()?;
        let name = tree.find("/chosen")?.prop_str("blink,test-fault")?;
        match name {
            "refuse" => Some(Fault::Refuse),
            "panic" => Some(Fault::Panic),
            "hang" => Some(Fault::Hang),
            other => {
                error!(
                    "/chosen/blink,test-fault: '{}' is none of refuse, panic, hang; ignored",
                    other
                );
                None
            }
        }
    });
}

pub fn asked(f: Fault) -> bool {
    ASKED.get().copied().flatten() == Some(f)
}

/// Warm entry, the safety net armed, nothing released yet: panic or hang
/// if asked to.
pub fn at_warm_entry() {
    if asked(Fault::Panic) {
        panic!("test fault: panicking in the warm entry, as /chosen/blink,test-fault asks");
    }
    if asked(Fault::Hang) {
        hvprintln!("test fault: hanging in the warm entry, as /chosen/blink,test-fault asks");
        loop {
            crate::arch::aarch64::sysreg::wfe();
        }
    }
}
