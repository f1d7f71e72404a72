//! What a warm reload must preserve, checked the same way by every reload
//! test: the guests' counters go on without a gap or a repeat
//! ([`check_continuity`]), and nothing bad is printed once the reload has
//! begun ([`check_clean`]).

use std::fmt;

use anyhow::{bail, Result};

use crate::{
    focus_shell, hv, re, require_images, scenario, start, wait_all, QemuRun, Scenario, VmSpec,
    DEADLINE,
};

/// Types `upgrade` (or `rollback`: `back`) at the shell and waits for the
/// hypervisor to accept it: reloading into `to` from `from`.
pub fn switch_image(run: &mut QemuRun, back: bool, to: &str, from: &str) -> Result<()> {
    if back {
        run.send(b"rollback\r")?;
        run.expect(&hv::rollback_to(to, from), DEADLINE)?;
    } else {
        run.send(b"upgrade\r")?;
        run.expect(&hv::upgrade_to(to, from), DEADLINE)?;
    }
    Ok(())
}

/// The reload tests' pair: the heartbeat guest as domU0 and the
/// memory-pattern guest as domU1, both at work (two heartbeats, one
/// verified pass), input on the hypervisor shell. `adjust` changes the
/// scenario before QEMU starts.
pub fn start_heartbeat_and_pattern(
    gic: u32,
    adjust: impl FnOnce(&mut Scenario),
) -> Result<QemuRun> {
    require_images(&["heartbeat", "mempattern"])?;
    let mut s = scenario(
        gic,
        [
            VmSpec::guest("domU0", "heartbeat"),
            VmSpec::guest("domU1", "mempattern"),
        ],
    );
    adjust(&mut s);
    let mut run = start(&s)?;
    wait_all(
        &mut run,
        &[
            re(r"^\[domU0\] heartbeat: n=2 "),
            re(r"^\[domU1\] mempattern: pass 1: \d+ MiB ok$"),
        ],
    )?;
    focus_shell(&mut run, DEADLINE)?;
    Ok(run)
}

/// Where a counter that should step by one did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discontinuity {
    /// Index (in the values checked) of the value that broke the series.
    pub index: usize,
    pub before: u64,
    pub after: u64,
}

impl fmt::Display for Discontinuity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (before, after) = (self.before, self.after);
        let what = if after == before {
            "a repeat".to_string()
        } else if after < before {
            "it went back".to_string()
        } else {
            format!("a gap of {}", after - before - 1)
        };
        write!(f, "{before} then {after} ({what}) at value {}", self.index)
    }
}

/// A guest's counter (heartbeat n, mempattern pass, Linux's counter
/// service) read across warm reloads must go on from where it was: every
/// value one more than the one before, no gap (a pause the guest noticed,
/// or lost lines) and no repeat (a restart, or a line printed twice).
/// Fewer than two values pass.
pub fn check_continuity(values: &[u64]) -> Result<(), Discontinuity> {
    match values
        .windows(2)
        .position(|w| w[0].checked_add(1) != Some(w[1]))
    {
        None => Ok(()),
        Some(i) => Err(Discontinuity {
            index: i + 1,
            before: values[i],
            after: values[i + 1],
        }),
    }
}

/// [`check_continuity`] of `values`, failing with the run's output;
/// `what` names the counter ("heartbeat counter").
pub fn check_continuous(run: &QemuRun, what: &str, values: &[u64]) -> Result<()> {
    if let Err(d) = check_continuity(values) {
        bail!("{what} not continuous: {d}: {values:?}\n{}", run.report());
    }
    Ok(())
}

