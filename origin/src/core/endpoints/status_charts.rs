//! The status page's charts as inline SVG geometry: one polyline per series (broken where a
//! sample has no value), one circle per sample with a `<title>` tooltip, grid lines with the
//! value axis's labels, and time labels. No script: the browser draws what the server computed.

use std::time::{Duration, SystemTime};

use super::status_format::{clock, millis, percent, rate};

/// The SVG's user-space size; the stylesheet scales it to the page's width.
/// It is about the width a chart gets on a laptop's screen, so that the labels keep their size.
pub const WIDTH: f64 = 420.0;
/// See [`WIDTH`].
pub const HEIGHT: f64 = 170.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// What a chart's values measure, which decides its axis and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Requests per second.
    PerSecond,
    /// Milliseconds.
    Millis,
    /// A share from 0 to 1, shown in percent.
    Ratio,
}

impl Unit {
    /// `value` written for a reader.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::PerSecond => rate(value),
            Unit::Millis => millis(value),
            Unit::Ratio => percent(value),
        }
    }

    /// The top of the value axis for values up to `max`.
    fn axis_max(self, max: f64) -> f64 {
        match self {
            Unit::Ratio => 1.0,
            _ => nice_ceiling(max),
        }
    }
}

/// One series of a chart, as the caller hands it over: a value (or none) per sample.
#[derive(Debug, Clone)]
pub struct Series {
    /// The CSS class that colours it (`p95`).
    pub class: &'static str,
    /// Its name in the legend and tooltips.
    pub label: &'static str,
    /// One value per sample, the oldest first.
    pub values: Vec<Option<f64>>,
}

/// A chart ready for the template.
#[derive(Debug, Clone)]
pub struct Chart {
    /// `data-series` of the SVG: what it shows (`rate`, `latency`, `hit-ratio`).
    pub series: &'static str,
    /// The heading, also the SVG's `<title>`.
    pub caption: &'static str,
    /// The newest value of each series, for the heading.
    pub latest: String,
    /// Horizontal grid lines with their labels.
    pub grid: Vec<Mark>,
    /// Time labels along the bottom.
    pub times: Vec<Mark>,
    /// The series drawn.
    pub lines: Vec<Line>,
    /// Circles drawn in all.
    pub points: usize,
    /// `viewBox` of the SVG.
    pub view_box: String,
    /// Where the plot's edges and the axis labels are.
    pub plot: Plot,
}

/// The plot area's edges and where the axis labels go.
#[derive(Debug, Clone)]
pub struct Plot {
    /// x of the left edge.
    pub left: String,
    /// x of the right edge.
    pub right: String,
    /// y of the bottom edge (the time axis).
    pub bottom: String,
    /// x where value labels end.
    pub label_x: String,
    /// y of the time labels' baseline.
    pub label_y: String,
}

/// A label at a position along one axis.
#[derive(Debug, Clone)]
pub struct Mark {
    /// Position across the axis (y for grid lines, x for times).
    pub at: String,
    /// The label.
    pub label: String,
    /// `text-anchor` of the label.
    pub anchor: &'static str,
}

/// One series drawn.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its CSS class.
    pub class: &'static str,
    /// Its legend name.
    pub label: &'static str,
    /// `points` of each polyline (a gap splits the series).
    pub segments: Vec<String>,
    /// One circle per sample with a value.
    pub dots: Vec<Dot>,
}

/// One sample's circle.
#[derive(Debug, Clone)]
pub struct Dot {
    /// Centre, x.
    pub x: String,
    /// Centre, y.
    pub y: String,
    /// The tooltip: time and value.
    pub title: String,
}

/// The chart of `series` over samples taken at `times`, `interval` apart, in a window of
/// `slots` samples whose newest is at the right edge.
pub fn chart(
    id: &'static str,
    caption: &'static str,
    unit: Unit,
    times: &[SystemTime],
    series: &[Series],
    slots: usize,
    interval: Duration,
) -> Chart {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b));
    let scale = Scale {
        top: unit.axis_max(max),
        first_slot: slots.saturating_sub(times.len()),
        slots,
    };
    let lines: Vec<Line> = series
        .iter()
        .map(|s| line(s, unit, times, &scale))
        .collect();
    Chart {
        series: id,
        caption,
        latest: latest(series, unit),
        grid: grid(unit, scale.top),
        times: time_marks(slots, interval),
        points: lines.iter().map(|line| line.dots.len()).sum(),
        lines,
        view_box: format!("0 0 {WIDTH} {HEIGHT}"),
        plot: Plot {
            left: coordinate(LEFT),
            right: coordinate(WIDTH - RIGHT),
            bottom: coordinate(HEIGHT - BOTTOM),
            label_x: coordinate(LEFT - 6.0),
            label_y: coordinate(HEIGHT - 6.0),
        },
    }
}

/// Where samples and values go.
struct Scale {
    top: f64,
    first_slot: usize,
    slots: usize,
}

impl Scale {
    fn x(&self, index: usize) -> f64 {
        let slot = self.first_slot + index;
        let span = self.slots.saturating_sub(1).max(1) as f64;
        LEFT + (WIDTH - LEFT - RIGHT) * slot as f64 / span
    }

