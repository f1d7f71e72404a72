//! The virtual timer interrupt arrives at the programmed rate, as measured by
//! the guest against its own virtual counter (not wall-clock time).

use tests::*;

fn timer(gic: u32) -> anyhow::Result<()> {
    require_images(&["timer"])?;
    let mut run = start(&scenario(gic, [VmSpec::guest("domU0", "timer")]))?;

    let start_re = re(r"^\[domU0\] timer: start gic=v(\d) period_ms=10$");
    let line = run.expect(&start_re, DEADLINE)?;
    let seen = start_re.captures(&line).expect("matched")[1].to_string();
    check!(
        run,
        seen == gic.to_string(),
        "guest saw GICv{seen} on a GICv{gic} machine"
    );

    run.expect(&re(r"^\[domU0\] timer: done$"), DEADLINE)?;
    let report_re = re(r"^\[domU0\] timer: ticks=(\d+) elapsed_us=(\d+) rate_hz=(\d+(?:\.\d+)?)$");
    let reports = run.find_all(&report_re);
    check!(
        run,
        reports.len() >= 2,
        "expected several timer reports, got {}",
        reports.len()
    );
    // The first report includes start-up; the later ones measure steady state.
    for line in &reports[1..] {
        let rate: f64 = report_re.captures(line).expect("matched")[3].parse()?;
        check!(
            run,
            (90.0..=110.0).contains(&rate),
            "rate {rate} Hz outside 90..110: {line}"
        );
    }
    Ok(())
}

on_both_gics!(timer);
