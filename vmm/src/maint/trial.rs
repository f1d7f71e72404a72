//! The rules of a trial upgrade (MCUboot's test/confirm, without the
//! reboot), as plain data and pure decisions; the hypervisor supplies the
//! clock, the VMs' progress and the reloads.
//!
//! `upgrade` warm-reloads into the staged image as a *trial* and carries a
//! [`Trial`] in the handoff block. The trial image polls it: it becomes
//! permanent on `confirm` (which applies only to the running image), or
//! by itself once every VM has made progress for `confirm_after` ticks
//! (if the operator asked for that); if the deadline passes first, the
//! verdict is to reload into the previous image, which resumes the VMs
//! and reports why ([`RevertReason`]). The trial image's own failures
//! (refusing the handoff, a panic, a hang in its warm entry) cannot be
//! decided here: something outside it (the previous image's handoff
//! check, a panic path, a watchdog or a CPU waiting with a deadline)
//! returns control, and names the reason with the same type.
use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trial {
    /// The slot of the image that started the trial (to revert into).
    pub previous_slot: u8,
    /// The slot of the image on trial.
    pub trial_slot: u8,
    pub started_at: u64,
    /// Not confirmed by then: revert.
    pub deadline: u64,
    /// Confirm by itself after this many ticks of every VM progressing.
    pub confirm_after: Option<u64>,
    /// Since when every VM has been progressing (None: not now).
    pub healthy_since: Option<u64>,
    /// Set by the image that ends the trial by reverting, for the previous
    /// image to report.
    pub reverted: Option<RevertReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on waiting.
    Wait,
    /// Healthy long enough: make the trial image permanent.
    Confirm,
    /// Reload into `previous_slot`.
    Revert(RevertReason),
}

/// Why a trial ended with the previous image running again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertReason {
    /// Neither `confirm` nor the health check in time.
    NotConfirmed,
    /// The trial image refused the handoff block (its reason code).
    HandoffRefused(u32),
    /// The trial image panicked.
    Panicked,
    /// The trial image did not finish its warm entry in time.
    Hung,
}

/// What a trial image found wrong with the handoff block: the code in
/// [`RevertReason::HandoffRefused`] (the full sentence is in the trial
/// image's own log, printed before it handed back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Refusal {
    /// The block did not validate (format, checksum, limits).
    Block = 1,
    /// A VM it describes could not be rebuilt on this image.
    Vm = 2,
    /// A test build asked to refuse every block (`blink,test-fault`).
    TestFault = 3,
}

impl Refusal {
    /// The words for a code read back from a record (any value: a newer
    /// image may know more codes).
    pub fn describe(code: u32) -> &'static str {
        match code {
            1 => "the block did not validate",
            2 => "a VM in it could not be rebuilt",
            3 => "a test build refusing every block",
            _ => "a reason this image does not know",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmError {
    /// No trial in progress: the running image is already permanent.
    NotInTrial,
    /// The image named is not the one running (the pitfall of confirming
    /// a rejected image by its hash).
    NotRunning { asked: u8, running: u8 },
}

impl core::fmt::Display for ConfirmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfirmError::NotInTrial => write!(f, "confirm: the running image is not on trial"),
            ConfirmError::NotRunning { asked, running } => write!(
                f,
                "confirm: slot {asked} is not the running image (slot {running}); only the running image can be confirmed"
            ),
        }
    }
}

impl Trial {
    /// A trial starting `now`, to be confirmed within `timeout` ticks.
    pub fn start(
        previous_slot: u8,
        trial_slot: u8,
        now: u64,
        timeout: u64,
        confirm_after: Option<u64>,
    ) -> Trial {
        Trial {
            previous_slot,
            trial_slot,
            started_at: now,
            deadline: now.saturating_add(timeout),
            confirm_after,
            healthy_since: None,
            reverted: None,
        }
    }

    /// Called now and then by the trial image: `progressing` is whether
    /// every VM has resumed and made progress since the last poll.
    pub fn poll(&mut self, now: u64, progressing: bool) -> Verdict {
        if !progressing {
            self.healthy_since = None;
        } else if self.healthy_since.is_none() {
            self.healthy_since = Some(now);
        }
        if let (Some(need), Some(since)) = (self.confirm_after, self.healthy_since) {
            if now.saturating_sub(since) >= need {
                return Verdict::Confirm;
            }
        }
        if now >= self.deadline {
            return Verdict::Revert(RevertReason::NotConfirmed);
        }
        Verdict::Wait
    }

    /// `confirm` typed by the operator, naming the running slot (the
    /// console's `confirm` names the running image implicitly).
    pub fn confirm(trial: Option<&Trial>, slot: u8, running: u8) -> Result<(), ConfirmError> {
        let t = trial.ok_or(ConfirmError::NotInTrial)?;
        if slot != running || t.trial_slot != running {
            return Err(ConfirmError::NotRunning {
                asked: slot,
                running,
            });
        }
        Ok(())
    }

