//! Shared helpers of the QEMU integration tests (`tests/tests/*.rs`).
//!
//! Each test boots `target/images/hypervisor.bin` with some guests under QEMU
//! and asserts on the serial output described in the console contract. Every
//! scenario runs once per GIC version (see [`on_both_gics!`]). Waits use
//! [`DEADLINE`]: a generous upper bound for TCG on a loaded 2-core machine,
//! never a performance assertion.

use std::time::Duration;

pub use anyhow;
use anyhow::{Context, Result};
pub use regex::Regex;
pub use xtask::{QemuRun, Scenario, VmSpec};

/// How long any single wait may take.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Hypervisor lines that end a test at once, whatever it waits for.
pub const FATAL: &str = r"\[hv\] (FATAL|PANIC)";

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

/// `[hv] vm <id> '<name>': <mem> MiB at 0x<pa>, <n> vCPUs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmCreated {
    pub id: u32,
    pub name: String,
    pub mib: u64,
    pub pa: u64,
    pub vcpus: u32,
}

impl VmCreated {
    /// Regex of the created line of VM `name`.
    pub fn pattern(name: &str) -> Regex {
        re(&format!(
            r"^\[hv\] vm (\d+) '({})': (\d+) MiB at 0x([0-9a-fA-F]+), (\d+) vCPUs?$",
            regex::escape(name)
        ))
    }

    /// Parses a created line; `None` if it is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let c = re(r"^\[hv\] vm (\d+) '([^']+)': (\d+) MiB at 0x([0-9a-fA-F]+), (\d+) vCPUs?$")
            .captures(line)?;
        Some(VmCreated {
            id: c[1].parse().ok()?,
            name: c[2].to_string(),
            mib: c[3].parse().ok()?,
            pa: u64::from_str_radix(&c[4], 16).ok()?,
            vcpus: c[5].parse().ok()?,
        })
    }

    /// The VM's RAM as a physical address range.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.pa..self.pa + (self.mib << 20)
    }
}

/// Regex of the `started` line of VM `name`.
pub fn started(name: &str) -> Regex {
    re(&format!(
        r"^\[hv\] vm \d+ '{}': started$",
        regex::escape(name)
    ))
}

/// The `n=` of a heartbeat line of VM `name`.
pub fn heartbeat_n(name: &str, line: &str) -> Option<u64> {
    heartbeat(name).captures(line)?[1].parse().ok()
}

/// Regex of a heartbeat report of VM `name` (capture 1 = n).
pub fn heartbeat(name: &str) -> Regex {
    re(&format!(
        r"^\[{}\] heartbeat: n=(\d+)(\s|$)",
        regex::escape(name)
    ))
}

/// The `n=` of every heartbeat line of VM `name` so far, in order.
pub fn heartbeats(run: &QemuRun, name: &str) -> Vec<u64> {
    run.lines().iter().filter_map(|l| heartbeat_n(name, l)).collect()
}

/// Waits until VM `name` has printed `more` heartbeats beyond the ones seen
/// so far; returns all of them.
pub fn more_heartbeats(run: &mut QemuRun, name: &str, more: usize, what: &str) -> Result<Vec<u64>> {
    let want = heartbeats(run, name).len() + more;
    run.wait_until(DEADLINE, what, |lines| {
        let ns: Vec<u64> = lines.iter().filter_map(|l| heartbeat_n(name, l)).collect();
        (ns.len() >= want).then_some(ns)
    })
}

/// The pass number of a memory-pattern line of VM `name`
/// (`[name] mempattern: pass N: ...`).
pub fn mempattern_pass(name: &str, line: &str) -> Option<u64> {
    let rest = line.strip_prefix('[')?.strip_prefix(name)?.strip_prefix("] mempattern: pass ")?;
    rest.split(':').next()?.parse().ok()
}

/// The last value `f` finds in the output so far, 0 if none.
pub fn last_value(run: &QemuRun, f: impl Fn(&str) -> Option<u64>) -> u64 {
    run.lines().iter().filter_map(|l| f(l)).next_back().unwrap_or(0)
}

