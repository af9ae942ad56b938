//! Running scenarios: repeats, summaries, and the pairs.
//!
//! A run is a [`plan`] of steps in report order. A scenario runs its repeats one after another;
//! an `ours.*` scenario whose limit is also in the run is instead run in alternation with the
//! limit, round by round (see [`pairs`](crate::pairs)), and its row is summarised from those
//! rounds; a pair's floor, when it is in the run too, takes its turn in the same rounds. The
//! limit and the floor keep their own rows from their own repeats.

use crate::pairs::{Pair, PairSummary, pair_of};
use crate::report::{Row, Summary};
use crate::scenario::{Config, Fairness, Outcome, Scenario};

/// One step of a run.
#[derive(Debug, Clone)]
pub enum Step {
    /// A scenario's repeats.
    Single(Scenario),
    /// Our scenario in alternation with its limit.
    Paired {
        /// Our scenario.
        ours: Scenario,
        /// Its limit.
        limit: Scenario,
        /// The pair.
        pair: &'static Pair,
        /// The pair's floor, if it has one in the run.
        floor: Option<Scenario>,
    },
}

impl Step {
    /// The scenario this step reports (ours, for a pair).
    pub fn scenario(&self) -> &Scenario {
        match self {
            Step::Single(s) | Step::Paired { ours: s, .. } => s,
        }
    }
}

/// The steps that run `scenarios`: an `ours.*` scenario whose limit is among them becomes a
/// paired step.
///
/// ```
/// use benches::runner::{Step, plan};
/// let all: Vec<_> = benches::all()
///     .into_iter()
///     .filter(|s| s.name == "limit.spsc_u64" || s.name == "ours.ring_u64")
///     .collect();
/// let steps = plan(all);
/// assert!(matches!(&steps[0], Step::Single(s) if s.name == "limit.spsc_u64"));
/// assert!(matches!(&steps[1], Step::Paired { ours, .. } if ours.name == "ours.ring_u64"));
/// ```
pub fn plan(scenarios: Vec<Scenario>) -> Vec<Step> {
    let limit_of = |name: &str| scenarios.iter().find(|s| s.name == name).cloned();
    scenarios
        .iter()
        .map(
            |s| match pair_of(&s.name).and_then(|p| Some((p, limit_of(p.limit)?))) {
                Some((pair, limit)) => Step::Paired {
                    ours: s.clone(),
                    limit,
                    pair,
                    floor: pair.floor.and_then(limit_of),
                },
                None => Step::Single(s.clone()),
            },
        )
        .collect()
}

/// What a run reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A repeat of `name` finished with this figure (in the scenario's unit).
    Repeat {
        /// The scenario.
        name: &'a str,
        /// Repeats done so far.
        done: usize,
        /// Repeats in all.
        of: usize,
        /// The figure.
        figure: f64,
    },
}

/// Collects one scenario's repeats.
#[derive(Debug, Default)]
struct Repeats {
    figures: Vec<f64>,
    fairness: Vec<Fairness>,
    end: Option<Summary>,
}

impl Repeats {
    /// Runs one repeat; returns its figure, or `None` once the scenario skipped or failed.
    fn run(&mut self, s: &Scenario, cfg: &Config) -> Option<f64> {
        if self.end.is_some() {
            return None;
        }
        crate::harness::arm(&s.name);
        let outcome = s.run(cfg);
        crate::harness::disarm();
        let figure = match outcome {
            Ok(Outcome::Measured(f)) => s.unit.value_of(f.quantity).map(|v| (v, f.fairness)),
            Ok(Outcome::Skipped(why)) => {
                self.end = Some(Summary::skipped(why));
                return None;
            }
            Err(e) => Err(e),
        };
        match figure {
            Ok((v, _)) if !v.is_finite() => {
                self.end = Some(Summary::failed(format!("non-finite figure {v}")));
                None
            }
            Ok((v, fairness)) => {
                self.figures.push(v);
                self.fairness.extend(fairness);
                Some(v)
            }
            Err(e) => {
                self.end = Some(Summary::failed(format!("{e:#}")));
                None
            }
        }
    }

    fn summary(self, s: &Scenario) -> Summary {
        self.end
            .unwrap_or_else(|| Summary::of(&self.figures, &self.fairness, s.unit))
    }
}

