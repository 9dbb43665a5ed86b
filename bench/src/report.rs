//! The collected figures and the table that compares them with the targets.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::daemon::Flavor;
use crate::stats::{median, min_max};

/// Whether more or less of a metric is better.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    EventsOne,
    EventsMany,
    DaemonCpuOne,
    DaemonCpuMany,
    PacedOne,
    PacedMany,
    PacedCpuOne,
    PacedCpuMany,
    PermissionP50,
    PermissionP99,
    RssIdle,
    RssSessions,
    RssAfter,
    StartupCold,
    StartupWarm,
}

impl Metric {
    pub const ALL: [Metric; 15] = [
        Metric::EventsOne,
        Metric::EventsMany,
        Metric::DaemonCpuOne,
        Metric::DaemonCpuMany,
        Metric::PacedOne,
        Metric::PacedMany,
        Metric::PacedCpuOne,
        Metric::PacedCpuMany,
        Metric::PermissionP50,
        Metric::PermissionP99,
        Metric::RssIdle,
        Metric::RssSessions,
        Metric::RssAfter,
        Metric::StartupCold,
        Metric::StartupWarm,
    ];

    fn label(self, layout: &Layout) -> String {
        match self {
            Metric::EventsOne => "events/s, 1 subscriber".into(),
            Metric::EventsMany => format!("events/s, {} subscribers (total)", layout.subscribers),
            Metric::DaemonCpuOne => "daemon CPU µs / agent update, 1 sub".into(),
            Metric::DaemonCpuMany => {
                format!("daemon CPU µs / agent update, {} sub", layout.subscribers)
            }
            Metric::PacedOne => "paced events/s, 1 subscriber".into(),
            Metric::PacedMany => {
                format!("paced events/s, {} subscribers (total)", layout.subscribers)
            }
            Metric::PacedCpuOne => "paced: daemon CPU µs / update, 1 sub".into(),
            Metric::PacedCpuMany => {
                format!("paced: daemon CPU µs / update, {} sub", layout.subscribers)
            }
            Metric::PermissionP50 => "permission round trip p50, ms".into(),
            Metric::PermissionP99 => "permission round trip p99, ms".into(),
            Metric::RssIdle => "daemon RSS idle, MiB".into(),
            Metric::RssSessions => format!("daemon RSS, {} sessions, MiB", layout.sessions),
            Metric::RssAfter => "daemon RSS after the runs, MiB".into(),
            Metric::StartupCold => "start → /health 200, fresh HOME, ms".into(),
            Metric::StartupWarm => "start → /health 200, 2nd start, ms".into(),
        }
    }

    fn better(self) -> Better {
        match self {
            Metric::EventsOne | Metric::EventsMany | Metric::PacedOne | Metric::PacedMany => {
                Better::Higher
            }
            _ => Better::Lower,
        }
    }

    /// The factor by which ours must beat qwen serve, if there is a target.
    fn target(self) -> Option<f64> {
        match self {
            Metric::EventsOne | Metric::EventsMany => Some(10.0),
            Metric::PacedOne | Metric::PacedMany => Some(10.0),
            Metric::PermissionP99 | Metric::RssIdle | Metric::RssSessions => Some(5.0),
            Metric::StartupCold => Some(10.0),
            _ => None,
        }
    }

    fn decimals(self) -> usize {
        match self {
            Metric::EventsOne | Metric::EventsMany | Metric::PacedOne | Metric::PacedMany => 0,
            Metric::StartupCold | Metric::StartupWarm => 0,
            _ => 2,
        }
    }
}

/// The run's shape, for labels.
pub struct Layout {
    pub subscribers: usize,
    pub sessions: usize,
}

/// Every figure of every round, per daemon.
#[derive(Default)]
pub struct Results {
    samples: HashMap<(Flavor, Metric), Vec<f64>>,
    /// Runs that did not go cleanly (evictions, closed streams), printed under the table.
    pub notes: Vec<String>,
    /// Figures that include such a run: their cells are marked `!`.
    flagged: HashSet<(Flavor, Metric)>,
}

impl Results {
    pub fn record(&mut self, flavor: Flavor, metric: Metric, value: f64) {
        self.samples
            .entry((flavor, metric))
            .or_default()
            .push(value);
    }

    /// Marks `metrics` of `flavor` as including a run that did not complete, with why.
    pub fn flag(&mut self, flavor: Flavor, metrics: &[Metric], note: String) {
        for metric in metrics {
            self.flagged.insert((flavor, *metric));
        }
        self.notes.push(note);
    }

