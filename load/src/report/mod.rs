//! What a run leaves behind: a table on the terminal, `summary.json` (which the next run
//! compares with) and `report.html` (per scenario: verdicts, latency histogram, answers and p99
//! per second, against the peer where there is one).

mod svg;

use std::fmt::Write;
use std::path::Path;

use crate::runner::{ScenarioResult, Summary};
use crate::stats::Outcome;

/// Writes `summary.json` and `report.html` into `dir` (created if needed).
pub fn write(dir: &Path, summary: &Summary) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)?;
    std::fs::write(dir.join("report.html"), html(summary))
}

/// The terminal table: one line per scenario and target, then every missed check.
pub fn table(summary: &Summary) -> String {
    let mut out = format!(
        "\n{:<30} {:<16} {:>9} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8}  budgets\n",
        "scenario", "target", "answers", "req/s", "p50 ms", "p95 ms", "p99 ms", "failed", "cpu µs"
    );
    for scenario in &summary.scenarios {
        let met = scenario.checks.iter().filter(|c| c.ok).count();
        let verdict = if met == scenario.checks.len() {
            "met"
        } else {
            "MISSED"
        };
        let verdict = format!("{verdict} ({met}/{})", scenario.checks.len());
        row(&mut out, &scenario.name, &scenario.outcome, &verdict);
        if let Some(peer) = &scenario.peer {
            row(&mut out, "  (peer)", peer, "");
            let _ = writeln!(
                out,
                "{:<30} {}",
                "  (target / peer)",
                ratios(&scenario.outcome, peer)
            );
        }
    }
    for scenario in &summary.scenarios {
        for check in scenario.checks.iter().filter(|c| !c.ok) {
            let _ = writeln!(
                out,
                "missed: {}: {} (measured {:.3})",
                scenario.name, check.what, check.actual
            );
        }
    }
    for regression in &summary.regressions {
        let _ = writeln!(
            out,
            "regression: {} → {}: {} {:.3} → {:.3}",
            regression.scenario,
            regression.target,
            regression.metric,
            regression.before,
            regression.after
        );
    }
    for skipped in &summary.skipped {
        let _ = writeln!(out, "skipped: {skipped}");
    }
    out
}

/// The target's figures as multiples of its peer's.
fn ratios(outcome: &Outcome, peer: &Outcome) -> String {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "–".to_owned()
        }
    };
    let cpu = match (outcome.cpu_us_per_answer, peer.cpu_us_per_answer) {
        (Some(mine), Some(theirs)) => ratio(mine, theirs),
        _ => "not measured".to_owned(),
    };
    format!(
        "req/s {}, p50 {}, p99 {}, CPU per answer {}",
        ratio(outcome.rps, peer.rps),
        ratio(outcome.latency_ms.p50, peer.latency_ms.p50),
        ratio(outcome.latency_ms.p99, peer.latency_ms.p99),
        cpu
    )
}

fn row(out: &mut String, name: &str, outcome: &Outcome, verdict: &str) {
    let latency = &outcome.latency_ms;
    let _ = writeln!(
        out,
        "{name:<30} {:<16} {:>9} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>7.2}% {:>8}  {verdict}",
        outcome.target,
        outcome.requests,
        outcome.rps,
        latency.p50,
        latency.p95,
        latency.p99,
        outcome.error_rate * 100.0,
        cpu(outcome)
    );
}

/// CPU µs per answer, when the target's processes were given.
fn cpu(outcome: &Outcome) -> String {
    outcome
        .cpu_us_per_answer
        .map_or_else(|| "–".to_owned(), |us| format!("{us:.1}"))
}

