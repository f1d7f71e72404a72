//! Shared helpers of the QEMU integration tests (`tests/tests/*.rs`).
//!
//! Each test boots `target/images/hypervisor.bin` with some guests under QEMU
//! and asserts on the serial output described in the console contract:
//! [`hv`] has the hypervisor's lines, [`guest`] the test guests', and
//! [`reload`] what a warm reload must preserve. Every scenario runs once
//! per GIC version (see [`on_both_gics!`]). Waits use [`DEADLINE`]: a
//! generous upper bound for TCG on a loaded 2-core machine, never a
//! performance assertion.

use std::time::Duration;

pub use anyhow;
use anyhow::{Context, Result};
pub use regex::Regex;
pub use xtask::{QemuRun, Scenario, VmSpec};

pub mod guest;
pub mod hv;
pub mod link;
pub mod reload;

// The helpers tests call unqualified.
pub use guest::{
    check_counting, heartbeat, heartbeat_n, heartbeats, mempattern_pass, mempattern_passes,
    more_heartbeats,
};
pub use hv::{VmCreated, FATAL};
pub use reload::start_heartbeat_and_pattern;

/// How long any single wait may take.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Defines `#[test] fn gicv2()` and `#[test] fn gicv3()` calling
/// `$scenario(2)` and `$scenario(3)` (a `fn(u32) -> anyhow::Result<()>`).
#[macro_export]
macro_rules! on_both_gics {
    ($scenario:ident) => {
        #[test]
        fn gicv2() -> $crate::anyhow::Result<()> {
            $scenario(2)
        }

        #[test]
        fn gicv3() -> $crate::anyhow::Result<()> {
            $scenario(3)
        }
    };
}

/// Returns an error carrying the run's recent output unless `$cond` holds.
#[macro_export]
macro_rules! check {
    ($run:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::anyhow::anyhow!("{}\n{}", format!($($msg)+), $run.report()));
        }
    };
}

/// A regex from a literal pattern (test code: a bad pattern is a bug).
pub fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad test regex {pattern:?}: {e}"))
}

/// Fails with "run `cargo xtask build`" unless the hypervisor image and the
/// named guest images exist.
pub fn require_images(guests: &[&str]) -> Result<()> {
    xtask::images::require_hypervisor_image()?;
    for guest in guests {
        xtask::images::require_guest_image(guest)?;
    }
    Ok(())
}

/// A scenario on `gic` with 2 physical CPUs and the given VMs.
pub fn scenario(gic: u32, vms: impl IntoIterator<Item = VmSpec>) -> Scenario {
    let mut s = Scenario::new(gic).smp(2);
    s.vms.extend(vms);
    s
}

/// Starts `scenario`; any `[hv] FATAL`/`[hv] PANIC` line fails the test's
/// next wait immediately.
pub fn start(scenario: &Scenario) -> Result<QemuRun> {
    let mut run = QemuRun::start(scenario).context("starting QEMU")?;
    run.fail_on(re(FATAL));
    Ok(run)
}

/// Waits until every pattern in `wanted` has matched some line (in any
/// order) and returns the first match of each.
pub fn wait_all(run: &mut QemuRun, wanted: &[Regex]) -> Result<Vec<String>> {
    let what = format!("{} expected lines", wanted.len());
    let found = run.wait_until(DEADLINE, &what, |lines| {
        wanted
            .iter()
            .map(|re| lines.iter().find(|l| re.is_match(l)).cloned())
            .collect::<Option<Vec<_>>>()
    });
    found.map_err(|e| {
        let lines = run.lines();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|re| !lines.iter().any(|l| re.is_match(l)))
            .map(|re| format!("  /{}/", re.as_str()))
            .collect();
        e.context(format!("never seen:\n{}", missing.join("\n")))
    })
}

/// Regex of the `started` line of VM `name`, any id (see
/// [`hv::vm_started`]).
pub fn started(name: &str) -> Regex {
    hv::vm_started(None, name)
}

/// The last value `f` finds in the output so far, 0 if none.
pub fn last_value(run: &QemuRun, f: impl Fn(&str) -> Option<u64>) -> u64 {
    run.lines()
        .iter()
        .filter_map(|l| f(l))
        .next_back()
        .unwrap_or(0)
}

/// Waits until `f` finds a value above `after` in some line; returns it.
pub fn wait_beyond(
    run: &mut QemuRun,
    deadline: Duration,
    what: &str,
    f: impl Fn(&str) -> Option<u64>,
    after: u64,
) -> Result<u64> {
    run.wait_until(deadline, what, |lines| {
        lines.iter().filter_map(|l| f(l)).find(|&n| n > after)
    })
}

/// `Ctrl-] h`: console input to the hypervisor shell from now on.
pub fn focus_shell(run: &mut QemuRun, deadline: Duration) -> Result<()> {
    run.send(b"\x1dh")?;
    run.expect(&hv::input_to_shell(), deadline)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_matches_any_id() {
        assert!(started("domU0").is_match("[hv] vm 0 'domU0': started"));
        assert!(started("domU0").is_match("[hv] vm 2 'domU0': started"));
        assert!(!started("domU0").is_match("[hv] vm 0 'domU1': started"));
    }
}
