//! The shell's `exits` counters: the bench guest makes a known number of
//! each kind of exit (2,000 timed iterations plus one warm-up of a PSCI
//! VERSION HVC, a PL011 flag register read and a self-SGI), and the
//! counters show each of them exactly once per operation (not zero, not
//! twice), in the line format `cargo xtask bench linux` parses.

use tests::*;
use xtask::bench_linux::{parse_exits, rates, ExitsReading};

/// Iterations of each operation in the bench guest, warm-up included.
const OPS: u64 = 2001;

fn reading(run: &mut QemuRun) -> anyhow::Result<ExitsReading> {
    run.send(b"exits\r")?;
    let line = run.expect(&hv::exits_report(), DEADLINE)?;
    parse_exits(&line)
        .ok_or_else(|| anyhow::anyhow!("unparsable exits line: {line}\n{}", run.report()))
}

fn get(r: &ExitsReading, name: &str) -> u64 {
    r.counts
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap_or(u64::MAX)
}

fn exit_counts(gic: u32) -> anyhow::Result<()> {
    require_images(&["bench"])?;
    let mut run = start(&scenario(gic, [VmSpec::guest("domU0", "bench")]).smp(1))?;
    run.expect(&re(r"^\[domU0\] bench: done$"), DEADLINE)?;
    focus_shell(&mut run, DEADLINE)?;
    let a = reading(&mut run)?;
    let (hvc, uart, sgi, gicd) = (
        get(&a, "hvc_psci"),
        get(&a, "mmio_uart"),
        get(&a, "sysreg_sgi"),
        get(&a, "mmio_gicd"),
    );
    // A few more of each come from the guest's start-up and its console
    // output (two PL011 accesses a character); counting twice would double.
    check!(
        run,
        (OPS..OPS + 10).contains(&hvc),
        "hvc_psci={hvc}, expected {OPS} PSCI VERSION calls and a few more"
    );
    check!(
        run,
        (OPS..2 * OPS).contains(&uart),
        "mmio_uart={uart}, expected {OPS} flag reads plus the console output"
    );
    if gic == 3 {
        check!(
            run,
            (OPS..OPS + 10).contains(&sgi),
            "sysreg_sgi={sgi}, expected {OPS} ICC_SGI1R_EL1 writes"
        );
    } else {
        check!(run, sgi == 0, "sysreg_sgi={sgi} on GICv2");
        check!(
            run,
            (OPS..2 * OPS).contains(&gicd),
            "mmio_gicd={gicd}, expected {OPS} GICD_SGIR writes and the set-up"
        );
    }
    for none in [
        "abort_injected",
        "iabt",
        "serror",
        "other",
        "sysreg_other",
        "pirq_other",
    ] {
        check!(
            run,
            get(&a, none) == 0,
            "{none}={} in a well-behaved guest",
            get(&a, none)
        );
    }
    // `total` is the sum of the exit kinds (those before the pirq_* counts
    // of physical interrupts).
    let exits: u64 = a.counts[1..]
        .iter()
        .take_while(|(k, _)| !k.starts_with("pirq_"))
        .map(|(_, v)| v)
        .sum();
    check!(
        run,
        get(&a, "total") == exits,
        "total={} but the exit kinds add up to {exits}",
        get(&a, "total")
    );
    // The typed command came in through the console UART's interrupt.
    check!(
        run,
        get(&a, "pirq_uart") >= 1,
        "pirq_uart={}",
        get(&a, "pirq_uart")
    );

    // A second reading moves on and makes a rate.
    let b = reading(&mut run)?;
    let (secs, r) = rates(&a, &b)?;
    check!(
        run,
        secs > 0.0 && r.iter().all(|(_, v)| *v >= 0.0),
        "rates {r:?} over {secs} s"
    );
    check!(
        run,
        get(&b, "pirq_uart") > get(&a, "pirq_uart"),
        "the second `exits` was typed too"
    );
    Ok(())
}

on_both_gics!(exit_counts);
