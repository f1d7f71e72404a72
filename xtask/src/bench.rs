//! `cargo xtask bench ...`: measurements, printed as a table and drawn as an
//! SVG plot under `target/bench/`. Figures come from inside the guests (their
//! virtual counter), never from timing tests.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use regex::Regex;

use crate::{images, QemuRun, Scenario, VmSpec};

/// Exit costs: the `bench` guest on GICv3 and GICv2, each once with
/// `-icount shift=0` (one instruction = 1 ns of guest time, so the figures
/// are instruction counts, deterministic) and once in wall-clock mode.
pub fn exits() -> Result<()> {
    images::require_hypervisor_image()?;
    images::require_guest_image("bench")?;
    let ops = ["hvc_roundtrip", "mmio_read", "virq_injection", "loop_baseline"];
    // (gic, icount) -> op -> ns per op
    let mut results: BTreeMap<(u32, bool), BTreeMap<String, f64>> = BTreeMap::new();
    let line = Regex::new(r"\[domU0\] bench: (\w+) ns_per_op=([0-9.]+) ticks=(\d+) iterations=(\d+)")?;
    for gic in [3, 2] {
        for icount in [true, false] {
            let mut s = Scenario::new(gic).smp(1).vm(VmSpec::guest("domU0", "bench"));
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
    writeln!(table, "\nExit costs measured inside a VM (bench guest, 2000 iterations each, 1 vCPU on 1 CPU)")?;
    writeln!(table, "instructions: QEMU -icount shift=0 (1 insn = 1 ns guest time); wall: host time, TCG, noisy\n")?;
    writeln!(table, "{:<18} {:>14} {:>12} {:>14} {:>12}", "operation", "GICv3 insns", "GICv3 ns", "GICv2 insns", "GICv2 ns")?;
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
        .map(|op| (op.to_string(), results[&(3, true)][*op], results[&(2, true)][*op]))
        .collect();
    let svg = bar_chart("Exit cost (instructions, -icount shift=0)", ("GICv3", "GICv2"), &bars);
    let path = dir.join("exits.svg");
    std::fs::write(&path, svg)?;
    println!("\nwrote {} and {}", dir.join("exits.txt").display(), path.display());
    Ok(())
}

/// A grouped bar chart (two series) as a standalone SVG document.
pub fn bar_chart(title: &str, series: (&str, &str), bars: &[(String, f64, f64)]) -> String {
    let (w, h, left, bottom, top) = (640.0, 360.0, 60.0, 300.0, 40.0);
    let max = bars.iter().map(|b| b.1.max(b.2)).fold(1.0, f64::max) * 1.1;
    let group = (w - left - 20.0) / bars.len().max(1) as f64;
    let bw = group * 0.35;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>
<line x1="{left}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>
"#,
        w / 2.0,
        w - 20.0
    );
    for (i, (name, a, b)) in bars.iter().enumerate() {
        let x = left + group * i as f64 + group * 0.15;
        for (k, (v, color)) in [(*a, "#3b6ea5"), (*b, "#e08a2c")].iter().enumerate() {
            let bh = (bottom - top) * v / max;
            let bx = x + k as f64 * bw;
            let _ = writeln!(
                s,
                r#"<rect x="{bx:.1}" y="{:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.0}</text>"#,
                bottom - bh,
                bx + bw / 2.0,
                bottom - bh - 4.0
            );
        }
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#, x + bw, bottom + 18.0);
    }
    let _ = writeln!(
        s,
        r##"<rect x="{0}" y="{1}" width="12" height="12" fill="#3b6ea5"/><text x="{2}" y="{3}">{4}</text><rect x="{5}" y="{1}" width="12" height="12" fill="#e08a2c"/><text x="{6}" y="{3}">{7}</text>"##,
        left + 10.0,
        h - 30.0,
        left + 26.0,
        h - 20.0,
        series.0,
        left + 110.0,
        left + 126.0,
        series.1
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn bar_chart_is_svg_with_every_bar() {
        let svg = super::bar_chart("t", ("a", "b"), &[("x".into(), 10.0, 20.0), ("y".into(), 5.0, 0.0)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 1 + 4 + 2);
        assert!(svg.contains(">20<") && svg.contains(">x<"));
    }
}
