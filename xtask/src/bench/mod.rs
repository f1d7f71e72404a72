//! `cargo xtask bench ...`: measurements, printed as a table and drawn as an
//! SVG plot under `target/bench/`. Figures come from inside the guests (their
//! virtual counter), never from timing tests.
//!
//! One file per benchmark: [`exits`](mod@exits) (`bench exits`),
//! [`reload`](mod@reload) (`bench reload`), [`linux`] (`bench linux`),
//! [`maint`](mod@maint) (`bench maint`).
//! This file holds what they share: the SVG charts, and reading the
//! hypervisor's `exits` line (which the `tests` crate uses too).

use std::fmt::Write as _;

use anyhow::{bail, Result};

pub mod exits;
pub mod linux;
pub mod maint;
pub mod reload;

pub use exits::exits;
pub use maint::maint;
pub use reload::reload;

/// One reading of the hypervisor's `exits` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitsReading {
    /// Physical counter when the line was printed, and its frequency.
    pub counter: u64,
    pub freq: u64,
    /// `name=count` pairs in the order printed (`total` first).
    pub counts: Vec<(String, u64)>,
}

/// Parses `[hv] exits at counter <c> freq <hz>: total=N name=N ...`.
pub fn parse_exits(line: &str) -> Option<ExitsReading> {
    let rest = line.strip_prefix("[hv] exits at counter ")?;
    let (head, list) = rest.split_once(": ")?;
    let (counter, freq) = head.split_once(" freq ")?;
    let counts = list
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (!k.is_empty()).then_some(())?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    if counts.first().map(|(k, _)| k.as_str()) != Some("total") {
        return None;
    }
    Some(ExitsReading {
        counter: counter.parse().ok()?,
        freq: freq.parse().ok()?,
        counts,
    })
}

/// Per-second rates of every count between two readings, and the window's
/// length in seconds of counter time. Fails if the readings do not fit
/// together (another image in between, counter not advancing).
pub fn rates(a: &ExitsReading, b: &ExitsReading) -> Result<(f64, Vec<(String, f64)>)> {
    if a.freq == 0 || a.freq != b.freq {
        bail!(
            "counter frequencies {} and {} do not allow a rate",
            a.freq,
            b.freq
        );
    }
    if b.counter <= a.counter {
        bail!(
            "the counter did not advance between the readings ({} -> {})",
            a.counter,
            b.counter
        );
    }
    let secs = (b.counter - a.counter) as f64 / a.freq as f64;
    if a.counts
        .iter()
        .map(|c| &c.0)
        .ne(b.counts.iter().map(|c| &c.0))
    {
        bail!("the two exits lines name different counters");
    }
    let mut out = Vec::with_capacity(a.counts.len());
    for ((name, x), (_, y)) in a.counts.iter().zip(&b.counts) {
        if y < x {
            bail!("{name} went down ({x} -> {y}): a different hypervisor image answered");
        }
        out.push((name.clone(), (y - x) as f64 / secs));
    }
    Ok((secs, out))
}

/// Lines over a shared x axis of labels, y on a log10 scale (the figures
/// compared span several decades), as a standalone SVG document.
pub fn log_line_chart(title: &str, xs: &[String], series: &[(String, &str, Vec<f64>)]) -> String {
    let (w, h, left, right, bottom, top) = (680.0, 400.0, 70.0, 190.0, 340.0, 40.0);
    let vals = series
        .iter()
        .flat_map(|s| s.2.iter().copied())
        .filter(|v| *v > 0.0);
    let lo = vals
        .clone()
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        .log10()
        .floor();
    let hi = vals.fold(1.0, f64::max).log10().ceil().max(lo + 1.0);
    let y =
        |v: f64| bottom - (bottom - top) * ((v.max(1e-3).log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
    let step = (w - left - right) / (xs.len().max(2) - 1) as f64;
    let x = |i: usize| left + step * i as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>
<line x1="{left}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>
"#,
        w / 2.0,
        w - right
    );
    for d in lo as i32..=hi as i32 {
        let yy = y(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">1e{d}</text>"##,
            w - right,
            left - 6.0,
            yy + 4.0
        );
    }
    for (i, label) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            x(i),
            bottom + 18.0
        );
    }
    for (k, (name, color, v)) in series.iter().enumerate() {
        let pts: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for (i, val) in v.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{val:.0}</title></circle>"#,
                x(i),
                y(*val)
            );
        }
        let ly = top + 10.0 + 18.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{ly}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            w - right + 12.0,
            w - right + 28.0,
            ly + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
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
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
            x + bw,
            bottom + 18.0
        );
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

