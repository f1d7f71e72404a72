//! A guest that attacks the hypervisor is contained: every probe is caught,
//! the hypervisor only warns, and the neighbouring VM keeps running.

use tests::*;

fn hostile(gic: u32) -> anyhow::Result<()> {
    require_images(&["heartbeat", "hostile"])?;
    let mut run = start(&scenario(
        gic,
        [
            VmSpec::guest("domU0", "heartbeat"),
            VmSpec::guest("domU1", "hostile"),
        ],
    ))?;

    let done_re = re(r"^\[domU1\] hostile: done (\d+) probes, (\d+) contained$");
    let done = run.expect(&done_re, DEADLINE)?;
    let caps = done_re.captures(&done).expect("matched");
    let (probes, contained): (u64, u64) = (caps[1].parse()?, caps[2].parse()?);
    check!(
        run,
        probes > 0 && probes == contained,
        "not every probe was contained: {done}"
    );

    let warns = run.find_all(&hv::vm_warning());
    check!(
        run,
        !warns.is_empty(),
        "no `[hv] WARN: vm` line for the hostile guest"
    );
    for w in &warns {
        check!(
            run,
            w.contains("'domU1'"),
            "a warning blames a VM other than the hostile one: {w}"
        );
    }

    // Heartbeat goes on after the attack: two more reports, n increasing.
    let hb = heartbeat("domU0");
    let consumed = run.cursor();
    let mut last = run.lines()[..consumed]
        .iter()
        .filter_map(|l| heartbeat_n("domU0", l))
        .next_back();
    for _ in 0..2 {
        let line = run.expect(&hb, DEADLINE)?;
        let n = heartbeat_n("domU0", &line).expect("matched");
        check!(
            run,
            last.is_none_or(|prev| n > prev),
            "heartbeat n did not increase: {line}"
        );
        last = Some(n);
    }
    Ok(())
}

on_both_gics!(hostile);