    fn of(&self, flavor: Flavor, metric: Metric) -> &[f64] {
        self.samples
            .get(&(flavor, metric))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The comparison table: median [min–max] per daemon, the ratio, the target, met or not.
    pub fn table(&self, layout: &Layout) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<40} {:>26} {:>26} {:>10} {:>9}  met",
            "metric (median [min–max] over rounds)", "qserve-host", "qwen serve", "ratio", "target",
        );
        for metric in Metric::ALL {
            let ours = self.of(Flavor::Qserve, metric);
            let theirs = self.of(Flavor::QwenServe, metric);
            if ours.is_empty() && theirs.is_empty() {
                continue;
            }
            let (ratio, target, met) = compare(metric, median(ours), median(theirs));
            let _ = writeln!(
                out,
                "{:<40} {:>26} {:>26} {:>10} {:>9}  {}",
                metric.label(layout),
                self.cell(Flavor::Qserve, metric),
                self.cell(Flavor::QwenServe, metric),
                ratio,
                target,
                met
            );
        }
        out
    }

    fn cell(&self, flavor: Flavor, metric: Metric) -> String {
        let text = cell(self.of(flavor, metric), metric.decimals());
        if self.flagged.contains(&(flavor, metric)) {
            format!("! {text}")
        } else {
            text
        }
    }
}

/// `median [min–max]`, or `—` without samples.
fn cell(samples: &[f64], decimals: usize) -> String {
    if samples.is_empty() {
        return "—".into();
    }
    let (lo, hi) = min_max(samples);
    if samples.len() == 1 {
        return format!("{:.*}", decimals, samples[0]);
    }
    format!(
        "{:.*} [{:.*}–{:.*}]",
        decimals,
        median(samples),
        decimals,
        lo,
        decimals,
        hi
    )
}

/// Ratio text (how many times better ours is), target text, and the verdict.
fn compare(metric: Metric, ours: f64, theirs: f64) -> (String, String, String) {
    let factor = match metric.better() {
        Better::Higher => ours / theirs,
        Better::Lower => theirs / ours,
    };
    let ratio = if !factor.is_finite() {
        "—".to_string()
    } else {
        match metric.better() {
            Better::Higher => format!("{factor:.1}×"),
            Better::Lower => format!("1/{factor:.1}"),
        }
    };
    let Some(target) = metric.target() else {
        return (ratio, String::new(), String::new());
    };
    let target_text = match metric.better() {
        Better::Higher => format!("≥ {target}×"),
        Better::Lower => format!("≤ 1/{target}"),
    };
    let verdict = if !factor.is_finite() {
        "?".to_string()
    } else if factor >= target {
        "yes".to_string()
    } else {
        format!("NO ({:.0}% of target)", factor / target * 100.0)
    };
    (ratio, target_text, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_direction_of_the_metric() {
        let (ratio, target, met) = compare(Metric::EventsOne, 200_000.0, 16_000.0);
        assert_eq!(
            (ratio.as_str(), target.as_str(), met.as_str()),
            ("12.5×", "≥ 10×", "yes")
        );
        let (ratio, _, met) = compare(Metric::RssIdle, 50.0, 200.0);
        assert_eq!(
            (ratio.as_str(), met.as_str()),
            ("1/4.0", "NO (80% of target)")
        );
        let (_, target, met) = compare(Metric::PermissionP50, 1.0, 7.0);
        assert!(target.is_empty() && met.is_empty());
    }

    #[test]
    fn the_table_shows_medians_and_spread() {
        let mut results = Results::default();
        for value in [3.0, 1.0, 2.0] {
            results.record(Flavor::Qserve, Metric::RssIdle, value);
            results.record(Flavor::QwenServe, Metric::RssIdle, value * 100.0);
        }
        let table = results.table(&Layout {
            subscribers: 16,
            sessions: 20,
        });
        assert!(table.contains("2.00 [1.00–3.00]"), "{table}");
        assert!(table.contains("200.00 [100.00–300.00]"), "{table}");
        assert!(table.contains("1/100.0"), "{table}");
        assert!(!table.contains("events/s"), "{table}");
        assert!(!table.contains('!'), "{table}");

        results.flag(Flavor::Qserve, &[Metric::EventsOne], "evicted".into());
        results.record(Flavor::Qserve, Metric::EventsOne, 5.0);
        let table = results.table(&Layout {
            subscribers: 16,
            sessions: 20,
        });
        assert!(table.contains("! 5"), "{table}");
    }
}