/// Horizontal grouped bars (two series per row, linear scale, values
/// printed), as a standalone SVG document: room for long row names.
pub(crate) fn hbar_chart(title: &str, series: (&str, &str), rows: &[(String, f64, f64)]) -> String {
    let (left, width, bar, top) = (140.0, 440.0, 11.0, 50.0);
    let row_h = 2.0 * bar + 8.0;
    let h = top + row_h * rows.len() as f64 + 40.0;
    let w = left + width + 80.0;
    let max = rows.iter().map(|r| r.1.max(r.2)).fold(1.0, f64::max);
    let colors = ["#3b6ea5", "#e08a2c"];
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{title}</text>
<line x1="{left}" y1="{}" x2="{left}" y2="{}" stroke="black"/>
"#,
        w / 2.0,
        top - 6.0,
        h - 34.0
    );
    for (i, (name, a, b)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{name}</text>"#,
            left - 6.0,
            y + bar + 4.0
        );
        for (k, v) in [*a, *b].into_iter().enumerate() {
            let yy = y + k as f64 * bar;
            let bw = width * v / max;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{yy:.1}" width="{bw:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{v:.0}</text>"#,
                bar - 1.0,
                colors[k],
                left + bw + 4.0,
                yy + bar - 2.0
            );
        }
    }
    let ly = h - 24.0;
    for (k, name) in [series.0, series.1].into_iter().enumerate() {
        let x = left + 180.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{name}</text>"#,
            colors[k],
            x + 16.0,
            ly + 10.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "[hv] exits at counter 625000000 freq 62500000: total=30 hvc_psci=2 wfi=20 mmio_uart=8 pirq_vtimer=5";

    #[test]
    fn exits_line_parses() {
        let r = parse_exits(LINE).unwrap();
        assert_eq!((r.counter, r.freq), (625_000_000, 62_500_000));
        assert_eq!(r.counts.len(), 5);
        assert_eq!(r.counts[0], ("total".to_string(), 30));
        assert_eq!(r.counts[4], ("pirq_vtimer".to_string(), 5));
    }

    #[test]
    fn malformed_exits_lines_are_refused() {
        for bad in [
            "",
            "[domU0] exits at counter 1 freq 2: total=3",
            "[hv] exits at counter x freq 2: total=3",
            "[hv] exits at counter 1 freq 2 total=3",
            "[hv] exits at counter 1 freq 2: total=3 wfi",
            "[hv] exits at counter 1 freq 2: total=3 wfi=-1",
            "[hv] exits at counter 1 freq 2: total=3 =4",
            "[hv] exits at counter 1 freq 2: wfi=3",
        ] {
            assert_eq!(parse_exits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rates_per_second_of_counter_time() {
        let a = parse_exits(LINE).unwrap();
        // 2.5 s later (counter at 62.5 MHz).
        let b = parse_exits("[hv] exits at counter 781250000 freq 62500000: total=280 hvc_psci=2 wfi=220 mmio_uart=58 pirq_vtimer=30").unwrap();
        let (secs, r) = rates(&a, &b).unwrap();
        assert!((secs - 2.5).abs() < 1e-9);
        let got: Vec<(&str, f64)> = r.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            vec![
                ("total", 100.0),
                ("hvc_psci", 0.0),
                ("wfi", 80.0),
                ("mmio_uart", 20.0),
                ("pirq_vtimer", 10.0)
            ]
        );
    }

    #[test]
    fn rates_refuse_readings_that_do_not_fit() {
        let a = parse_exits(LINE).unwrap();
        // Same counter: no time passed.
        assert!(rates(&a, &a).is_err());
        // A count went down: a reload in between.
        let b = parse_exits("[hv] exits at counter 700000000 freq 62500000: total=10 hvc_psci=2 wfi=1 mmio_uart=8 pirq_vtimer=5").unwrap();
        assert!(rates(&a, &b).is_err());
        // Different counters named.
        let c =
            parse_exits("[hv] exits at counter 700000000 freq 62500000: total=40 wfi=30").unwrap();
        assert!(rates(&a, &c).is_err());
        // Different frequency.
        let d = parse_exits("[hv] exits at counter 700000000 freq 1000: total=30 hvc_psci=2 wfi=20 mmio_uart=8 pirq_vtimer=5").unwrap();
        assert!(rates(&a, &d).is_err());
    }

    #[test]
    fn bar_chart_is_svg_with_every_bar() {
        let svg = bar_chart(
            "t",
            ("a", "b"),
            &[("x".into(), 10.0, 20.0), ("y".into(), 5.0, 0.0)],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 1 + 4 + 2);
        assert!(svg.contains(">20<") && svg.contains(">x<"));
    }

    #[test]
    fn log_line_chart_has_every_series_and_decade() {
        let xs = vec!["a".to_string(), "b".to_string()];
        let svg = log_line_chart(
            "t",
            &xs,
            &[
                ("s1".into(), "red", vec![10.0, 1000.0]),
                ("s2".into(), "blue", vec![5.0, 5.0]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        // 5 .. 1000 spans the decades 1e0 .. 1e3.
        assert!(svg.contains(">1e0<") && svg.contains(">1e3<") && !svg.contains(">1e4<"));
    }

    #[test]
    fn hbar_chart_has_every_row() {
        let svg = hbar_chart(
            "t",
            ("a", "b"),
            &[
                ("wfi".into(), 10.0, 20.0),
                ("pirq_vtimer".into(), 0.0, 250.0),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Background, 2 bars per row, 2 legend swatches.
        assert_eq!(svg.matches("<rect").count(), 1 + 4 + 2);
        assert!(svg.contains(">wfi<") && svg.contains(">pirq_vtimer<") && svg.contains(">250<"));
    }
}
