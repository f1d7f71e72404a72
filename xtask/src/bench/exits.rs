//! `cargo xtask bench exits`: the cost of an HVC, an emulated MMIO access
//! and a virtual interrupt, measured by the `bench` guest.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use regex::Regex;

use super::bar_chart;
use crate::{images, QemuRun, Scenario, VmSpec};

/// Exit costs: the `bench` guest on GICv3 and GICv2, each once with
/// `-icount shift=0` (one instruction = 1 ns of guest time, so the figures
/// are instruction counts, deterministic) and once in wall-clock mode.
pub fn exits() -> Result<()> {
    images::require_hypervisor_image()?;
    images::require_guest_image("bench")?;
    let ops = [
        "hvc_roundtrip",
        "mmio_read",
        "virq_injection",
        "loop_baseline",
    ];
    // (gic, icount) -> op -> ns per op
    let mut results: BTreeMap<(u32, bool), BTreeMap<String, f64>> = BTreeMap::new();
    let line =
        Regex::new(r"\[domU0\] bench: (\w+) ns_per_op=([0-9.]+) ticks=(\d+) iterations=(\d+)")?;
    for gic in [3, 2] {
        for icount in [true, false] {
            let mut s = Scenario::new(gic)
                .smp(1)
                .vm(VmSpec::guest("domU0", "bench"));
            s.icount = icount;
            let mode = if icount { "icount" } else { "wall-clock" };
            eprintln!("bench exits: GICv{gic}, {mode} ...");
            let mut run = QemuRun::start(&s)?;
            run.expect("bench: done", Duration::from_secs(180))
                .with_context(|| format!("bench guest on GICv{gic} ({mode}) did not finish"))?;
            let mut m = BTreeMap::new();
            for l in run.lines() {
                if let Some(c) = line.captures(&l) {
                    m.insert(c[1].to_string(), c[2].parse::<f64>()?);
                }
            }
            for op in ops {
                if !m.contains_key(op) {
                    bail!("bench guest printed no figure for {op} on GICv{gic} ({mode})");
                }
            }
            results.insert((gic, icount), m);
        }
    }
    let mut table = String::new();
    writeln!(
        table,
        "\nExit costs measured inside a VM (bench guest, 2000 iterations each, 1 vCPU on 1 CPU)"
    )?;
    writeln!(table, "instructions: QEMU -icount shift=0 (1 insn = 1 ns guest time); wall: host time, TCG, noisy\n")?;
    writeln!(
        table,
        "{:<18} {:>14} {:>12} {:>14} {:>12}",
        "operation", "GICv3 insns", "GICv3 ns", "GICv2 insns", "GICv2 ns"
    )?;
    for op in ops {
        let f = |gic, icount| results[&(gic, icount)][op];
        writeln!(
            table,
            "{:<18} {:>14.0} {:>12.1} {:>14.0} {:>12.1}",
            op,
            f(3, true),
            f(3, false),
            f(2, true),
            f(2, false)
        )?;
    }
    print!("{table}");
    let dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("exits.txt"), &table)?;
    let bars: Vec<(String, f64, f64)> = ops[..3]
        .iter()
        .map(|op| {
            (
                op.to_string(),
                results[&(3, true)][*op],
                results[&(2, true)][*op],
            )
        })
        .collect();
    let svg = bar_chart(
        "Exit cost (instructions, -icount shift=0)",
        ("GICv3", "GICv2"),
        &bars,
    );
    let path = dir.join("exits.svg");
    std::fs::write(&path, svg)?;
    println!(
        "\nwrote {} and {}",
        dir.join("exits.txt").display(),
        path.display()
    );
    Ok(())
}