/// Words that mean trouble on any line, the hypervisor's or a guest's (not
/// anchored: a line may follow a guest's partial line). The union of the
/// lists the reload tests had each spelled out:
/// - `MISMATCH`: the memory-pattern guest found its RAM changed;
/// - `FATAL`, `PANIC`: the hypervisor stopping (the `[hv] ` ones also fail
///   every wait, see [`hv::FATAL`]; here also when not at a line's start);
/// - `WARN`, `ERROR`: the hypervisor's `warn!`/`error!` tags (a guest
///   misbehaving, something refused or failed), and the guests' own
///   `ERROR:` lines;
/// - `refused`: a handoff block, an image slot or a request refused.
pub const TROUBLE: &str = r"MISMATCH|FATAL|PANIC|WARN|ERROR|refused";

/// A line ending in `started` (`[hv] vm N 'name': started`): a VM started
/// from its configuration. Those belong to the cold boot: after a warm
/// reload every VM is resumed, and a `started` line means one was
/// cold-booted instead.
pub const RESTARTED: &str = r"\bstarted$";

/// From which line on [`check_clean`] looks for [`TROUBLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The run's first line: the whole run must be clean.
    ColdBoot,
    /// The first line of the first warm reload ([`hv::reload_begins`]), for
    /// runs whose cold boot may print such words (Linux booting).
    FirstReload,
    /// The line with this index, for runs that provoke trouble on purpose
    /// before it.
    Line(usize),
}

/// The first line that breaks the rule of [`check_clean`] and why, or
/// `Ok(None)`; an error if no reload began in `lines`.
pub fn first_unclean(lines: &[String], since: Since) -> Result<Option<(&str, &'static str)>> {
    let begins = hv::reload_begins();
    let Some(first_reload) = lines.iter().position(|l| begins.is_match(l)) else {
        bail!(
            "no warm reload began (no line matches /{}/)",
            begins.as_str()
        );
    };
    let (trouble, restarted) = (re(TROUBLE), re(RESTARTED));
    let from = match since {
        Since::ColdBoot => 0,
        Since::FirstReload => first_reload,
        Since::Line(i) => i,
    };
    for (i, l) in lines.iter().enumerate().skip(from) {
        // A frame of the maintenance link riding on the console (0x00
        // delimits frames; no log line holds one): its words are an
        // answer, not the log.
        if l.contains('\0') {
            continue;
        }
        if trouble.is_match(l) {
            return Ok(Some((l, TROUBLE)));
        }
        if i >= first_reload && restarted.is_match(l) {
            return Ok(Some((l, RESTARTED)));
        }
    }
    Ok(None)
}

/// The "clean after the reload" scan: no line matches [`TROUBLE`] from
/// `since` on, and no VM is [`RESTARTED`] after the first reload began.
pub fn check_clean(run: &QemuRun, since: Since) -> Result<()> {
    let lines = run.lines();
    match first_unclean(&lines, since) {
        Ok(None) => Ok(()),
        Ok(Some((line, why))) => bail!(
            "unexpected line (/{why}/) after the first reload began: {line}\n{}",
            run.report()
        ),
        Err(e) => bail!("{e}\n{}", run.report()),
    }
}