    /// For the trial record the hypervisor keeps beside the handoff block:
    /// [`TRIAL_LEN`] bytes, little-endian, CRC-protected. Byte 7 is the
    /// revert reason (0 none, 1 not confirmed, 2 handoff refused with the
    /// code at 40, 3 panicked, 4 hung).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(TRIAL_LEN);
        b.extend_from_slice(b"BLTR");
        b.push(self.previous_slot);
        b.push(self.trial_slot);
        let flags = self.confirm_after.is_some() as u8 | (self.healthy_since.is_some() as u8) << 1;
        b.push(flags);
        let (reason, code) = match self.reverted {
            None => (0, 0),
            Some(RevertReason::NotConfirmed) => (1, 0),
            Some(RevertReason::HandoffRefused(c)) => (2, c),
            Some(RevertReason::Panicked) => (3, 0),
            Some(RevertReason::Hung) => (4, 0),
        };
        b.push(reason);
        b.extend_from_slice(&self.started_at.to_le_bytes());
        b.extend_from_slice(&self.deadline.to_le_bytes());
        b.extend_from_slice(&self.confirm_after.unwrap_or(0).to_le_bytes());
        b.extend_from_slice(&self.healthy_since.unwrap_or(0).to_le_bytes());
        b.extend_from_slice(&code.to_le_bytes());
        let crc = crate::crc32::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Trial> {
        if b.len() != TRIAL_LEN || b[..4] != *b"BLTR" || b[7] > 4 || b[6] & !3 != 0 {
            return None;
        }
        let crc = u32::from_le_bytes(b[44..48].try_into().ok()?);
        if crc != crate::crc32::hash(&b[..44]) {
            return None;
        }
        let code = u32::from_le_bytes(b[40..44].try_into().ok()?);
        if b[7] != 2 && code != 0 {
            return None;
        }
        let u = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let t = Trial {
            previous_slot: b[4],
            trial_slot: b[5],
            started_at: u(8),
            deadline: u(16),
            confirm_after: (b[6] & 1 != 0).then(|| u(24)),
            healthy_since: (b[6] & 2 != 0).then(|| u(32)),
            reverted: match b[7] {
                0 => None,
                1 => Some(RevertReason::NotConfirmed),
                2 => Some(RevertReason::HandoffRefused(code)),
                3 => Some(RevertReason::Panicked),
                _ => Some(RevertReason::Hung),
            },
        };
        (t.previous_slot != t.trial_slot && t.deadline >= t.started_at).then_some(t)
    }
}

pub const TRIAL_LEN: usize = 48;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_by_the_operator_or_by_health_else_reverted() {
        let mut t = Trial::start(0, 1, 100, 1000, None);
        assert_eq!(t.poll(200, true), Verdict::Wait);
        assert_eq!(Trial::confirm(Some(&t), 1, 1), Ok(()));
        assert_eq!(
            t.poll(1100, true),
            Verdict::Revert(RevertReason::NotConfirmed)
        );

        // Health for 300 ticks in a row confirms; a stall restarts the count.
        let mut t = Trial::start(0, 1, 0, 1000, Some(300));
        assert_eq!(t.poll(10, true), Verdict::Wait);
        assert_eq!(t.poll(200, true), Verdict::Wait);
        assert_eq!(t.poll(250, false), Verdict::Wait);
        assert_eq!(t.poll(260, true), Verdict::Wait);
        assert_eq!(t.poll(500, true), Verdict::Wait);
        assert_eq!(t.poll(560, true), Verdict::Confirm);
        // Never healthy long enough: reverted at the deadline.
        let mut t = Trial::start(0, 1, 0, 1000, Some(300));
        for now in (0..1000).step_by(100) {
            assert_eq!(t.poll(now, now % 200 == 0), Verdict::Wait);
        }
        assert_eq!(
            t.poll(1000, true),
            Verdict::Revert(RevertReason::NotConfirmed)
        );
    }

    #[test]
    fn confirm_applies_only_to_the_running_trial_image() {
        let t = Trial::start(0, 1, 0, 1000, None);
        assert_eq!(Trial::confirm(None, 0, 0), Err(ConfirmError::NotInTrial));
        assert_eq!(
            Trial::confirm(Some(&t), 0, 1),
            Err(ConfirmError::NotRunning {
                asked: 0,
                running: 1
            })
        );
        // After a revert the previous image runs; the trial is not its own.
        assert_eq!(
            Trial::confirm(Some(&t), 0, 0),
            Err(ConfirmError::NotRunning {
                asked: 0,
                running: 0
            })
        );
    }

    #[test]
    fn bytes_round_trip_and_refuse_damage() {
        let mut t = Trial::start(1, 0, 5, 500, Some(60));
        t.poll(7, true);
        t.reverted = Some(RevertReason::HandoffRefused(7));
        let b = t.to_bytes();
        assert_eq!(b.len(), TRIAL_LEN);
        assert_eq!(Trial::from_bytes(&b), Some(t));
        for i in 0..TRIAL_LEN {
            let mut d = b.clone();
            d[i] ^= 0x21;
            assert_eq!(Trial::from_bytes(&d), None, "byte {i}");
        }
        assert_eq!(Trial::from_bytes(&b[..47]), None);
        let same = Trial::start(1, 1, 0, 5, None);
        assert_eq!(Trial::from_bytes(&same.to_bytes()), None);
    }
}
