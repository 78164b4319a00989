//! `cargo xtask <task>`: Weft's project automation, in plain std Rust.
//!
//! The alias in `.cargo/config.toml` makes `cargo xtask ...` mean
//! `cargo run --quiet --package xtask -- ...`. Tasks:
//!
//! - `test [--skip STEP,...]`: the one test command CI runs (`.ci/run`): `fmt`, `clippy`,
//!   `test`, `loom`, `valgrind`, `doc`, in that order, stopping at the first failure
//!   (see [`mod@test`]).
//! - `loom [-- ARGS]`: only the loom models, in their own target directory.
//! - `valgrind`: only the valgrind memcheck run over the test binaries of the crates
//!   that contain `unsafe` code.
//! - `bench-report`: turns criterion's output under `target/criterion` into
//!   `BENCHMARKS.md` (see [`bench_report`]).
//! - `bench-runs <bench> [--runs N] [-- ARGS]`: runs one bench `N` times, each in a fresh
//!   process, and prints every implementation's median over the runs with the range and
//!   a per-run win count (see [`bench_runs`]).
//! - `loadtest [--quick] [--events N] [--phases http,ws]`: the platform's load test on loopback (see
//!   [`loadtest`]); a benchmark, not part of `test`.
//! - `help`: the task list.
//!
//! # Benchmark naming conventions
//!
//! `bench-report` reads criterion's ids, so every bench in `benches/` names them like this:
//!
//! - the **group id** is `<pattern>/<workload>`, e.g. `lockfree/mpmc_2p2c`: the pattern
//!   picks the `## <pattern>` section of `BENCHMARKS.md`, the workload the table row
//!   (a group id without `/` is a pattern with the single workload `default`);
//! - the **function id** is the implementation: ours is exactly `weft`, anything else is
//!   a peer and is shown under the name given, e.g. `crossbeam::ArrayQueue`
//!   (a bench without a function id shows as `(unnamed)`);
//! - a **value** (`BenchmarkId::new("weft", 1000)`) is a parameter appended to the
//!   workload: `mpmc_2p2c/1000`;
//! - set a `Throughput` (`Elements` or `Bytes`) on the group so the table shows rates and
//!   the ratio compares throughput; without one the ratio compares median times.
//!
//! Example: `group = c.benchmark_group("lockfree/mpmc_2p2c")`,
//! `group.throughput(Throughput::Elements(N))`, then `group.bench_function("weft", ..)`
//! and `group.bench_function("crossbeam::ArrayQueue", ..)`.

#![forbid(unsafe_code)]

mod bench_report;
mod bench_runs;
mod loadtest;
mod test;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The task list printed by `cargo xtask help`, by `cargo xtask` without arguments and
/// after an unknown task.
const HELP: &str = "\
cargo xtask <task> [options]: Weft project automation