/// After reloads under [`start_heartbeat_and_pattern`]: the heartbeat
/// (domU0) and the memory-pattern passes (domU1) counted on without a
/// gap, the pattern guest started once, and nothing bad was printed from
/// the first reload on.
pub fn check_guests_intact(run: &QemuRun) -> Result<()> {
    check_continuous(run, "heartbeat counter", &crate::heartbeats(run, "domU0"))?;
    check_continuous(
        run,
        "mempattern passes",
        &crate::mempattern_passes(run, "domU1"),
    )?;
    crate::guest::check_started_once(run, &crate::re("mempattern: filled"), "mempattern")?;
    check_clean(run, Since::FirstReload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity() {
        assert_eq!(check_continuity(&[]), Ok(()));
        assert_eq!(check_continuity(&[7]), Ok(()));
        assert_eq!(check_continuity(&[3, 4, 5, 6]), Ok(()));
        let gap = check_continuity(&[3, 4, 6, 7]).unwrap_err();
        assert_eq!(
            gap,
            Discontinuity {
                index: 2,
                before: 4,
                after: 6
            }
        );
        assert_eq!(gap.to_string(), "4 then 6 (a gap of 1) at value 2");
        let repeat = check_continuity(&[3, 4, 4, 5]).unwrap_err();
        assert_eq!(repeat.to_string(), "4 then 4 (a repeat) at value 2");
        let back = check_continuity(&[3, 4, 5, 1, 2]).unwrap_err();
        assert_eq!(back.to_string(), "5 then 1 (it went back) at value 3");
        assert!(check_continuity(&[u64::MAX, 0]).is_err());
    }

    fn lines(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|l| l.to_string()).collect()
    }

    const BOOT: &[&str] = &[
        "[hv] vm 0 'domU0': started",
        "[hv] vm 1 'domU1': started",
        "[domU0] heartbeat: n=1 count=1",
    ];
    const RELOAD: &[&str] = &[
        "[hv] rejuvenate: suspending 2 VMs for a warm reload (generation 1)",
        "[hv] vm 0 'domU0': resumed, 64 MiB at 0x48000000, 1 vCPUs",
        "[hv] reload: generation 1, 2 VMs resumed; request to resume 10 us, VMs paused for 5 us;",
        "[domU0] heartbeat: n=2 count=1",
    ];

    fn run_of(parts: &[&[&str]]) -> Vec<String> {
        lines(&parts.concat())
    }

    #[test]
    fn clean_after_reload() {
        let ok = run_of(&[BOOT, RELOAD]);
        assert_eq!(first_unclean(&ok, Since::FirstReload).unwrap(), None);
        assert_eq!(first_unclean(&ok, Since::ColdBoot).unwrap(), None);

        // Trouble before the reload counts only from the cold boot on.
        let early = run_of(&[BOOT, &["[hv] ERROR: device tree: x"], RELOAD]);
        assert_eq!(first_unclean(&early, Since::FirstReload).unwrap(), None);
        assert_eq!(
            first_unclean(&early, Since::ColdBoot).unwrap(),
            Some(("[hv] ERROR: device tree: x", TROUBLE))
        );

        for bad in [
            "[domU1] mempattern: MISMATCH at 0x1000: expected 0x1 got 0x2",
            "[hv] FATAL: unexpected exception at EL2 on cpu 1: x",
            "[domU0] / # [hv] PANIC on cpu 0: x",
            "[hv] WARN: vm 0 'domU0': x",
            "[hv] ERROR: handoff block refused: x; cold-booting the VMs from their configuration",
            "[hv] debug-leak: 9 KiB refused: at most 1 KiB may be leaked",
        ] {
            let run = run_of(&[BOOT, RELOAD, &[bad]]);
            assert_eq!(
                first_unclean(&run, Since::FirstReload).unwrap(),
                Some((bad, TROUBLE)),
                "{bad}"
            );
        }
        let restarted = run_of(&[BOOT, RELOAD, &["[hv] vm 1 'domU1': started"]]);
        for since in [Since::ColdBoot, Since::FirstReload] {
            assert_eq!(
                first_unclean(&restarted, since).unwrap(),
                Some(("[hv] vm 1 'domU1': started", RESTARTED))
            );
        }

        // An upgrade's first line starts the scan.
        let upgrade = run_of(&[
            BOOT,
            &[
                "[hv] upgrade: image slot 1 holds 'blink 0.1.0+next' (1 bytes, checksum ok); this is 'blink 0.1.0'",
                "[hv] WARN: x",
            ],
            RELOAD,
        ]);
        assert_eq!(
            first_unclean(&upgrade, Since::FirstReload).unwrap(),
            Some(("[hv] WARN: x", TROUBLE))
        );

        // No reload at all: nothing to check against.
        assert!(first_unclean(&lines(BOOT), Since::FirstReload).is_err());
        assert!(first_unclean(&lines(BOOT), Since::ColdBoot).is_err());
    }
}
