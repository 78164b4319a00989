//! `cargo xtask test`: the one test command, as a fixed sequence of steps.
//!
//! Each step is one tool run from the workspace root. Steps run in the order of
//! [`Step::ALL`] and the sequence stops at the first failure; every finished step prints a
//! one-line result with its duration, and the run ends with a summary table. `--skip`
//! leaves steps out for local iteration; CI runs them all.

mod browser;
mod valgrind;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One step of `cargo xtask test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `cargo fmt --all --check`.
    Fmt,
    /// `cargo clippy --workspace --all-targets -- -D warnings` (benches and examples too).
    Clippy,
    /// `cargo test --workspace`: unit, integration and doc tests, after making sure
    /// Chromium and chromedriver are installed for the dashboard's browser test.
    Test,
    /// The loom models, `--release`, in their own target directory.
    Loom,
    /// valgrind memcheck over the test binaries of the crates with `unsafe` code.
    Valgrind,
    /// `cargo doc --workspace --no-deps` with warnings denied.
    Doc,
}

impl Step {
    /// Every step, in the order `cargo xtask test` runs them.
    pub(crate) const ALL: [Step; 6] = [
        Step::Fmt,
        Step::Clippy,
        Step::Test,
        Step::Loom,
        Step::Valgrind,
        Step::Doc,
    ];

    /// The step's name, as printed and as accepted by `--skip`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Step::Fmt => "fmt",
            Step::Clippy => "clippy",
            Step::Test => "test",
            Step::Loom => "loom",
            Step::Valgrind => "valgrind",
            Step::Doc => "doc",
        }
    }

    /// The step called `name`, if there is one.
    fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == name)
    }
}

/// How a step ended, for the summary table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// The step ran and succeeded, taking this long.
    Passed(Duration),
    /// The step ran and failed, taking this long.
    Failed(Duration),
    /// The step was left out with `--skip`.
    Skipped,
    /// The step was not reached because an earlier one failed.
    NotRun,
}

/// Parses the options of `cargo xtask test`: `--skip a,b`, `--skip=a,b`, repeatable.
/// Returns the steps to leave out, or a message naming the bad argument.
pub(crate) fn parse_skip(args: &[String]) -> Result<Vec<Step>, String> {
    let mut skip = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let list = if arg == "--skip" {
            args.next()
                .ok_or("`--skip` needs a list of steps, e.g. `--skip loom,valgrind`")?
                .as_str()
        } else if let Some(list) = arg.strip_prefix("--skip=") {
            list
        } else {
            return Err(format!("unknown option `{arg}` for `cargo xtask test`"));
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let step = Step::from_name(name).ok_or_else(|| {
                let names: Vec<_> = Step::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown step `{name}` in --skip (steps: {})",
                    names.join(", ")
                )
            })?;
            if !skip.contains(&step) {
                skip.push(step);
            }
        }
    }
    Ok(skip)
}

/// Runs every step not in `skip`, in order, stopping at the first failure, then prints
/// the summary table. Fails if a step failed.
pub(crate) fn run_all(root: &Path, skip: &[Step]) -> Result<(), String> {
    let started = Instant::now();
    let mut outcomes: Vec<(Step, Outcome)> = Vec::new();
    let mut failure = None;
    for step in Step::ALL {
        if failure.is_some() {
            outcomes.push((step, Outcome::NotRun));
            continue;
        }
        if skip.contains(&step) {
            println!("[xtask] skip  {}", step.name());
            outcomes.push((step, Outcome::Skipped));
            continue;
        }
        let (outcome, result) = timed_step(root, step, &[]);
        outcomes.push((step, outcome));
        if let Err(message) = result {
            failure = Some(format!("step `{}` failed: {message}", step.name()));
        }
    }
    print!("{}", render_summary(&outcomes, started.elapsed()));
    match failure {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

/// Runs one step on its own (`cargo xtask loom`, `cargo xtask valgrind`), with `extra`
/// arguments passed through to the tool where the step accepts them.
pub(crate) fn run_single(root: &Path, step: Step, extra: &[String]) -> Result<(), String> {
    timed_step(root, step, extra).1
}

/// Runs a step, printing a start line and a one-line result with its duration.
fn timed_step(root: &Path, step: Step, extra: &[String]) -> (Outcome, Result<(), String>) {
    println!("[xtask] run   {}", step.name());
    let started = Instant::now();
    let result = run_step(root, step, extra);
    let elapsed = started.elapsed();
    let (label, outcome) = match &result {
        Ok(()) => ("ok", Outcome::Passed(elapsed)),
        Err(_) => ("FAIL", Outcome::Failed(elapsed)),
    };
    println!(
        "[xtask] {label:<5} {:<10} {}",
        step.name(),
        format_duration(elapsed)
    );
    (outcome, result)
}

/// Runs the tool(s) of one step from the workspace root.
fn run_step(root: &Path, step: Step, extra: &[String]) -> Result<(), String> {
    match step {
        Step::Fmt => {
            let mut command = crate::cargo(root);
            command.args(["fmt", "--all", "--check"]);
            run_command(&mut command)
        }
        Step::Clippy => {
            let mut command = crate::cargo(root);
            command.args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]);
            run_command(&mut command)
        }
        Step::Test => {
            let mut command = crate::cargo(root);
            command.args(["test", "--workspace"]);
            if let Some(reason) = browser::prepare() {
                command.env(browser::ENV, format!("skip: {reason}"));
            }
            run_command(&mut command)
        }
        Step::Loom => run_command(&mut loom_command(root, extra)),
        Step::Valgrind => valgrind::run(root),
        Step::Doc => {
            let mut command = crate::cargo(root);
            command
                .args(["doc", "--workspace", "--no-deps"])
                .env("RUSTDOCFLAGS", append_flags("RUSTDOCFLAGS", "-D warnings"));
            run_command(&mut command)
        }
    }
}

/// The loom step's command: the `weft-loom-tests` models in `--release`, under
/// `--cfg loom --cfg crossbeam_loom -D warnings` (clippy never sees `cfg(loom)` code, so
/// warnings in it are denied here), in `<target>/loom` so the flags do not invalidate
/// the normal build, with `LOOM_MAX_PREEMPTIONS=2` unless the caller set it.
fn loom_command(root: &Path, extra: &[String]) -> Command {
    let mut command = crate::cargo(root);
    command
        .args(["test", "-p", "weft-loom-tests", "--release"])
        .args(extra)
        .env(
            "RUSTFLAGS",
            append_flags("RUSTFLAGS", "--cfg loom --cfg crossbeam_loom -D warnings"),
        )
        .env("CARGO_TARGET_DIR", crate::target_dir(root).join("loom"));
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        command.env("LOOM_MAX_PREEMPTIONS", "2");
    }
    command
}

/// The value of the flags variable `var` from our environment with `flags` appended, so
/// a caller's own flags are kept.
fn append_flags(var: &str, flags: &str) -> String {
    match std::env::var(var) {
        Ok(existing) if !existing.trim().is_empty() => format!("{} {flags}", existing.trim()),
        _ => flags.to_owned(),
    }
}

/// Echoes `command` and runs it with inherited stdio; fails if it cannot start or exits
/// unsuccessfully.
pub(crate) fn run_command(command: &mut Command) -> Result<(), String> {
    let line = crate::display_command(command);
    println!("[xtask] $ {line}");
    let status = command
        .status()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` exited with {status}"))
    }
}