/// Waits until `f` finds a value above `after` in some line; returns it.
pub fn wait_beyond(run: &mut QemuRun, deadline: Duration, what: &str, f: impl Fn(&str) -> Option<u64>, after: u64) -> Result<u64> {
    run.wait_until(deadline, what, |lines| lines.iter().filter_map(|l| f(l)).find(|&n| n > after))
}

/// `Ctrl-] h`: console input to the hypervisor shell from now on.
pub fn focus_shell(run: &mut QemuRun, deadline: Duration) -> Result<()> {
    run.send(b"\x1dh")?;
    run.expect(&re(r"^\[hv\] console input now goes to the hypervisor shell"), deadline)?;
    Ok(())
}

/// The reload tests' pair: the heartbeat guest as domU0 and the
/// memory-pattern guest as domU1, both at work (two heartbeats, one
/// verified pass), input on the hypervisor shell. `adjust` changes the
/// scenario before QEMU starts.
pub fn start_heartbeat_and_pattern(gic: u32, adjust: impl FnOnce(&mut Scenario)) -> Result<QemuRun> {
    require_images(&["heartbeat", "mempattern"])?;
    let mut s = scenario(gic, [VmSpec::guest("domU0", "heartbeat"), VmSpec::guest("domU1", "mempattern")]);
    adjust(&mut s);
    let mut run = start(&s)?;
    wait_all(&mut run, &[re(r"^\[domU0\] heartbeat: n=2 "), re(r"^\[domU1\] mempattern: pass 1: \d+ MiB ok$")])?;
    focus_shell(&mut run, DEADLINE)?;
    Ok(run)
}

/// Checks that a series of heartbeat reports shows a guest that kept
/// counting: n (seconds of its own virtual counter) strictly increasing and
/// on average less than three seconds apart. A heartbeat left only scraps of
/// CPU time by a neighbour would report rarely, n jumping by many seconds
/// each time (one report per second is the heartbeat's own rate; the slack
/// absorbs a loaded host).
pub fn check_counting(run: &QemuRun, ns: &[u64], what: &str) -> Result<()> {
    check!(run, ns.len() >= 2, "{what}: too few heartbeats: {ns:?}");
    check!(run, ns.windows(2).all(|w| w[1] > w[0]), "{what}: heartbeat n not increasing: {ns:?}");
    let span = ns[ns.len() - 1] - ns[0];
    let steps = (ns.len() - 1) as u64;
    check!(run, span < 3 * steps, "{what}: heartbeat starved: n advanced {span} in {steps} reports: {ns:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mempattern_pass_parsing() {
        assert_eq!(mempattern_pass("domU1", "[domU1] mempattern: pass 12: 64 MiB ok"), Some(12));
        assert_eq!(mempattern_pass("domU2", "[domU1] mempattern: pass 12: 64 MiB ok"), None);
        assert_eq!(mempattern_pass("domU1", "[domU1] mempattern: filled 64 MiB"), None);
    }

    #[test]
    fn created_line_parsing() {
        let l = "[hv] vm 1 'domU1': 64 MiB at 0x48000000, 2 vCPUs";
        let vm = VmCreated::parse(l).unwrap();
        assert_eq!(
            vm,
            VmCreated {
                id: 1,
                name: "domU1".into(),
                mib: 64,
                pa: 0x4800_0000,
                vcpus: 2
            }
        );
        assert_eq!(vm.range(), 0x4800_0000..0x4c00_0000);
        assert!(VmCreated::pattern("domU1").is_match(l));
        assert!(!VmCreated::pattern("domU0").is_match(l));
        assert!(VmCreated::parse("[hv] vm 1 'domU1': started").is_none());
    }

    #[test]
    fn heartbeat_parsing() {
        let l = "[domU0] heartbeat: n=12 count=345 max_gap_us=10 max_gap_ticks=625";
        assert_eq!(heartbeat_n("domU0", l), Some(12));
        assert_eq!(heartbeat_n("domU1", l), None);
        assert_eq!(
            heartbeat_n("domU0", "[domU0] heartbeat: start cntfrq=62500000"),
            None
        );
        assert!(started("domU0").is_match("[hv] vm 0 'domU0': started"));
        assert!(re(FATAL).is_match("[hv] FATAL: unexpected exception"));
        assert!(re(FATAL).is_match("[hv] PANIC: at foo.rs:1"));
    }
}