fn html(summary: &Summary) -> String {
    let verdict = if summary.passed() {
        "every budget met"
    } else {
        "budgets missed"
    };
    let mut page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Rampart load test: {profile}</title><style>{STYLE}</style></head><body><h1>Rampart load test — {profile}: {verdict}</h1>",
        profile = escape(&summary.profile)
    );
    let started = std::time::UNIX_EPOCH + std::time::Duration::from_secs(summary.started);
    let _ = write!(page, "<p>Started {}. Latency counts from when a request was due (open model) or sent (closed model).</p>", httpdate::fmt_http_date(started));
    if !summary.regressions.is_empty() {
        page.push_str("<h2>Worse than the previous run</h2><ul>");
        for r in &summary.regressions {
            let _ = write!(
                page,
                "<li>{} → {}: {} {:.3} → {:.3}</li>",
                escape(&r.scenario),
                escape(&r.target),
                escape(&r.metric),
                r.before,
                r.after
            );
        }
        page.push_str("</ul>");
    }
    for skipped in &summary.skipped {
        let _ = write!(page, "<p>Skipped: {}</p>", escape(skipped));
    }
    for scenario in &summary.scenarios {
        section(&mut page, scenario);
    }
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f4f4f4}.missed{color:#b00;font-weight:bold}.met{color:#070}figure{margin:.5em 0}figcaption{font-size:12px;color:#555}";

fn section(page: &mut String, scenario: &ScenarioResult) {
    let _ = write!(
        page,
        "<h2>{}</h2><p>{} — {}</p>",
        escape(&scenario.name),
        escape(&scenario.about),
        escape(&scenario.load)
    );
    page.push_str("<table><tr><th>target</th><th>answers</th><th>req/s</th><th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>failed</th><th>CPU µs per answer</th><th>statuses</th></tr>");
    for outcome in std::iter::once(&scenario.outcome).chain(scenario.peer.as_ref()) {
        let l = &outcome.latency_ms;
        let statuses: Vec<String> = outcome
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}%</td><td>{}</td><td>{}</td></tr>",
            escape(&outcome.target), outcome.requests, outcome.rps, l.p50, l.p90, l.p95, l.p99, l.max, outcome.error_rate * 100.0, cpu(outcome), escape(&statuses.join(", "))
        );
    }
    if let Some(peer) = &scenario.peer {
        let _ = write!(
            page,
            "<tr><td colspan=\"11\">{} against {}: {}</td></tr>",
            escape(&scenario.outcome.target),
            escape(&peer.target),
            escape(&ratios(&scenario.outcome, peer))
        );
    }
    page.push_str(
        "</table><table><tr><th>budget</th><th>measured</th><th>limit</th><th>verdict</th></tr>",
    );
    for check in &scenario.checks {
        let (class, word) = if check.ok {
            ("met", "met")
        } else {
            ("missed", "missed")
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td class=\"{class}\">{word}</td></tr>",
            escape(&check.what),
            check.actual,
            check.limit
        );
    }
    page.push_str("</table>");
    for failure in &scenario.outcome.failures {
        let _ = write!(page, "<p>Failure: {}</p>", escape(failure));
    }
    charts(page, scenario);
}

fn charts(page: &mut String, scenario: &ScenarioResult) {
    let outcomes: Vec<&Outcome> = std::iter::once(&scenario.outcome)
        .chain(scenario.peer.as_ref())
        .collect();
    let series = |value: fn(&crate::stats::SecondRow) -> f64| -> Vec<(&str, Vec<f64>)> {
        outcomes
            .iter()
            .map(|o| (o.target.as_str(), o.timeline.iter().map(value).collect()))
            .collect()
    };
    let names: Vec<&str> = outcomes.iter().map(|o| o.target.as_str()).collect();
    let legend =
        escape(&names.join(" (blue), then ")) + if names.len() > 1 { " (red)" } else { " (blue)" };
    let _ = write!(
        page,
        "<figure>{}<figcaption>Answers per second — {legend}</figcaption></figure>",
        svg::lines(&series(|s| s.requests as f64), "req/s")
    );
    let _ = write!(
        page,
        "<figure>{}<figcaption>p99 per second, ms — {legend}</figcaption></figure>",
        svg::lines(&series(|s| s.p99_ms), "ms")
    );
    for outcome in outcomes {
        let bands: Vec<(f64, u64)> = outcome
            .histogram
            .iter()
            .map(|b| (b.upto_ms, b.count))
            .collect();
        let _ = write!(page, "<figure>{}<figcaption>Latency histogram of {} (bands growing by 25%; hover for counts)</figcaption></figure>", svg::bars(&bands), escape(&outcome.target));
    }
}

/// Text made safe for HTML content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