/// Formats a duration for the step lines: `0.8s`, `42.1s`, `3m07s`.
fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// The summary table printed after `cargo xtask test`: one row per step with its result
/// and duration, a total, and the overall verdict.
fn render_summary(outcomes: &[(Step, Outcome)], total: Duration) -> String {
    let mut out = String::from("[xtask] summary\n");
    out.push_str(&format!(
        "[xtask]   {:<10} {:<8} {:>8}\n",
        "step", "result", "time"
    ));
    for (step, outcome) in outcomes {
        let (result, time) = match outcome {
            Outcome::Passed(d) => ("ok", format_duration(*d)),
            Outcome::Failed(d) => ("FAIL", format_duration(*d)),
            Outcome::Skipped => ("skipped", String::new()),
            Outcome::NotRun => ("not run", String::new()),
        };
        let row = format!("[xtask]   {:<10} {result:<8} {time:>8}", step.name());
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "[xtask]   {:<10} {:<8} {:>8}\n",
        "total",
        "",
        format_duration(total)
    ));
    let failed = outcomes
        .iter()
        .find(|(_, o)| matches!(o, Outcome::Failed(_)));
    let skipped = outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Skipped)
        .count();
    let verdict = match (failed, skipped) {
        (Some((step, _)), _) => format!("FAILED at step `{}`", step.name()),
        (None, 0) => "all steps passed".to_owned(),
        (None, n) => format!("all steps run passed ({n} skipped: not a full run)"),
    };
    out.push_str(&format!("[xtask] {verdict}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strings;

    #[test]
    fn skip_accepts_lists_equals_form_and_repeats() {
        let skip = parse_skip(&strings(&["--skip", "loom,valgrind", "--skip=doc,loom"])).unwrap();
        assert_eq!(skip, vec![Step::Loom, Step::Valgrind, Step::Doc]);
        assert_eq!(parse_skip(&[]).unwrap(), vec![]);
    }

    #[test]
    fn skip_rejects_unknown_steps_and_options() {
        let err = parse_skip(&strings(&["--skip", "lom"])).unwrap_err();
        assert!(err.contains("unknown step `lom`"), "{err}");
        assert!(err.contains("valgrind"), "lists the steps: {err}");
        assert!(parse_skip(&strings(&["--skip"])).is_err());
        assert!(parse_skip(&strings(&["--fast"])).is_err());
    }

    #[test]
    fn step_names_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::from_name(step.name()), Some(step));
        }
        assert_eq!(Step::from_name("bench"), None);
    }

    #[test]
    fn durations_format_in_seconds_then_minutes() {
        assert_eq!(format_duration(Duration::from_millis(800)), "0.8s");
        assert_eq!(format_duration(Duration::from_millis(59_940)), "59.9s");
        assert_eq!(format_duration(Duration::from_secs(187)), "3m07s");
    }

    #[test]
    fn summary_lists_every_step_and_the_verdict() {
        let outcomes = [
            (Step::Fmt, Outcome::Passed(Duration::from_millis(800))),
            (Step::Clippy, Outcome::Failed(Duration::from_secs(12))),
            (Step::Test, Outcome::NotRun),
            (Step::Loom, Outcome::Skipped),
        ];
        let summary = render_summary(&outcomes, Duration::from_secs(13));
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines[2], "[xtask]   fmt        ok           0.8s");
        assert_eq!(lines[3], "[xtask]   clippy     FAIL        12.0s");
        assert_eq!(lines[4], "[xtask]   test       not run");
        assert!(lines[5].contains("loom") && lines[5].contains("skipped"));
        assert!(lines[6].contains("total") && lines[6].ends_with("13.0s"));
        assert_eq!(lines[7], "[xtask] FAILED at step `clippy`");
    }

    #[test]
    fn loom_command_uses_its_own_target_dir_and_cfgs() {
        let root = Path::new("/ws");
        let command = loom_command(root, &strings(&["mpmc"]));
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        assert_eq!(
            args,
            ["test", "-p", "weft-loom-tests", "--release", "mpmc"].map(std::ffi::OsString::from)
        );
        let env = |key: &str| {
            command
                .get_envs()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        assert!(
            env("RUSTFLAGS")
                .unwrap()
                .ends_with("--cfg loom --cfg crossbeam_loom -D warnings")
        );
        assert!(env("CARGO_TARGET_DIR").unwrap().ends_with("loom"));
    }
}
