//! The test guests' console lines the integration tests read (`[<vm>] ...`,
//! printed by `guests/src/bin/*.rs`).

use anyhow::Result;

use crate::{check, re, QemuRun, Regex, DEADLINE};

/// Regex of a heartbeat report of VM `name` (capture 1 = n):
/// `[<name>] heartbeat: n=<seconds> count=...`.
pub fn heartbeat(name: &str) -> Regex {
    re(&format!(
        r"^\[{}\] heartbeat: n=(\d+)(\s|$)",
        regex::escape(name)
    ))
}

/// The `n=` of a heartbeat line of VM `name`.
pub fn heartbeat_n(name: &str, line: &str) -> Option<u64> {
    heartbeat(name).captures(line)?[1].parse().ok()
}

/// The `n=` of every heartbeat line of VM `name` so far, in order.
pub fn heartbeats(run: &QemuRun, name: &str) -> Vec<u64> {
    run.lines()
        .iter()
        .filter_map(|l| heartbeat_n(name, l))
        .collect()
}

/// Every pass number the memory-pattern guest `name` reported so far.
pub fn mempattern_passes(run: &QemuRun, name: &str) -> Vec<u64> {
    run.lines()
        .iter()
        .filter_map(|l| mempattern_pass(name, l))
        .collect()
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

/// Checks that a series of heartbeat reports shows a guest that kept
/// counting: n (seconds of its own virtual counter) strictly increasing and
/// on average less than three seconds apart. A heartbeat left only scraps of
/// CPU time by a neighbour would report rarely, n jumping by many seconds
/// each time (one report per second is the heartbeat's own rate; the slack
/// absorbs a loaded host).
pub fn check_counting(run: &QemuRun, ns: &[u64], what: &str) -> Result<()> {
    check!(run, ns.len() >= 2, "{what}: too few heartbeats: {ns:?}");
    check_increasing(run, ns, what)?;
    let span = ns[ns.len() - 1] - ns[0];
    let steps = (ns.len() - 1) as u64;
    check!(
        run,
        span < 3 * steps,
        "{what}: heartbeat starved: n advanced {span} in {steps} reports: {ns:?}"
    );
    Ok(())
}

/// Fails unless the heartbeat numbers `ns` only go up (`what` says whose).
pub fn check_increasing(run: &QemuRun, ns: &[u64], what: &str) -> Result<()> {
    check!(
        run,
        ns.windows(2).all(|w| w[1] > w[0]),
        "{what}: heartbeat n not increasing: {ns:?}"
    );
    Ok(())
}

/// Fails unless exactly one line so far matches `start`, the start line of
/// the guest `what` names: it never started again (a reload or a neighbour's
/// restart must not restart it).
pub fn check_started_once(run: &QemuRun, start: &Regex, what: &str) -> Result<()> {
    let n = run.find_all(start).len();
    check!(run, n == 1, "{what} restarted ({n} start lines)");
    Ok(())
}

/// The pass number of a memory-pattern line of VM `name`
/// (`[name] mempattern: pass N: ...`).
pub fn mempattern_pass(name: &str, line: &str) -> Option<u64> {
    let rest = line
        .strip_prefix('[')?
        .strip_prefix(name)?
        .strip_prefix("] mempattern: pass ")?;
    rest.split(':').next()?.parse().ok()
}

/// What a Linux guest prints when it is in trouble (a panic, an oops, a
/// stalled RCU grace period): a test of a healthy kernel fails on it.
pub const LINUX_TROUBLE: &str =
    r"Kernel panic|\] Oops|BUG: |Internal error:|rcu: INFO: rcu_sched detected stalls";

/// The count of a `counter: N` line of Linux's counter service. The line
/// may follow the shell's prompt on the same console line: the prompt is a
/// partial line, shown when the VM idles, and the service's next line
/// continues it (`[domU0] / # counter: 5`).
pub fn linux_counter_n(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("[domU0] ")?;
    let (before, count) = rest.rsplit_once("counter: ")?;
    if !(before.is_empty() || before.starts_with("/ #")) {
        return None;
    }
    count.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mempattern_pass_parsing() {
        assert_eq!(
            mempattern_pass("domU1", "[domU1] mempattern: pass 12: 64 MiB ok"),
            Some(12)
        );
        assert_eq!(
            mempattern_pass("domU2", "[domU1] mempattern: pass 12: 64 MiB ok"),
            None
        );
        assert_eq!(
            mempattern_pass("domU1", "[domU1] mempattern: filled 64 MiB"),
            None
        );
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
    }
}