    fn y(&self, value: f64) -> f64 {
        let share = if self.top > 0.0 {
            (value / self.top).clamp(0.0, 1.0)
        } else {
            0.0
        };
        HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * share
    }
}

fn line(series: &Series, unit: Unit, times: &[SystemTime], scale: &Scale) -> Line {
    let mut segments = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut dots = Vec::new();
    for (index, value) in series.values.iter().enumerate() {
        let Some(value) = value else {
            if !current.is_empty() {
                segments.push(current.join(" "));
                current.clear();
            }
            continue;
        };
        let (x, y) = (coordinate(scale.x(index)), coordinate(scale.y(*value)));
        current.push(format!("{x},{y}"));
        let at = times.get(index).map_or_else(String::new, |t| clock(*t));
        let title = format!("{at} · {} {}", series.label, unit.show(*value));
        dots.push(Dot { x, y, title });
    }
    if !current.is_empty() {
        segments.push(current.join(" "));
    }
    Line {
        class: series.class,
        label: series.label,
        segments,
        dots,
    }
}

/// The newest value of each series: `p50 1.2 ms · p95 8 ms`.
fn latest(series: &[Series], unit: Unit) -> String {
    let parts: Vec<String> = series
        .iter()
        .filter_map(|s| {
            let value = s.values.iter().rev().flatten().next().copied()?;
            Some(if series.len() == 1 {
                unit.show(value)
            } else {
                format!("{} {}", s.label, unit.show(value))
            })
        })
        .collect();
    if parts.is_empty() {
        "no data yet".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// Grid lines at 0, half and the top of the axis.
fn grid(unit: Unit, top: f64) -> Vec<Mark> {
    let scale = Scale {
        top,
        first_slot: 0,
        slots: 2,
    };
    [0.0, 0.5, 1.0]
        .into_iter()
        .map(|share| Mark {
            at: coordinate(scale.y(top * share)),
            label: unit.show(top * share),
            anchor: "end",
        })
        .collect()
}

/// Time labels: the window's start, its middle and now.
fn time_marks(slots: usize, interval: Duration) -> Vec<Mark> {
    let span = interval.as_secs_f64() * slots as f64;
    [
        (0.0, span, "start"),
        (0.5, span / 2.0, "middle"),
        (1.0, 0.0, "end"),
    ]
    .into_iter()
    .map(|(share, ago, anchor)| Mark {
        anchor,
        at: coordinate(LEFT + (WIDTH - LEFT - RIGHT) * share),
        label: if ago <= 0.0 {
            "now".to_owned()
        } else {
            format!(
                "−{}",
                super::status_format::duration(Duration::from_secs_f64(ago))
            )
        },
    })
    .collect()
}

/// A coordinate with one decimal.
fn coordinate(value: f64) -> String {
    format!("{value:.1}")
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `value` (1 for nothing).
pub fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * power)
        .find(|candidate| *candidate >= value * 0.999_999)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(n: usize) -> Vec<SystemTime> {
        (0..n)
            .map(|i| SystemTime::UNIX_EPOCH + Duration::from_secs(10 * i as u64))
            .collect()
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.37), 0.5);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(20.0), 20.0);
        assert_eq!(nice_ceiling(740.0), 1000.0);
    }

    #[test]
    fn one_circle_per_value_and_gaps_split_the_line() {
        let series = [Series {
            class: "p50",
            label: "p50",
            values: vec![Some(1.0), None, Some(5.0), Some(2.0)],
        }];
        let chart = chart(
            "latency",
            "Latency",
            Unit::Millis,
            &times(4),
            &series,
            90,
            Duration::from_secs(10),
        );
        assert_eq!(chart.points, 3);
        assert_eq!(chart.lines[0].segments.len(), 2);
        assert_eq!(chart.latest, "2 ms");
        let right = chart.lines[0].dots.last().expect("a dot");
        assert_eq!(
            right.x,
            coordinate(WIDTH - RIGHT),
            "the newest at the right"
        );
        let top = &chart.lines[0].dots[1];
        assert_eq!(
            top.y,
            coordinate(TOP),
            "the largest value at the top (axis 5 ms)"
        );
        assert!(top.title.ends_with("p50 5 ms"), "{}", top.title);
        assert_eq!(chart.times[0].label, "−15 min");
        assert_eq!(chart.grid[2].label, "5 ms");
        assert_eq!(chart.grid[1].label, "2.5 ms");
    }

    #[test]
    fn ratios_use_the_whole_axis() {
        let series = [Series {
            class: "ratio",
            label: "hit ratio",
            values: vec![Some(0.5), Some(1.0)],
        }];
        let chart = chart(
            "hit-ratio",
            "Hits",
            Unit::Ratio,
            &times(2),
            &series,
            2,
            Duration::from_secs(10),
        );
        assert_eq!(chart.grid[2].label, "100 %");
        assert_eq!(chart.lines[0].dots[0].x, coordinate(LEFT));
        assert_eq!(chart.latest, "100 %");
    }
}