Tasks:
  test [--skip STEP[,STEP...]]
        The full test command (what .ci/run and CI run). Steps, in order, stopping at
        the first failure:
          fmt       cargo fmt --all --check
          clippy    cargo clippy --workspace --all-targets -- -D warnings
          test      cargo test --workspace   (unit, integration and doc tests)
          loom      cargo test -p weft-loom-tests --release, with
                    RUSTFLAGS=\"--cfg loom --cfg crossbeam_loom -D warnings\",
                    CARGO_TARGET_DIR=target/loom, LOOM_MAX_PREEMPTIONS=2 (unless set)
          valgrind  valgrind memcheck over the test binaries of the crates with unsafe
                    code (WEFT_VALGRIND=1 lets tests scale down their counts)
          doc       cargo doc --workspace --no-deps, with RUSTDOCFLAGS=\"-D warnings\"
        --skip leaves out the named steps, for local iteration only, e.g.
          cargo xtask test --skip loom,valgrind
        The default runs every step.
  loom [-- ARGS...]
        Only the loom step. ARGS go to `cargo test`, e.g. a test filter:
          cargo xtask loom -- mpmc
  valgrind
        Only the valgrind step (needs valgrind: run .ci/run or apt-get install valgrind).
  bench-report
        Read criterion's output of `cargo bench` (target/criterion, or
        $CARGO_TARGET_DIR/criterion, or $CRITERION_HOME) and write BENCHMARKS.md: one
        table per pattern, Weft vs each peer, with the ratio. Sections of patterns that
        have no data in this run are kept from the previous BENCHMARKS.md.
        Bench ids: group `<pattern>/<workload>`, function `weft` (ours) or the peer's name.
        Extra figures in <criterion dir>/weft-metrics/<pattern>.json (written by benches
        and by `loadtest`) become tables; a pattern with only such figures (`platform`)
        gets a section of its own.
  bench-runs <bench> [--runs N] [-- ARGS...]
        Run `cargo bench --bench <bench> -- ARGS` N times (default 5), each in a fresh
        process, and print a markdown table: every implementation's median over the
        runs, its fastest and slowest run, the ratio to Weft, and in how many runs Weft
        was faster. For workloads whose ratio moves from run to run on a small machine.
        Writes nothing (bench-report still reports the last run), e.g.:
          cargo xtask bench-runs actor -- 'tell_1to1/|fanout|ask'
  loadtest [--quick] [--events N] [--phases http,ws]
        The platform's load test on loopback (Linux; a benchmark, not part of `test`):
        builds `--example platform` and `--example client` in release, starts the
        server with a fresh data dir and one tenant, and measures with the client:
          1. max ingest: N pre-encoded events (default 3,000,000) in NDJSON batches
             of 1000 over 4 connections, as fast as acknowledged; events/s, and
             events per server CPU second (= events/s per server core)
          2. p99 ack latency at half that rate
          3. query p99 at 100 QPS while ingesting 100K events/s (with open=true,
             then over closed windows only, the API's default)
          4. peak server RSS at 100K events/s over 10K series for 20 s (fresh
             server), and how fast it still grows over the second half
          5. 10,000 WebSocket clients (`client ws-soak`) at 1 update/s on one
             shared query (fresh server): server RSS they add, p99 push lag
          6. 1,000 WebSocket clients while ingesting 100K events/s (fresh server):
             total peak server RSS
        Prints each figure against the targets of issues 15 and 16 (PASS/MISS) and
        writes <target>/criterion/weft-metrics/platform.json for `bench-report`.
        --quick: small counts and 3-6 s phases, a smoke run (nothing written).
        --phases: `http` (1-4), `ws` (5-6) or both (default); a partial run keeps
        the other phases' rows in platform.json.
  help
        This text.
";

/// Parses the command line, runs the requested task and turns its outcome into the
/// process exit code (0 on success, 1 on failure, 2 on a usage error).
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    };
    if rest.iter().any(|a| a == "-h" || a == "--help") && task != "loom" {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let root = workspace_root();
    let outcome = match task.as_str() {
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        "test" => match test::parse_skip(rest) {
            Ok(skip) => test::run_all(&root, &skip),
            Err(message) => return usage_error(&message),
        },
        "loom" => test::run_single(&root, test::Step::Loom, strip_separator(rest)),
        "valgrind" => {
            if !rest.is_empty() {
                return usage_error("`cargo xtask valgrind` takes no arguments");
            }
            test::run_single(&root, test::Step::Valgrind, &[])
        }
        "bench-report" => {
            if !rest.is_empty() {
                return usage_error("`cargo xtask bench-report` takes no arguments");
            }
            bench_report::run(&root)
        }
        "bench-runs" => match bench_runs::parse_options(rest) {
            Ok(options) => bench_runs::run(&root, &options),
            Err(message) => return usage_error(&message),
        },
        "loadtest" => match loadtest::parse_options(rest) {
            Ok(options) => loadtest::run(&root, &options),
            Err(message) => return usage_error(&message),
        },
        other => return usage_error(&format!("unknown task `{other}`")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("[xtask] error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reports a command-line mistake, points at the help, and returns exit code 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("[xtask] error: {message} (see `cargo xtask help`)");
    ExitCode::from(2)
}

/// Drops a leading `--` from pass-through arguments, so `cargo xtask loom -- filter`
/// and `cargo xtask loom filter` both hand `filter` to `cargo test`.
fn strip_separator(args: &[String]) -> &[String] {
    match args.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => args,
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` if set (relative paths taken from the
/// current directory, as cargo does), else `<workspace>/target`.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir()
                    .map(|cwd| cwd.join(&dir))
                    .unwrap_or(dir)
            }
        }
        _ => root.join("target"),
    }
}

/// A `Command` for the cargo that runs this xtask (`$CARGO`, falling back to `cargo` on
/// `PATH`), started in the workspace root.
fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root);
    command
}

/// Renders a command as a shell-like line for logs: the environment variables it sets,
/// then `cargo` (not the full path of `$CARGO`) or the program, then its arguments.
fn display_command(command: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            parts.push(format!(
                "{}={}",
                key.to_string_lossy(),
                shell_quote(&value.to_string_lossy())
            ));
        }
    }
    let program = Path::new(command.get_program());
    let is_cargo = program
        .file_stem()
        .is_some_and(|stem| stem.eq_ignore_ascii_case("cargo"));
    parts.push(if is_cargo {
        "cargo".to_owned()
    } else {
        program.to_string_lossy().into_owned()
    });
    parts.extend(
        command
            .get_args()
            .map(|arg| shell_quote(&arg.to_string_lossy())),
    );
    parts.join(" ")
}

/// Quotes a word for display if it holds characters a shell would split or expand.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The owned strings of `args`: command lines for the parsers' tests.
#[cfg(test)]
pub(crate) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// A fresh temporary directory for tests, removed (with its contents) on drop.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

#[cfg(test)]
impl TempDir {
    /// Creates an empty directory under the system temp dir, unique per process and call.
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_dropped_only_in_front() {
        let args = vec!["--".to_owned(), "filter".to_owned(), "--".to_owned()];
        assert_eq!(strip_separator(&args), &args[1..]);
        let args = vec!["filter".to_owned()];
        assert_eq!(strip_separator(&args), &args[..]);
    }

    #[test]
    fn commands_display_env_and_quoted_args() {
        let mut command = Command::new("/home/u/.cargo/bin/cargo");
        command
            .env("RUSTFLAGS", "--cfg loom")
            .args(["test", "-p", "weft-loom-tests"]);
        assert_eq!(
            display_command(&command),
            "RUSTFLAGS=\"--cfg loom\" cargo test -p weft-loom-tests"
        );
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
    }
}
