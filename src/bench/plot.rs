//! `--plot FILE`: a small self-contained SVG line chart of the median ms of
//! each query against the number of profiles (both axes logarithmic), one
//! line per query, from the stages of a `--scale` run.
//!
//! Invariant: the SVG is well-formed for any reports, including one size,
//! missing timings (left out) and equal values (the axes are padded).

use super::report::{summary, thousands};
use super::run::BenchReport;
use std::fmt::Write;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// `(min, max)` of log10 values, widened to at least one decade.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let (lo, hi) = (lo.floor(), hi.ceil());
    Some(if hi - lo < 1.0 {
        (lo, lo + 1.0)
    } else {
        (lo, hi)
    })
}

fn decade_label(p: f64, unit: &str) -> String {
    let v = 10f64.powf(p);
    if v >= 1.0 {
        format!("{}{unit}", thousands(v.round() as u64))
    } else {
        format!("{v}{unit}")
    }
}

/// The SVG text.
pub fn svg(reports: &[BenchReport]) -> String {
    let points: Vec<(f64, Vec<Option<f64>>)> = reports
        .iter()
        .map(|r| {
            let ms = r
                .queries
                .iter()
                .map(|q| summary(&q.runs_ms).map(|(m, _, _)| m).filter(|m| *m > 0.0))
                .collect();
            (r.profiles.max(1) as f64, ms)
        })
        .collect();
    let names: Vec<&str> = reports
        .first()
        .map(|r| r.queries.iter().map(|q| q.query.name()).collect())
        .unwrap_or_default();
    let xs = span(points.iter().map(|(x, _)| x.log10())).unwrap_or((0.0, 1.0));
    let ys = span(
        points
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().map(|m| m.log10())),
    )
    .unwrap_or((0.0, 1.0));
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x.log10() - xs.0) / (xs.1 - xs.0) * pw;
    let py = |y: f64| TOP + ph - (y.log10() - ys.0) / (ys.1 - ys.0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15">cohortdb bench: median ms per query by profiles (log-log)</text>"#,
        LEFT + pw / 2.0
    );
    // Grid and labels at every decade.
    let mut d = xs.0;
    while d <= xs.1 + 1e-9 {
        let x = LEFT + (d - xs.0) / (xs.1 - xs.0) * pw;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 18.0,
            decade_label(d, "")
        );
        d += 1.0;
    }
    let mut d = ys.0;
    while d <= ys.1 + 1e-9 {
        let y = TOP + ph - (d - ys.0) / (ys.1 - ys.0) * ph;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y + 4.0,
            decade_label(d, " ms")
        );
        d += 1.0;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">profiles</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 14.0
    );
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<String> = points
            .iter()
            .filter_map(|(x, v)| v.get(i).copied().flatten().map(|m| (*x, m)))
            .map(|(x, m)| format!("{:.1},{:.1}", px(x), py(m)))
            .collect();
        if line.len() > 1 {
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                line.join(" ")
            );
        }
        for p in &line {
            if let Some((x, y)) = p.split_once(',') {
                let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
            }
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + pw + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}
