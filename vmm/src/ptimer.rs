//! The EL1 physical timer of a vCPU, emulated: CNTHCTL_EL2.EL1PCEN = 0
//! traps the guest's CNTP_CTL_EL0, CNTP_CVAL_EL0 and CNTP_TVAL_EL0, which
//! are answered from this model; the hypervisor raises the timer's PPI 30
//! (level) while the timer condition holds and wakes the vCPU at its
//! deadline with its own EL2 timer. The guest reads the physical counter
//! directly (CNTHCTL_EL2.EL1PCTEN = 1), so the model compares with that
//! counter: no offset, which is also what the counter the guest reads says.
//! Pure logic over counter values, tested on the host.

use crate::esr::sysreg_id;

/// The timer's PPI (as in the guest's device tree).
pub const PPI: u32 = 30;

pub const CNTP_TVAL_EL0: u32 = sysreg_id(3, 3, 14, 2, 0);
pub const CNTP_CTL_EL0: u32 = sysreg_id(3, 3, 14, 2, 1);
pub const CNTP_CVAL_EL0: u32 = sysreg_id(3, 3, 14, 2, 2);

const ENABLE: u64 = 1;
const IMASK: u64 = 2;
const ISTATUS: u64 = 4;

/// One vCPU's physical timer: what the guest programmed, and the level of
/// its interrupt line as last signalled to the vGIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PTimer {
    /// CNTP_CTL_EL0's ENABLE and IMASK bits (ISTATUS is computed).
    pub ctl: u64,
    pub cval: u64,
    /// The line as the vGIC was last told.
    pub line: bool,
}

impl PTimer {
    /// A timer restored from a handoff block (the line is signalled again
    /// when the vCPU next runs).
    pub fn restore(ctl: u64, cval: u64) -> Self {
        PTimer {
            ctl: ctl & (ENABLE | IMASK),
            cval,
            line: false,
        }
    }

    /// Whether `id` (an `esr::sysreg_id`) is one of the trapped registers.
    pub fn handles(id: u32) -> bool {
        matches!(id, CNTP_TVAL_EL0 | CNTP_CTL_EL0 | CNTP_CVAL_EL0)
    }

    fn condition(&self, now: u64) -> bool {
        self.ctl & ENABLE != 0 && now >= self.cval
    }

    /// The interrupt line: enabled, not masked, condition met.
    pub fn level(&self, now: u64) -> bool {
        self.condition(now) && self.ctl & IMASK == 0
    }

    /// MRS of register `id` at counter value `now`.
    pub fn read(&self, id: u32, now: u64) -> u64 {
        match id {
            CNTP_CTL_EL0 => self.ctl | if self.condition(now) { ISTATUS } else { 0 },
            CNTP_CVAL_EL0 => self.cval,
            // TVAL: the low 32 bits of CVAL - now, as a signed count.
            CNTP_TVAL_EL0 => self.cval.wrapping_sub(now) & 0xffff_ffff,
            _ => 0,
        }
    }

    /// MSR of `value` to register `id` at counter value `now`.
    pub fn write(&mut self, id: u32, value: u64, now: u64) {
        match id {
            CNTP_CTL_EL0 => self.ctl = value & (ENABLE | IMASK),
            CNTP_CVAL_EL0 => self.cval = value,
            // TVAL: CVAL = now + the sign-extended low 32 bits.
            CNTP_TVAL_EL0 => self.cval = now.wrapping_add(value as u32 as i32 as i64 as u64),
            _ => {}
        }
    }

    /// The new level of the line if it differs from the one signalled
    /// (the caller tells the vGIC), recording it.
    pub fn update(&mut self, now: u64) -> Option<bool> {
        let level = self.level(now);
        (level != self.line).then(|| {
            self.line = level;
            level
        })
    }

    /// Counter value at which the line rises next (`u64::MAX`: it will not
    /// without the guest writing the timer: off, masked or already up).
    pub fn deadline(&self) -> u64 {
        if self.ctl & (ENABLE | IMASK) == ENABLE && !self.line {
            self.cval
        } else {
            u64::MAX
        }
    }

    /// Whether the timer is enabled at all (nothing to do otherwise).
    pub fn active(&self) -> bool {
        self.ctl & ENABLE != 0 || self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tval_counts_down_from_the_write_and_sign_extends() {
        let mut t = PTimer::default();
        t.write(CNTP_TVAL_EL0, 1000, 5_000);
        assert_eq!(t.cval, 6_000);
        assert_eq!(t.read(CNTP_TVAL_EL0, 5_400), 600);
        // Past the deadline TVAL is negative (as a 32-bit signed value).
        assert_eq!(t.read(CNTP_TVAL_EL0, 6_001) as u32 as i32, -1);
        t.write(CNTP_TVAL_EL0, (-50i32) as u32 as u64, 5_000);
        assert_eq!(t.cval, 4_950);
    }

    #[test]
    fn ctl_reports_istatus_and_keeps_only_enable_and_imask() {
        let mut t = PTimer::default();
        t.write(CNTP_CVAL_EL0, 100, 0);
        t.write(CNTP_CTL_EL0, 0xff, 0);
        assert_eq!(t.ctl, ENABLE | IMASK);
        assert_eq!(t.read(CNTP_CTL_EL0, 99), ENABLE | IMASK);
        assert_eq!(t.read(CNTP_CTL_EL0, 100), ENABLE | IMASK | ISTATUS);
        // Masked: condition met but no interrupt.
        assert!(!t.level(100));
        t.write(CNTP_CTL_EL0, ENABLE, 0);
        assert!(t.level(100) && !t.level(99));
        t.write(CNTP_CTL_EL0, 0, 0);
        assert_eq!(t.read(CNTP_CTL_EL0, 200), 0, "no ISTATUS while disabled");
    }

    #[test]
    fn the_line_follows_the_timer_and_is_signalled_once() {
        let mut t = PTimer::default();
        t.write(CNTP_CVAL_EL0, 1_000, 0);
        t.write(CNTP_CTL_EL0, ENABLE, 0);
        assert_eq!(t.deadline(), 1_000);
        assert_eq!(t.update(999), None);
        assert_eq!(t.update(1_000), Some(true));
        assert_eq!(t.update(2_000), None, "already up");
        assert_eq!(t.deadline(), u64::MAX, "nothing to wake for while up");
        // The guest's handler moves the deadline on: the line drops.
        t.write(CNTP_TVAL_EL0, 500, 2_000);
        assert_eq!(t.update(2_000), Some(false));
        assert_eq!(t.deadline(), 2_500);
        // Masking drops it too, and there is no deadline while masked.
        t.write(CNTP_CTL_EL0, ENABLE | IMASK, 2_600);
        assert_eq!(t.update(2_600), None);
        assert_eq!(t.deadline(), u64::MAX);
    }

    #[test]
    fn only_the_three_registers_are_handled() {
        assert!(PTimer::handles(CNTP_CTL_EL0) && PTimer::handles(CNTP_CVAL_EL0));
        assert!(PTimer::handles(CNTP_TVAL_EL0));
        assert!(
            !PTimer::handles(sysreg_id(3, 3, 14, 3, 1)),
            "CNTV_CTL is not trapped"
        );
        let r = PTimer::restore(0xff, 7);
        assert_eq!((r.ctl, r.cval, r.line), (ENABLE | IMASK, 7, false));
    }
}
