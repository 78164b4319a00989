//! `cargo xtask bench-runs <bench> [--runs N] [-- ARGS]`: runs one bench several times,
//! each in a fresh process, and prints every implementation's median over the runs.
//!
//! On a small, shared machine a cross-thread workload can land in a different mode from
//! one process to the next (where the scheduler puts the threads decides it), so a single
//! `cargo bench` can show a ratio that the next run reverses. This task runs
//! `cargo bench --bench <bench> -- ARGS` `N` times (5 by default), reads each run's
//! criterion medians the way `bench-report` does (only results written during that run),
//! and prints a markdown table: per implementation the median of the runs' medians and
//! their range, the ratio of Weft's median to the peer's (above 1.00x: Weft faster), and
//! in how many runs Weft was the faster of the two. It writes nothing; `bench-report`
//! still reports the last run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::SystemTime;

use crate::bench_report::{self, Measurement};

/// Runs when `--runs` is not given.
const DEFAULT_RUNS: usize = 5;

/// What `bench-runs` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The bench target (`benches/<bench>.rs`).
    bench: String,
    /// How many processes to run.
    runs: usize,
    /// Arguments for criterion (after `--`), e.g. a filter.
    args: Vec<String>,
}

/// Parses `<bench> [--runs N] [-- ARGS...]`.
pub(crate) fn parse_options(args: &[String]) -> Result<Options, String> {
    let (own, rest) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let mut bench = None;
    let mut runs = DEFAULT_RUNS;
    let mut it = own.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                let value = it.next().ok_or("`--runs` needs a number")?;
                runs = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("`--runs {value}`: expected a positive number"))?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            name if bench.is_none() => bench = Some(name.to_owned()),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    let bench = bench.ok_or("`cargo xtask bench-runs` needs a bench name, e.g. `actor`")?;
    Ok(Options {
        bench,
        runs,
        args: rest,
    })
}

/// The medians of one implementation across runs.
#[derive(Debug, Default)]
struct Series {
    /// One median per run, in run order (a run that did not measure it has none).
    per_run: BTreeMap<usize, f64>,
    /// The last run's measurement (for its throughput), with its time replaced.
    template: Option<Measurement>,
}

impl Series {
    /// The median of the runs' medians, as a measurement.
    fn median(&self) -> Option<Measurement> {
        let mut values: Vec<f64> = self.per_run.values().copied().collect();
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = match values.len() {
            0 => return None,
            n if n % 2 == 1 => values[mid],
            _ => (values[mid - 1] + values[mid]) / 2.0,
        };
        let mut m = self.template.clone()?;
        m.median_ns = median;
        Some(m)
    }

    /// The fastest and slowest run.
    fn range(&self) -> (f64, f64) {
        let min = self.per_run.values().copied().fold(f64::INFINITY, f64::min);
        let max = self.per_run.values().copied().fold(0.0, f64::max);
        (min, max)
    }
}

/// Runs the task.
pub(crate) fn run(root: &Path, options: &Options) -> Result<(), String> {
    let criterion = bench_report::criterion_dir(root);
    // (pattern, workload) -> implementation -> series
    let mut table: BTreeMap<(String, String), BTreeMap<String, Series>> = BTreeMap::new();
    for run in 0..options.runs {
        eprintln!(
            "[xtask] bench-runs: run {}/{} of `cargo bench --bench {}`",
            run + 1,
            options.runs,
            options.bench
        );
        let started = SystemTime::now();
        let output = crate::cargo(root)
            .args(["bench", "--bench", &options.bench, "--"])
            .args(&options.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("could not start cargo: {e}"))?;
        if !output.status.success() {
            // Criterion's progress and any compiler errors: shown only when they explain
            // a failure.
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            return Err(format!(
                "`cargo bench --bench {}` failed: {}",
                options.bench, output.status
            ));
        }
        let fresh = bench_report::collect(&criterion)?
            .into_iter()
            .filter(|m| m.measured.is_some_and(|t| t >= started));
        for m in fresh {
            let series = table
                .entry((m.pattern.clone(), m.workload.clone()))
                .or_default()
                .entry(m.implementation.clone())
                .or_default();
            series.per_run.insert(run, m.median_ns);
            series.template = Some(m);
        }
    }
    if table.is_empty() {
        return Err(format!(
            "no criterion results were written under {}",
            criterion.display()
        ));
    }
    print!("{}", render(&table, options));
    Ok(())
}

