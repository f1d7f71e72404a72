//! The timers the run loop uses: the EL2 physical timer (time slices,
//! wake-ups for waiting vCPUs, periodic work) and the loaded vCPU's virtual
//! timer as the hardware holds it.
use super::sysreg::isb;
use crate::{read_sysreg, write_sysreg};

/// Fire the EL2 timer (PPI 26) when the physical counter reaches `at`.
pub fn arm_hyp_timer(at: u64) {
    write_sysreg!(cnthp_cval_el2, at);
    write_sysreg!(cnthp_ctl_el2, 1);
    isb();
}

/// Stop the EL2 timer (enabled, output masked: IMASK).
pub fn disarm_hyp_timer() {
    write_sysreg!(cnthp_ctl_el2, 2);
    isb();
}

/// Physical-counter time at which the loaded vCPU's virtual timer fires,
/// or u64::MAX if it is off or masked; `cntvoff` is its VM's offset.
pub fn vtimer_deadline(cntvoff: u64) -> u64 {
    let ctl = read_sysreg!(cntv_ctl_el0);
    if ctl & 1 == 0 || ctl & 2 != 0 {
        return u64::MAX;
    }
    read_sysreg!(cntv_cval_el0).wrapping_add(cntvoff)
}

/// The loaded virtual timer as the hardware holds it (`debug-vm`).
pub struct VtimerSnapshot {
    pub ctl: u64,
    pub cval: u64,
    pub cntvct: u64,
    pub cntvoff: u64,
}

pub fn vtimer_snapshot() -> VtimerSnapshot {
    VtimerSnapshot {
        ctl: read_sysreg!(cntv_ctl_el0),
        cval: read_sysreg!(cntv_cval_el0),
        cntvct: read_sysreg!(cntvct_el0),
        cntvoff: read_sysreg!(cntvoff_el2),
    }
}

/// Silence the loaded virtual timer (a vCPU leaving its CPU).
pub fn vtimer_off() {
    write_sysreg!(cntv_ctl_el0, 0);
}
