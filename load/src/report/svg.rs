//! Charts as inline SVG: the report is one HTML file with no script and no external resource,
//! readable offline and under any Content-Security-Policy.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;
/// Colours of the first and second series (the scenario's target, then its peer).
const COLOURS: [&str; 2] = ["#1f6feb", "#d1242f"];

/// A line per series over seconds (x: index), y from zero to the largest value.
pub fn lines(series: &[(&str, Vec<f64>)], unit: &str) -> String {
    let longest = series
        .iter()
        .map(|(_, values)| values.len())
        .max()
        .unwrap_or(0);
    let top = series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let x_step = (WIDTH - LEFT) / (longest.max(2) - 1) as f64;
    let mut svg = frame(top, unit, &format!("{longest} s"));
    for (index, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, value)| format!("{:.1},{:.1}", LEFT + i as f64 * x_step, y(*value, top)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            super::escape(name)
        );
        for (i, value) in values.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{colour}"><title>{} s{}: {value:.2} {unit}</title></circle>"#,
                LEFT + i as f64 * x_step,
                y(*value, top),
                i + 1,
                super::escape(&format!(" {name}"))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Bars of counts per latency band (`(upper bound in ms, count)`), bands left to right.
pub fn bars(bands: &[(f64, u64)]) -> String {
    let top = bands
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let last = bands.last().map_or(0.0, |(upto, _)| *upto);
    let mut svg = frame(top, "answers", &format!("{last:.2} ms"));
    let width = (WIDTH - LEFT) / bands.len().max(1) as f64;
    for (i, (upto, count)) in bands.iter().enumerate() {
        let height = *count as f64 / top * (HEIGHT - TOP - BOTTOM);
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="#1f6feb"><title>≤ {upto:.3} ms: {count}</title></rect>"##,
            LEFT + i as f64 * width,
            HEIGHT - BOTTOM - height,
            (width - 1.0).max(0.5),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn y(value: f64, top: f64) -> f64 {
    HEIGHT - BOTTOM - value / top * (HEIGHT - TOP - BOTTOM)
}

/// The opening tag, axes and their labels: `top` at the y axis's top, `right` at x's end.
fn frame(top: f64, unit: &str, right: &str) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">"#
    );
    let bottom = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#888"/><line x1="{LEFT}" y1="{bottom}" x2="{WIDTH}" y2="{bottom}" stroke="#888"/><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><text x="{}" y="{bottom}" font-size="11" text-anchor="end">0</text><text x="{WIDTH}" y="{HEIGHT}" font-size="11" text-anchor="end">{}</text><text x="{LEFT}" y="{HEIGHT}" font-size="11">{}</text>"##,
        LEFT - 4.0,
        TOP + 10.0,
        super::escape(&format!("{top:.2}")),
        LEFT - 4.0,
        super::escape(right),
        super::escape(unit),
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_a_point_and_every_band_a_bar() {
        let chart = lines(
            &[
                ("origin", vec![1.0, 2.0, 3.0]),
                ("nginx <peer>", vec![2.0, 2.0]),
            ],
            "req/s",
        );
        assert_eq!(chart.matches("<circle").count(), 5);
        assert_eq!(chart.matches("<polyline").count(), 2);
        assert!(chart.contains("nginx &lt;peer&gt;") && !chart.contains("<peer>"));
        let histogram = bars(&[(0.1, 5), (0.2, 10), (0.4, 0)]);
        assert_eq!(histogram.matches("<rect").count(), 3);
        assert!(lines(&[], "ms").ends_with("</svg>"));
    }
}