/// Runs one scenario `repeats` times and summarises the figures (stops at the first skip or
/// error).
///
/// ```
/// use benches::{Config, Quantity, Scenario, Unit};
/// let s = Scenario::new("demo.constant", Unit::Ns, |_: &Config| Ok(Quantity::Seconds(2e-9).into()));
/// let out = benches::runner::run_scenario(&s, &Config { quick: true }, 3, &mut |_| {});
/// assert_eq!(out.median(), Some(2.0));
/// ```
pub fn run_scenario(
    s: &Scenario,
    cfg: &Config,
    repeats: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Summary {
    let mut r = Repeats::default();
    let of = repeats.max(1);
    for done in 1..=of {
        match r.run(s, cfg) {
            Some(figure) => progress(Progress::Repeat {
                name: &s.name,
                done,
                of,
                figure,
            }),
            None => break,
        }
    }
    r.summary(s)
}

/// Runs `ours` and `limit` in alternation for `rounds` rounds (the limit first in odd rounds,
/// ours first in even ones), with `floor` after ours in odd rounds and before it in even ones
/// (ours always beside both). Returns our row and the pair's summary (none if either side did
/// not measure every round; without the floor's part if the floor did not).
pub fn run_pair(
    ours: &Scenario,
    limit: &Scenario,
    pair: &'static Pair,
    floor: Option<&Scenario>,
    cfg: &Config,
    rounds: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> (Summary, Option<PairSummary>) {
    let (mut o, mut l, mut f) = (Repeats::default(), Repeats::default(), Repeats::default());
    let run_floor = |f: &mut Repeats| floor.and_then(|s| f.run(s, cfg));
    let mut paired = Vec::with_capacity(rounds);
    let mut floors = Vec::with_capacity(rounds);
    let of = rounds.max(1);
    for done in 1..=of {
        let (ov, lv, fv) = if done % 2 == 1 {
            let lv = l.run(limit, cfg);
            let ov = o.run(ours, cfg);
            (ov, lv, run_floor(&mut f))
        } else {
            let fv = run_floor(&mut f);
            let ov = o.run(ours, cfg);
            (ov, l.run(limit, cfg), fv)
        };
        let Some(ov) = ov else { break };
        progress(Progress::Repeat {
            name: &ours.name,
            done,
            of,
            figure: ov,
        });
        if let Some(lv) = lv {
            paired.push((ov, lv));
            if let Some(fv) = fv {
                floors.push((ov, lv, fv));
            }
        }
    }
    let complete = paired.len() == of && ours.unit == limit.unit;
    let with_floor = floors.len() == of && floor.is_some_and(|s| s.unit == ours.unit);
    let summary = match (complete, with_floor) {
        (true, true) => pair.summarise_with_floor(ours.unit, &floors),
        (true, false) => pair.summarise(ours.unit, &paired),
        (false, _) => None,
    };
    (o.summary(ours), summary)
}

/// Runs a plan: each step's repeats (or paired rounds), in order. `before(step, index)` is
/// called as a step starts, `after(row)` as it ends.
pub fn run_plan(
    steps: &[Step],
    cfg: &Config,
    repeats: usize,
    pair_rounds: usize,
    mut before: impl FnMut(&Step, usize),
    progress: &mut dyn FnMut(Progress<'_>),
    mut after: impl FnMut(&Row),
) -> (Vec<Row>, Vec<PairSummary>) {
    let mut rows = Vec::with_capacity(steps.len());
    let mut pairs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        before(step, i);
        let summary = match step {
            Step::Single(s) => run_scenario(s, cfg, repeats, progress),
            Step::Paired {
                ours,
                limit,
                pair,
                floor,
            } => {
                let (summary, paired) = run_pair(
                    ours,
                    limit,
                    pair,
                    floor.as_ref(),
                    cfg,
                    pair_rounds,
                    progress,
                );
                pairs.extend(paired);
                summary
            }
        };
        let row = Row {
            name: step.scenario().name.clone(),
            summary,
        };
        after(&row);
        rows.push(row);
    }
    // The pairs in the order of PAIRS.
    pairs.sort_by_key(|p| {
        crate::pairs::PAIRS
            .iter()
            .position(|q| q.ours == p.ours)
            .unwrap_or(usize::MAX)
    });
    (rows, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Quantity, Unit};

    fn scenario(run: fn(&Config) -> crate::scenario::Repeat) -> Scenario {
        Scenario::new("test.scenario", Unit::Us, run)
    }

    fn run(s: &Scenario, repeats: usize) -> Summary {
        run_scenario(s, &Config { quick: true }, repeats, &mut |_| {})
    }

    #[test]
    fn a_failing_repeat_fails_the_scenario() {
        let s = scenario(|_| anyhow::bail!("checksum mismatch"));
        assert_eq!(run(&s, 3), Summary::failed("checksum mismatch"));
    }

    #[test]
    fn a_skip_carries_its_reason() {
        let s = scenario(|_| Ok(Outcome::skipped("peer missing")));
        assert_eq!(run(&s, 3), Summary::skipped("peer missing"));
    }

    #[test]
    fn non_finite_figures_and_wrong_kinds_are_refused() {
        let s = scenario(|_| Ok(Quantity::Seconds(f64::NAN).into()));
        assert!(run(&s, 3).is_failed());
        let s = scenario(|_| Ok(Quantity::PerSecond(1.0).into()));
        assert!(run(&s, 3).is_failed());
    }

    #[test]
    fn every_repeat_is_reported() {
        let s = scenario(|_| Ok(Quantity::Seconds(1e-6).into()));
        let mut seen = Vec::new();
        let out = run_scenario(&s, &Config { quick: true }, 4, &mut |p| {
            let Progress::Repeat { done, figure, .. } = p;
            seen.push((done, figure));
        });
        assert_eq!(seen, [(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0)]);
        assert!(matches!(out, Summary::Measured { repeats: 4, .. }));
    }

    #[test]
    fn pairs_take_the_ratio_of_each_round() {
        let pair = crate::pairs::pair_of("ours.pipe_rtt").unwrap();
        let ours = Scenario::new("ours.pipe_rtt", Unit::Ns, |_| {
            Ok(Quantity::Seconds(150e-9).into())
        });
        let limit = Scenario::new("limit.pingpong_rtt", Unit::Ns, |_| {
            Ok(Quantity::Seconds(100e-9).into())
        });
        let (row, summary) = run_pair(
            &ours,
            &limit,
            pair,
            None,
            &Config { quick: true },
            5,
            &mut |_| {},
        );
        assert!((row.median().unwrap() - 150.0).abs() < 1e-9);
        let s = summary.unwrap();
        assert_eq!(s.rounds, 5);
        assert!((s.ratio.median - 1.5).abs() < 1e-9);
        assert_eq!(s.meets, Some(false));
        assert_eq!(s.floor, None);
    }

    /// `ours.pipe_rtt` at 150 ns and `limit.duplex_rtt` at 100 ns, every repeat.
    fn pipe_and_duplex() -> (Scenario, Scenario) {
        let ours = Scenario::new("ours.pipe_rtt", Unit::Ns, |_| {
            Ok(Quantity::Seconds(150e-9).into())
        });
        let limit = Scenario::new("limit.duplex_rtt", Unit::Ns, |_| {
            Ok(Quantity::Seconds(100e-9).into())
        });
        (ours, limit)
    }

    #[test]
    fn a_floor_takes_its_turn_in_every_round() {
        let pair = crate::pairs::pair_of("ours.pipe_rtt").unwrap();
        let (ours, limit) = pipe_and_duplex();
        let floor = Scenario::new("limit.chunk_claimed_rtt", Unit::Ns, |_| {
            Ok(Quantity::Seconds(120e-9).into())
        });
        let mut names = Vec::new();
        let cfg = Config { quick: true };
        let (_, summary) = run_pair(&ours, &limit, pair, Some(&floor), &cfg, 4, &mut |p| {
            let Progress::Repeat { name, .. } = p;
            names.push(name.to_owned());
        });
        assert_eq!(names.len(), 4, "progress reports ours once a round");
        let f = summary.unwrap().floor.unwrap();
        assert_eq!(f.name, "limit.chunk_claimed_rtt");
        assert!((f.median - 120.0).abs() < 1e-9);
        assert!((f.of_limit.median - 1.2).abs() < 1e-9);
        assert!((f.ours_of_floor.median - 1.25).abs() < 1e-9);
    }

    #[test]
    fn a_floor_that_fails_leaves_the_pair_without_it() {
        let pair = crate::pairs::pair_of("ours.pipe_rtt").unwrap();
        let (ours, limit) = pipe_and_duplex();
        let floor = Scenario::new("limit.chunk_claimed_rtt", Unit::Ns, |_| {
            anyhow::bail!("a chunk header 0x0")
        });
        let cfg = Config { quick: true };
        let (_, summary) = run_pair(&ours, &limit, pair, Some(&floor), &cfg, 3, &mut |_| {});
        let s = summary.unwrap();
        assert!((s.ratio.median - 1.5).abs() < 1e-9);
        assert_eq!(s.floor, None);
    }

    #[test]
    fn the_plan_gives_a_pair_its_floor_when_the_floor_runs_too() {
        let pick = |names: &[&str]| -> Vec<Scenario> {
            crate::all()
                .into_iter()
                .filter(|s| names.contains(&s.name.as_str()))
                .collect()
        };
        let floor_of = |steps: &[Step]| {
            steps.iter().find_map(|s| match s {
                Step::Paired { ours, floor, .. } if ours.name == "ours.pipe_rtt" => {
                    Some(floor.as_ref().map(|f| f.name.clone()))
                }
                _ => None,
            })
        };
        let with = plan(pick(&[
            "limit.duplex_rtt",
            "limit.chunk_claimed_rtt",
            "ours.pipe_rtt",
        ]));
        assert_eq!(
            floor_of(&with),
            Some(Some("limit.chunk_claimed_rtt".to_owned()))
        );
        let without = plan(pick(&["limit.duplex_rtt", "ours.pipe_rtt"]));
        assert_eq!(floor_of(&without), Some(None));
    }
}