/// The markdown table of every workload's implementations.
fn render(
    table: &BTreeMap<(String, String), BTreeMap<String, Series>>,
    options: &Options,
) -> String {
    let mut out = String::new();
    let args = if options.args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", options.args.join(" "))
    };
    let _ = writeln!(
        out,
        "`cargo xtask bench-runs {} --runs {}{args}`: the median of {} runs' medians\n",
        options.bench, options.runs, options.runs
    );
    out.push_str(
        "| workload | implementation | median of runs | fastest–slowest run | \
         ratio (weft/peer) | weft faster in |\n|:---|:---|---:|---:|---:|---:|\n",
    );
    let mut keys: Vec<&(String, String)> = table.keys().collect();
    keys.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| bench_report::natural_cmp(&a.1, &b.1))
    });
    for key in keys {
        let impls = &table[key];
        let ours = impls.get("weft");
        let ours_median = ours.and_then(Series::median);
        let mut names: Vec<&String> = impls.keys().collect();
        // Ours first, then the peers by name.
        names.sort_by_key(|name| (name.as_str() != "weft", name.as_str()));
        for (i, name) in names.into_iter().enumerate() {
            let series = &impls[name];
            let Some(median) = series.median() else {
                continue;
            };
            let (fast, slow) = series.range();
            let workload = if i == 0 {
                format!("{}/{}", key.0, key.1)
            } else {
                String::new()
            };
            let (ratio, wins) = match (&ours_median, ours) {
                // The floor is not a peer: show what weft adds to it, as `bench-report`
                // does.
                (Some(o), Some(_)) if name == bench_report::FLOOR => (
                    format!(
                        "floor: weft adds {}",
                        bench_report::format_time((o.median_ns - median.median_ns).max(0.0))
                    ),
                    "—".to_owned(),
                ),
                (Some(o), Some(ours)) if !median.is_ours() => {
                    let ratio = bench_report::format_ratio(bench_report::ratio(o, &median));
                    let (won, both) = pairwise_wins(ours, series);
                    (ratio, format!("{won} of {both}"))
                }
                _ => ("—".to_owned(), "—".to_owned()),
            };
            let _ = writeln!(
                out,
                "| {workload} | {} | {} | {}–{} | {ratio} | {wins} |",
                if median.is_ours() {
                    "**weft**".to_owned()
                } else {
                    format!("`{name}`")
                },
                bench_report::format_time(median.median_ns),
                bench_report::format_time(fast),
                bench_report::format_time(slow),
            );
        }
    }
    out
}

/// In how many of the runs that measured both Weft was faster (a lower median time), and
/// how many runs measured both.
fn pairwise_wins(ours: &Series, peer: &Series) -> (usize, usize) {
    let both: Vec<(f64, f64)> = ours
        .per_run
        .iter()
        .filter_map(|(run, o)| peer.per_run.get(run).map(|p| (*o, *p)))
        .collect();
    let won = both.iter().filter(|(o, p)| o < p).count();
    (won, both.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strings;

    #[test]
    fn parses_bench_runs_and_criterion_arguments() {
        let o = parse_options(&strings(&["actor", "--runs", "3", "--", "ask|tell"])).unwrap();
        assert_eq!(o.bench, "actor");
        assert_eq!(o.runs, 3);
        assert_eq!(o.args, strings(&["ask|tell"]));
        assert_eq!(
            parse_options(&strings(&["pool"])).unwrap().runs,
            DEFAULT_RUNS
        );
        assert!(parse_options(&strings(&[])).is_err());
        assert!(parse_options(&strings(&["actor", "--runs", "0"])).is_err());
        assert!(parse_options(&strings(&["actor", "extra"])).is_err());
    }

    #[test]
    fn median_of_runs_and_pairwise_wins() {
        let m = |ns| Measurement {
            pattern: "actor".into(),
            workload: "ask".into(),
            implementation: "weft".into(),
            median_ns: ns,
            throughput: None,
            measured: None,
        };
        let series = |values: &[f64]| Series {
            per_run: values.iter().copied().enumerate().collect(),
            template: Some(m(0.0)),
        };
        let ours = series(&[10.0, 30.0, 12.0, 11.0]);
        let peer = series(&[20.0, 25.0, 21.0]);
        assert_eq!(ours.median().unwrap().median_ns, 11.5);
        assert_eq!(ours.range(), (10.0, 30.0));
        assert_eq!(pairwise_wins(&ours, &peer), (2, 3));
    }
}
