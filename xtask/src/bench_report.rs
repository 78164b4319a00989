//! `cargo xtask bench-report`: turns criterion's output of `cargo bench` into
//! `BENCHMARKS.md`.
//!
//! Criterion writes, for every benchmark, `<criterion dir>/<group>/<function>/[<value>/]
//! new/benchmark.json` (its id: `group_id`, `function_id`, `value_str`, `throughput`) and
//! `new/estimates.json` (`median.point_estimate` in nanoseconds, among others). This module
//! walks the whole tree for `new/benchmark.json`, so a new bench shows up without touching
//! the xtask, and reads the ids by the conventions documented at the top of `main.rs`:
//! group `<pattern>/<workload>`, function `weft` for ours or the peer's name, value appended
//! to the workload.
//!
//! Extra figures a bench (or `cargo xtask loadtest`) wrote to
//! `<criterion dir>/weft-metrics/<pattern>.json` become a table in their pattern's section;
//! a pattern that has only such figures (`platform`) gets a section of its own.
//!
//! The report has one section per pattern between `<!-- pattern:NAME -->` and
//! `<!-- /pattern:NAME -->` markers. A pattern that has no data in this run keeps its
//! section from the previous `BENCHMARKS.md` verbatim (with its own "measured" line), so
//! benching one crate does not erase the others.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

/// The function id that marks our implementation in a bench group.
const OURS: &str = "weft";

/// The implementation name of a bench's floor: the work without any library (a bare
/// call), so a table can show Weft's overhead over it. It is not a peer: the summary
/// never compares against it.
pub(crate) const FLOOR: &str = "bare";

/// The workload name of a group id that has no `/<workload>` part.
const DEFAULT_WORKLOAD: &str = "default";

/// The implementation name of a bench without a function id.
const UNNAMED: &str = "(unnamed)";

/// The part of criterion's `benchmark.json` the report reads.
#[derive(Debug, Deserialize)]
struct BenchmarkJson {
    /// The group id, by convention `<pattern>/<workload>`.
    group_id: String,
    /// The function id: the implementation, `weft` for ours.
    function_id: Option<String>,
    /// The parameter of a `BenchmarkId::new(function, parameter)`.
    value_str: Option<String>,
    /// The throughput per iteration, e.g. `{"Elements": 1000}`.
    throughput: Option<Value>,
}

/// The part of criterion's `estimates.json` the report reads.
#[derive(Debug, Deserialize)]
struct EstimatesJson {
    /// The median time per iteration.
    median: EstimateJson,
}

/// One statistic of `estimates.json`.
#[derive(Debug, Deserialize)]
struct EstimateJson {
    /// The estimate, in nanoseconds per iteration.
    point_estimate: f64,
}

/// How much work one iteration does, as criterion's `Throughput` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throughput {
    /// Elements per iteration (also the primary unit of criterion's `ElementsAndBytes`).
    Elements(u64),
    /// Bytes per iteration, shown in binary units (KiB/s, MiB/s, GiB/s).
    Bytes(u64),
    /// Bytes per iteration, shown in decimal units (KB/s, MB/s, GB/s).
    BytesDecimal(u64),
    /// Bits per iteration.
    Bits(u64),
}

impl Throughput {
    /// Reads criterion's serialized `Throughput` (`{"Elements": n}`, `{"Bytes": n}`,
    /// `{"ElementsAndBytes": {"elements": n, "bytes": m}}`, ...); `None` for anything else.
    fn from_json(value: &Value) -> Option<Throughput> {
        let (kind, amount) = value.as_object()?.iter().next()?;
        match kind.as_str() {
            "Elements" => amount.as_u64().map(Throughput::Elements),
            "Bytes" => amount.as_u64().map(Throughput::Bytes),
            "BytesDecimal" => amount.as_u64().map(Throughput::BytesDecimal),
            "Bits" => amount.as_u64().map(Throughput::Bits),
            "ElementsAndBytes" => amount["elements"].as_u64().map(Throughput::Elements),
            _ => None,
        }
    }

    /// The amount of work per iteration.
    fn amount(self) -> u64 {
        match self {
            Throughput::Elements(n)
            | Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Bits(n) => n,
        }
    }

    /// Whether two throughputs count the same unit (bytes in either notation count alike).
    fn same_unit(self, other: Throughput) -> bool {
        use Throughput::*;
        matches!(
            (self, other),
            (Elements(_), Elements(_))
                | (Bits(_), Bits(_))
                | (Bytes(_) | BytesDecimal(_), Bytes(_) | BytesDecimal(_))
        )
    }
}

/// One benchmark result: which pattern, workload and implementation, and how fast.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measurement {
    /// The pattern (section of the report), from the group id.
    pub(crate) pattern: String,
    /// The workload (table row group), from the group id and value.
    pub(crate) workload: String,
    /// The implementation: `weft` or a peer's name.
    pub(crate) implementation: String,
    /// Criterion's median time per iteration, in nanoseconds.
    pub(crate) median_ns: f64,
    /// The work per iteration, if the group declared a throughput.
    pub(crate) throughput: Option<Throughput>,
    /// When criterion wrote the estimate (its file's modification time), if known.
    pub(crate) measured: Option<SystemTime>,
}

impl Measurement {
    /// Builds a measurement from criterion's id fields and median, by the naming
    /// conventions: group `<pattern>/<workload>`, value appended to the workload.
    fn from_ids(bench: BenchmarkJson, median_ns: f64) -> Measurement {
        let (pattern, workload) = match bench.group_id.split_once('/') {
            Some((pattern, workload)) => (pattern.to_owned(), Some(workload.to_owned())),
            None => (bench.group_id.clone(), None),
        };
        let workload = match (workload, bench.value_str) {
            (Some(workload), Some(value)) => format!("{workload}/{value}"),
            (Some(workload), None) => workload,
            (None, Some(value)) => value,
            (None, None) => DEFAULT_WORKLOAD.to_owned(),
        };
        Measurement {
            pattern,
            workload,
            implementation: bench.function_id.unwrap_or_else(|| UNNAMED.to_owned()),
            median_ns,
            throughput: bench.throughput.as_ref().and_then(Throughput::from_json),
            measured: None,
        }
    }

    /// Whether this is our implementation.
    pub(crate) fn is_ours(&self) -> bool {
        self.implementation == OURS
    }

    /// Work per second at the median time, if a throughput was declared.
    fn rate(&self) -> Option<f64> {
        let throughput = self.throughput?;
        (self.median_ns > 0.0).then(|| throughput.amount() as f64 * 1e9 / self.median_ns)
    }

    /// A speed to sort by: the rate if there is one, else iterations per second.
    fn speed(&self) -> f64 {
        self.rate().unwrap_or_else(|| {
            if self.median_ns > 0.0 {
                1e9 / self.median_ns
            } else {
                0.0
            }
        })
    }
}

/// Our speed relative to a peer's: our throughput ÷ the peer's when both declare one in
/// the same unit, else the peer's median time ÷ ours. Above 1.0 means Weft is faster.
pub(crate) fn ratio(ours: &Measurement, peer: &Measurement) -> f64 {
    match (ours.throughput, peer.throughput, ours.rate(), peer.rate()) {
        (Some(a), Some(b), Some(our_rate), Some(peer_rate)) if a.same_unit(b) => {
            our_rate / peer_rate
        }
        _ => peer.median_ns / ours.median_ns,
    }
}

/// A ratio as the report prints it: `1.16x`, or `n/a` if it is not a finite number.
pub(crate) fn format_ratio(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{ratio:.2}x")
    } else {
        "n/a".to_owned()
    }
}

/// Whether a ratio counts as a win: at least `1.00x` as printed.
fn is_win(ratio: f64) -> bool {
    (ratio * 100.0).round() >= 100.0
}

/// What the header and each section's "measured" line say about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Machine {
    /// When the report was generated, `YYYY-MM-DD HH:MM UTC`.
    date: String,
    /// How many CPUs the process may use.
    cpus: Option<usize>,
    /// The CPU model name from `/proc/cpuinfo`.
    cpu_model: Option<String>,
    /// The output of `rustc -V`.
    rustc: Option<String>,
}

impl Machine {
    /// Reads the current time, CPU count, CPU model and rustc version.
    fn detect() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model_from_cpuinfo(&text));
        let rustc =
            std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
                .arg("-V")
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .filter(|v| !v.is_empty());
        Machine {
            date: format_utc(SystemTime::now()),
            cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
            cpu_model,
            rustc,
        }
    }

    /// `2 CPUs, AMD EPYC 7B13`: the machine part of the header and measured lines.
    fn describe(&self) -> String {
        let cpus = match self.cpus {
            Some(1) => "1 CPU".to_owned(),
            Some(n) => format!("{n} CPUs"),
            None => "unknown CPU count".to_owned(),
        };
        let model = self.cpu_model.as_deref().unwrap_or("unknown CPU model");
        format!("{cpus}, {model}")
    }

    /// The rustc version, or `unknown rustc`.
    fn rustc(&self) -> &str {
        self.rustc.as_deref().unwrap_or("unknown rustc")
    }
}

/// The first `model name` of a `/proc/cpuinfo` text.
fn cpu_model_from_cpuinfo(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name" && !value.trim().is_empty()).then(|| value.trim().to_owned())
    })
}

/// Formats a time as `YYYY-MM-DD HH:MM UTC` (times before 1970 print as the epoch).
fn format_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let minutes = secs % 86_400 / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minutes / 60,
        minutes % 60
    )
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats a number with about four significant digits: `812.3`, `81.23`, `8.123`.
fn four_digits(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.1}")
    } else if value >= 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// A time per iteration in nanoseconds, in human units: `812.3 ns`, `1.234 µs`, `5.000 s`.
pub(crate) fn format_time(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", four_digits(value))
}

/// A rate in human units for its throughput kind: `123.4 Melem/s`, `1.500 GiB/s`.
fn format_rate(throughput: Throughput, per_second: f64) -> String {
    let (base, units): (f64, [&str; 4]) = match throughput {
        Throughput::Elements(_) => (1e3, ["elem/s", "Kelem/s", "Melem/s", "Gelem/s"]),
        Throughput::Bytes(_) => (1024.0, ["B/s", "KiB/s", "MiB/s", "GiB/s"]),
        Throughput::BytesDecimal(_) => (1e3, ["B/s", "KB/s", "MB/s", "GB/s"]),
        Throughput::Bits(_) => (1e3, ["bit/s", "Kbit/s", "Mbit/s", "Gbit/s"]),
    };
    let mut value = per_second;
    let mut unit = 0;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    format!("{} {}", four_digits(value), units[unit])
}

/// Compares strings so that digit runs order by number: `n/2` < `n/16` < `n/128`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    /// Splits a string into runs of digits and runs of non-digits.
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let numeric = x.as_bytes()[0].is_ascii_digit() && y.as_bytes()[0].is_ascii_digit();
        let order = if numeric {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Where criterion writes: `$CRITERION_HOME`, else `<target dir>/criterion` (the target dir
/// honouring `$CARGO_TARGET_DIR`), as criterion itself decides.
pub(crate) fn criterion_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => crate::target_dir(root).join("criterion"),
    }
}

/// Runs the task: reads criterion's output, writes `<workspace>/BENCHMARKS.md`.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let out_path = root.join("BENCHMARKS.md");
    let summary = generate(&criterion_dir(root), &out_path, &Machine::detect())?;
    println!("[xtask] wrote {}: {summary}", out_path.display());
    Ok(())
}

/// Reads every benchmark under `criterion_dir`, merges with the sections of the existing
/// report at `out_path`, and writes the report there. Returns a one-line summary.
fn generate(criterion_dir: &Path, out_path: &Path, machine: &Machine) -> Result<String, String> {
    if !criterion_dir.is_dir() {
        return Err(format!(
            "no criterion output at {}: run `cargo bench` first",
            criterion_dir.display()
        ));
    }
    let measurements = collect(criterion_dir)?;
    let extras = collect_metrics(criterion_dir)?;
    if measurements.is_empty() && extras.is_empty() {
        return Err(format!(
            "no benchmark results (`new/benchmark.json` or `weft-metrics/*.json`) under {}: \
             run `cargo bench` first (or `cargo xtask loadtest` for the platform's figures)",
            criterion_dir.display()
        ));
    }
    let previous = match std::fs::read_to_string(out_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("could not read {}: {e}", out_path.display())),
    };
    let (report, kept) = render_report(&measurements, machine, previous.as_deref(), &extras);
    std::fs::write(out_path, report)
        .map_err(|e| format!("could not write {}: {e}", out_path.display()))?;
    let mut patterns: Vec<&str> = measurements.iter().map(|m| m.pattern.as_str()).collect();
    patterns.dedup();
    let metrics_only: Vec<&str> = extras
        .keys()
        .map(String::as_str)
        .filter(|p| !patterns.contains(p))
        .collect();
    let mut parts = Vec::new();
    if !measurements.is_empty() {
        parts.push(format!(
            "{} result(s) in {} pattern(s): {}",
            measurements.len(),
            patterns.len(),
            patterns.join(", ")
        ));
    }
    if !metrics_only.is_empty() {
        parts.push(format!("metrics only: {}", metrics_only.join(", ")));
    }
    let mut summary = parts.join("; ");
    if !kept.is_empty() {
        let _ = write!(
            summary,
            "; kept from the previous report: {}",
            kept.join(", ")
        );
    }
    Ok(summary)
}

/// Finds every `new/benchmark.json` under `dir` with its `new/estimates.json` and returns
/// the measurements sorted by pattern, workload (natural order) and implementation.
/// Unreadable results are reported on stderr and skipped; duplicates keep the first.
pub(crate) fn collect(dir: &Path) -> Result<Vec<Measurement>, String> {
    let mut files = Vec::new();
    find_benchmark_files(dir, &mut files)
        .map_err(|e| format!("could not walk {}: {e}", dir.display()))?;
    let mut measurements: Vec<Measurement> = Vec::new();
    for file in files {
        match read_measurement(&file) {
            Ok(m) => {
                let duplicate = measurements.iter().any(|o| {
                    o.pattern == m.pattern
                        && o.workload == m.workload
                        && o.implementation == m.implementation
                });
                if duplicate {
                    eprintln!(
                        "[xtask] warning: {} repeats {}/{}/{}; ignored",
                        file.display(),
                        m.pattern,
                        m.workload,
                        m.implementation
                    );
                } else {
                    measurements.push(m);
                }
            }
            Err(message) => eprintln!("[xtask] warning: skipped {}: {message}", file.display()),
        }
    }
    measurements.sort_by(|a, b| {
        a.pattern
            .cmp(&b.pattern)
            .then_with(|| natural_cmp(&a.workload, &b.workload))
            .then_with(|| a.implementation.cmp(&b.implementation))
    });
    Ok(measurements)
}

/// Appends the path of every `benchmark.json` inside a directory named `new` under `dir`
/// (recursively, sorted, not following symlinks) to `out`.
fn find_benchmark_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let candidate = path.join("benchmark.json");
        if entry.file_name() == "new" && candidate.is_file() {
            out.push(candidate);
        } else {
            find_benchmark_files(&path, out)?;
        }
    }
    Ok(())
}

/// Reads one `new/benchmark.json` and the `estimates.json` beside it.
fn read_measurement(benchmark_file: &Path) -> Result<Measurement, String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let bench: BenchmarkJson = serde_json::from_str(&read(benchmark_file)?)
        .map_err(|e| format!("invalid benchmark.json: {e}"))?;
    let estimates_file = benchmark_file.with_file_name("estimates.json");
    let estimates: EstimatesJson = serde_json::from_str(&read(&estimates_file)?)
        .map_err(|e| format!("invalid estimates.json: {e}"))?;
    let mut m = Measurement::from_ids(bench, estimates.median.point_estimate);
    m.measured = std::fs::metadata(&estimates_file)
        .and_then(|meta| meta.modified())
        .ok();
    Ok(m)
}

/// One extra measurement a bench recorded beside criterion's timings (memory per key,
/// say), read from `<criterion dir>/weft-metrics/<pattern>.json`: a JSON array of
/// `{"workload", "implementation", "value", "unit"}` objects.
#[derive(Debug, Deserialize)]
struct Metric {
    workload: String,
    implementation: String,
    value: f64,
    unit: String,
}

/// One pattern's extra measurements, rendered.
#[derive(Debug, Clone, PartialEq)]
struct Extra {
    /// The markdown table of the metrics.
    table: String,
    /// When the metrics file was written, if known.
    measured: Option<SystemTime>,
}

/// Reads every `weft-metrics/<pattern>.json` under `criterion_dir` and renders each
/// pattern's metrics as a markdown table, keyed by pattern.
fn collect_metrics(criterion_dir: &Path) -> Result<BTreeMap<String, Extra>, String> {
    let dir = criterion_dir.join("weft-metrics");
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(pattern) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let metrics: Vec<Metric> = serde_json::from_str(&text)
            .map_err(|e| format!("invalid metrics file {}: {e}", path.display()))?;
        let measured = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        out.insert(
            pattern.to_owned(),
            Extra {
                table: render_metrics(&metrics),
                measured,
            },
        );
    }
    Ok(out)
}

/// The intro of the metrics table in a section that also has criterion timings.
const OTHER_MEASUREMENTS: &str =
    "\nOther measurements (recorded by the bench beside its timings):\n\n";

/// The metrics table of one pattern.
fn render_metrics(metrics: &[Metric]) -> String {
    let mut out = String::from("| workload | implementation | value |\n|:---|:---|---:|\n");
    for m in metrics {
        let name = if m.implementation == OURS {
            format!("**{OURS}**")
        } else {
            format!("`{}`", m.implementation)
        };
        let value = if m.value.fract() == 0.0 && m.value.abs() < 1e15 {
            format!("{}", m.value as i64)
        } else {
            format!("{:.1}", m.value)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} {} |",
            escape_cell(&m.workload),
            escape_cell(&name),
            value,
            escape_cell(&m.unit)
        );
    }
    out
}

/// The section of a pattern that has extra measurements but no criterion timings (the
/// platform's load test): heading, measured line (dated by the metrics file), the table.
fn render_metrics_section(pattern: &str, extra: &Extra, machine: &Machine) -> String {
    format!(
        "{}Measured by its own run (not criterion), e.g. `cargo xtask loadtest` for \
         `platform`; rows named `target` are the goals the figures are held to.\n\
         \n\
         {}<!-- /pattern:{pattern} -->\n",
        section_head(pattern, extra.measured, machine),
        extra.table,
    )
}

/// A section's opening marker, heading and "measured" line (which `section_date` reads
/// back), dated `measured` if known, else when the report is written.
fn section_head(pattern: &str, measured: Option<SystemTime>, machine: &Machine) -> String {
    let date = measured.map_or_else(|| machine.date.clone(), format_utc);
    format!(
        "<!-- pattern:{pattern} -->\n## {pattern}\n\n_Measured {date} on {}, {}._\n\n",
        machine.describe(),
        machine.rustc()
    )
}

/// Renders the whole report: header, how-to-read, then one section per pattern in name
/// order: freshly rendered for the patterns in `measurements` (with their extra
/// measurements) and for the patterns that only have extra measurements, kept verbatim
/// from `previous` for the others. Returns the text and the names of the kept patterns.
fn render_report(
    measurements: &[Measurement],
    machine: &Machine,
    previous: Option<&str>,
    extras: &BTreeMap<String, Extra>,
) -> (String, Vec<String>) {
    let mut by_pattern: BTreeMap<&str, Vec<&Measurement>> = BTreeMap::new();
    for m in measurements {
        by_pattern.entry(m.pattern.as_str()).or_default().push(m);
    }
    let old_sections = previous.map(parse_sections).unwrap_or_default();
    let mut sections: BTreeMap<&str, String> = BTreeMap::new();
    let mut kept = Vec::new();
    for (pattern, text) in &old_sections {
        if !by_pattern.contains_key(pattern.as_str()) && !extras.contains_key(pattern) {
            sections.insert(pattern, text.clone());
            kept.push(pattern.clone());
        }
    }
    // A section already in the report that was measured after the data found now (a
    // shared target directory holding an older run) is kept, not replaced by older
    // figures.
    let mut keep_newer = |pattern: &str, text: String| match old_sections.get(pattern) {
        Some(old) if section_date(old) > section_date(&text) => {
            kept.push(pattern.to_owned());
            old.clone()
        }
        _ => text,
    };
    for (pattern, rows) in &by_pattern {
        let mut text = render_section(pattern, rows, machine);
        if let Some(extra) = extras.get(*pattern) {
            let end = format!("<!-- /pattern:{pattern} -->");
            if let Some(at) = text.rfind(&end) {
                text.insert_str(at, &format!("{OTHER_MEASUREMENTS}{}", extra.table));
            }
        }
        sections.insert(pattern, keep_newer(pattern, text));
    }
    for (pattern, extra) in extras {
        if !by_pattern.contains_key(pattern.as_str()) {
            let text = render_metrics_section(pattern, extra, machine);
            sections.insert(pattern, keep_newer(pattern, text));
        }
    }

    let mut out = String::new();
    out.push_str(&render_header(machine));
    for section in sections.values() {
        out.push('\n');
        out.push_str(section);
    }
    (out, kept)
}

/// The `YYYY-MM-DD HH:MM` of a section's `_Measured … UTC` line (such dates sort as
/// strings); `None` sorts first.
fn section_date(text: &str) -> Option<&str> {
    let rest = &text[text.find("_Measured ")? + "_Measured ".len()..];
    Some(&rest[..rest.find(" UTC")?])
}

/// The report's title, provenance, machine and how-to-read text.
fn render_header(machine: &Machine) -> String {
    format!(
        "# Weft benchmarks\n\
         \n\
         Generated by `cargo xtask bench-report` from criterion output of `cargo bench`.\n\
         \n\
         - Date: {date}\n\
         - Machine: {machine}\n\
         - Compiler: {rustc}\n\
         \n\
         ## How to read these tables\n\
         \n\
         Each pattern's bench runs the same workload through Weft and through the crates \
         a user would otherwise pick (peers), in one `cargo bench` run. *Median time* is \
         the median of criterion's samples of one iteration; *throughput* is the work of \
         one iteration (elements or bytes) divided by that median. *Ratio* is Weft's \
         throughput divided by the peer's, so **above 1.00x Weft is faster**; where a \
         bench declares no throughput, the ratio is the peer's median time divided by \
         Weft's, with the same meaning. Weft's row comes first, then the peers from \
         fastest to slowest. The summary under each table names, per workload, the fastest \
         peer and Weft's ratio to it: a *win* is a ratio of at least 1.00x, a *loss* \
         anything below. Numbers from a shared or noisy machine move by several percent \
         between runs; compare ratios, which come from one run, rather than absolute \
         times across reports.\n\
         \n\
         A row named `bare` is a bench's floor (the work with no library at all); its ratio cell shows what Weft adds to it, and the summary never counts it as a peer. Bench ids follow one convention: criterion group `<pattern>/<workload>`, function \
         `weft` for Weft or the peer's name (e.g. `crossbeam::ArrayQueue`), and an \
         optional parameter appended to the workload. Each section says when and where it \
         was measured: a pattern not benched in the latest run keeps its previous \
         section.\n",
        date = machine.date,
        machine = machine.describe(),
        rustc = machine.rustc(),
    )
}

/// One pattern's section, between its markers: heading, measured line (dated by the
/// newest estimate among `rows`), the table (one row group per workload, ours first,
/// then peers fastest first) and the summary line.
fn render_section(pattern: &str, rows: &[&Measurement], machine: &Machine) -> String {
    let mut workloads: Vec<(&str, Vec<&Measurement>)> = Vec::new();
    for m in rows {
        match workloads.iter_mut().find(|(w, _)| *w == m.workload) {
            Some((_, group)) => group.push(m),
            None => workloads.push((m.workload.as_str(), vec![m])),
        }
    }
    workloads.sort_by(|a, b| natural_cmp(a.0, b.0));

    // The newest estimate's time: a section regenerated from older criterion data
    // says when that data was taken, not when the report was written.
    let measured = rows.iter().filter_map(|m| m.measured).max();
    let mut out = section_head(pattern, measured, machine);
    out.push_str("| workload | implementation | median time | throughput | ratio (weft/peer) |\n");
    out.push_str("|:---|:---|---:|---:|---:|\n");
    let mut summary = Vec::new();
    for (workload, group) in &workloads {
        let ours = group.iter().copied().find(|m| m.is_ours());
        let mut peers: Vec<&Measurement> = group.iter().copied().filter(|m| !m.is_ours()).collect();
        peers.sort_by(|a, b| {
            b.speed()
                .total_cmp(&a.speed())
                .then_with(|| a.implementation.cmp(&b.implementation))
        });
        let ordered = ours.into_iter().chain(peers.iter().copied());
        for (i, m) in ordered.enumerate() {
            let name = if m.is_ours() {
                format!("**{OURS}**")
            } else {
                format!("`{}`", m.implementation)
            };
            let throughput = match (m.throughput, m.rate()) {
                (Some(t), Some(rate)) => format_rate(t, rate),
                _ => "—".to_owned(),
            };
            let ratio = match ours {
                Some(_) if m.is_ours() => "—".to_owned(),
                Some(ours) if m.implementation == FLOOR => format!(
                    "floor: weft adds {}",
                    format_time((ours.median_ns - m.median_ns).max(0.0))
                ),
                Some(ours) => format_ratio(ratio(ours, m)),
                None => "n/a".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                if i == 0 {
                    escape_cell(workload)
                } else {
                    String::new()
                },
                escape_cell(&name),
                format_time(m.median_ns),
                throughput,
                ratio
            );
        }
        summary.push(summarize_workload(workload, ours, &peers));
    }
    let _ = writeln!(out, "\n**Summary:** {}.", summary.join("; "));
    let _ = writeln!(out, "<!-- /pattern:{pattern} -->");
    out
}

/// One workload's part of the summary line, `mpmc: 1.16x vs `peer` (win)`, against the
/// peer Weft compares worst to.
fn summarize_workload(
    workload: &str,
    ours: Option<&Measurement>,
    peers: &[&Measurement],
) -> String {
    let Some(ours) = ours else {
        return format!("{workload}: no `{OURS}` result");
    };
    let best = peers
        .iter()
        .filter(|peer| peer.implementation != FLOOR)
        .map(|peer| (peer, ratio(ours, peer)))
        .filter(|(_, r)| r.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((peer, r)) => format!(
            "{workload}: {} vs `{}` ({})",
            format_ratio(r),
            peer.implementation,
            if is_win(r) { "win" } else { "loss" }
        ),
        None => format!("{workload}: no peer"),
    }
}

/// Escapes the characters that would break a markdown table cell.
fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The pattern sections of an existing report: for each `<!-- pattern:NAME -->` line up to
/// its `<!-- /pattern:NAME -->` line, the text verbatim (markers included). A section
/// without an end marker is dropped with a warning.
fn parse_sections(text: &str) -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some((name, body)) = &mut open {
            body.push_str(line);
            body.push('\n');
            if trimmed == format!("<!-- /pattern:{name} -->") {
                let (name, body) = open.take().expect("a section is open");
                sections.insert(name, body);
            }
            continue;
        }
        if let Some(name) = trimmed
            .strip_prefix("<!-- pattern:")
            .and_then(|rest| rest.strip_suffix("-->"))
        {
            open = Some((name.trim().to_owned(), format!("{line}\n")));
        }
    }
    if let Some((name, _)) = open {
        eprintln!(
            "[xtask] warning: the previous BENCHMARKS.md has no `<!-- /pattern:{name} -->`; \
             its `{name}` section is dropped"
        );
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(date: &str) -> Machine {
        Machine {
            date: date.to_owned(),
            cpus: Some(2),
            cpu_model: Some("Test CPU".to_owned()),
            rustc: Some("rustc 1.95.0".to_owned()),
        }
    }

    fn m(
        pattern: &str,
        workload: &str,
        implementation: &str,
        median_ns: f64,
        elements: Option<u64>,
    ) -> Measurement {
        Measurement {
            pattern: pattern.to_owned(),
            workload: workload.to_owned(),
            implementation: implementation.to_owned(),
            median_ns,
            throughput: elements.map(Throughput::Elements),
            measured: None,
        }
    }

    /// Writes a fake criterion result the way criterion 0.8 lays it out.
    fn write_bench(
        dir: &Path,
        rel: &str,
        group: &str,
        function: Option<&str>,
        value: Option<&str>,
        throughput: &str,
        median: f64,
    ) {
        let new = dir.join(rel).join("new");
        std::fs::create_dir_all(&new).unwrap();
        let full_id = [Some(group), function, value]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        let bench = serde_json::json!({
            "group_id": group,
            "function_id": function,
            "value_str": value,
            "throughput": serde_json::from_str::<Value>(throughput).unwrap(),
            "full_id": full_id,
            "directory_name": rel,
            "title": full_id,
        });
        std::fs::write(new.join("benchmark.json"), bench.to_string()).unwrap();
        let estimate = |p: f64| {
            serde_json::json!({
                "confidence_interval": {"confidence_level": 0.95, "lower_bound": p * 0.9, "upper_bound": p * 1.1},
                "point_estimate": p,
                "standard_error": 1.0,
            })
        };
        let estimates = serde_json::json!({
            "mean": estimate(median * 1.05),
            "median": estimate(median),
            "median_abs_dev": estimate(1.0),
            "slope": null,
            "std_dev": estimate(2.0),
        });
        std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
    }

    #[test]
    fn collect_walks_criterion_tree_and_reads_ids() {
        let dir = crate::TempDir::new("criterion");
        let root = &dir.0;
        let elements = r#"{"Elements": 1000}"#;
        write_bench(
            root,
            "lockfree_mpmc_2p2c/weft",
            "lockfree/mpmc_2p2c",
            Some("weft"),
            None,
            elements,
            10_000.0,
        );
        write_bench(
            root,
            "lockfree_mpmc_2p2c/crossbeam__ArrayQueue",
            "lockfree/mpmc_2p2c",
            Some("crossbeam::ArrayQueue"),
            None,
            elements,
            12_500.0,
        );
        write_bench(
            root,
            "lockfree_spsc/weft/128",
            "lockfree/spsc",
            Some("weft"),
            Some("128"),
            "null",
            50.0,
        );
        write_bench(
            root,
            "lockfree_spsc/weft/16",
            "lockfree/spsc",
            Some("weft"),
            Some("16"),
            "null",
            5.0,
        );
        write_bench(
            root,
            "ratelimit_acquire/weft",
            "ratelimit/acquire",
            Some("weft"),
            None,
            r#"{"ElementsAndBytes": {"elements": 7, "bytes": 70}}"#,
            100.0,
        );
        write_bench(
            root,
            "plain",
            "plain",
            None,
            None,
            r#"{"Bytes": 1024}"#,
            1.0,
        );
        // Criterion's `base/` copy and `report/` folders must not count twice.
        let base = root.join("plain/base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::copy(
            root.join("plain/new/benchmark.json"),
            base.join("benchmark.json"),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("report")).unwrap();
        // A broken result is skipped, not fatal.
        std::fs::create_dir_all(root.join("broken/new")).unwrap();
        std::fs::write(root.join("broken/new/benchmark.json"), "{").unwrap();

        let found = collect(root).unwrap();
        let ids: Vec<String> = found
            .iter()
            .map(|m| format!("{}|{}|{}", m.pattern, m.workload, m.implementation))
            .collect();
        assert_eq!(
            ids,
            [
                "lockfree|mpmc_2p2c|crossbeam::ArrayQueue",
                "lockfree|mpmc_2p2c|weft",
                "lockfree|spsc/16|weft",
                "lockfree|spsc/128|weft",
                "plain|default|(unnamed)",
                "ratelimit|acquire|weft",
            ]
        );
        assert_eq!(found[1].median_ns, 10_000.0);
        assert_eq!(found[1].throughput, Some(Throughput::Elements(1000)));
        assert_eq!(found[2].throughput, None);
        assert_eq!(found[4].throughput, Some(Throughput::Bytes(1024)));
        assert_eq!(found[5].throughput, Some(Throughput::Elements(7)));
    }

    #[test]
    fn ratio_prefers_throughput_and_falls_back_to_time() {
        let ours = m("p", "w", "weft", 10_000.0, Some(1000));
        let slower = m("p", "w", "peer", 12_500.0, Some(1000));
        assert!((ratio(&ours, &slower) - 1.25).abs() < 1e-12);
        // The peer does twice the work per iteration in 1.5x the time: it is faster.
        let bigger = m("p", "w", "peer", 15_000.0, Some(2000));
        assert!((ratio(&ours, &bigger) - 0.75).abs() < 1e-12);
        // No throughput on one side: time ratio.
        let untimed = m("p", "w", "peer", 5_000.0, None);
        assert!((ratio(&ours, &untimed) - 0.5).abs() < 1e-12);
        assert_eq!(format_ratio(1.254), "1.25x");
        assert_eq!(format_ratio(f64::INFINITY), "n/a");
        assert!(is_win(0.996) && is_win(1.2) && !is_win(0.994));
    }

    #[test]
    fn section_orders_rows_and_summarizes() {
        let rows = [
            m("lockfree", "mpmc", "slow::Queue", 20_000.0, Some(1000)),
            m("lockfree", "mpmc", "weft", 10_000.0, Some(1000)),
            m("lockfree", "mpmc", "fast::Queue", 8_000.0, Some(1000)),
            m("lockfree", "n/128", "weft", 100.0, None),
            m("lockfree", "n/16", "weft", 12.0, None),
            m("lockfree", "n/16", "a|b", 24.0, None),
            m("lockfree", "peers_only", "other", 1.0, None),
        ];
        let refs: Vec<&Measurement> = rows.iter().collect();
        let section = render_section("lockfree", &refs, &machine("2026-01-02 03:04 UTC"));
        let lines: Vec<&str> = section.lines().collect();
        assert_eq!(lines[0], "<!-- pattern:lockfree -->");
        assert_eq!(lines[1], "## lockfree");
        assert_eq!(
            lines[3],
            "_Measured 2026-01-02 03:04 UTC on 2 CPUs, Test CPU, rustc 1.95.0._"
        );
        let table: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("| "))
            .collect();
        assert_eq!(
            table,
            [
                "| workload | implementation | median time | throughput | ratio (weft/peer) |",
                "| mpmc | **weft** | 10.00 µs | 100.0 Melem/s | — |",
                "|  | `fast::Queue` | 8.000 µs | 125.0 Melem/s | 0.80x |",
                "|  | `slow::Queue` | 20.00 µs | 50.00 Melem/s | 2.00x |",
                "| n/16 | **weft** | 12.00 ns | — | — |",
                "|  | `a\\|b` | 24.00 ns | — | 2.00x |",
                "| n/128 | **weft** | 100.0 ns | — | — |",
                "| peers_only | `other` | 1.000 ns | — | n/a |",
            ]
        );
        assert!(
            section.contains(
                "**Summary:** mpmc: 0.80x vs `fast::Queue` (loss); n/16: 2.00x vs `a|b` (win); \
                 n/128: no peer; peers_only: no `weft` result."
            ),
            "{section}"
        );
        assert!(section.ends_with("<!-- /pattern:lockfree -->\n"));
    }

    #[test]
    fn report_keeps_sections_of_patterns_not_rerun() {
        let old_rows = [
            m("lockfree", "mpmc", "weft", 1.0, None),
            m("ratelimit", "acquire", "weft", 2.0, None),
        ];
        let old_refs: Vec<&Measurement> = old_rows.iter().collect();
        let old_machine = machine("2025-12-01 00:00 UTC");
        let (previous, kept) = render_report(
            &old_rows,
            &old_machine,
            Some("# hand edits outside markers are regenerated\n"),
            &BTreeMap::new(),
        );
        assert!(kept.is_empty());
        let old_ratelimit = render_section("ratelimit", &old_refs[1..], &old_machine);
        assert!(previous.contains(&old_ratelimit));

        let new_rows = [m("lockfree", "mpmc", "weft", 3.0, None)];
        let (report, kept) = render_report(
            &new_rows,
            &machine("2026-02-02 00:00 UTC"),
            Some(&previous),
            &BTreeMap::new(),
        );
        assert_eq!(kept, ["ratelimit"]);
        assert!(
            report.contains(&old_ratelimit),
            "old section kept verbatim:\n{report}"
        );
        assert!(
            report.contains("_Measured 2025-12-01 00:00 UTC"),
            "with its date"
        );
        assert!(report.contains("_Measured 2026-02-02 00:00 UTC"));
        assert!(report.contains("- Date: 2026-02-02 00:00 UTC"));
        assert_eq!(report.matches("<!-- pattern:lockfree -->").count(), 1);
        assert!(report.contains("| mpmc | **weft** | 3.000 ns |"));
        assert!(!report.contains("| mpmc | **weft** | 1.000 ns |"));
        // Sections stay in pattern order.
        assert!(report.find("## lockfree").unwrap() < report.find("## ratelimit").unwrap());
        // Older data than a section already in the report does not replace it.
        let stale = [m("lockfree", "mpmc", "weft", 9.0, None)];
        let (again, kept) = render_report(
            &stale,
            &machine("2026-01-15 00:00 UTC"),
            Some(&report),
            &BTreeMap::new(),
        );
        assert!(kept.contains(&"lockfree".to_owned()), "{kept:?}");
        assert!(again.contains("| mpmc | **weft** | 3.000 ns |"), "{again}");
        assert!(!again.contains("| mpmc | **weft** | 9.000 ns |"));
        // A second run on the same data is stable.
        let (again, _) = render_report(
            &new_rows,
            &machine("2026-02-02 00:00 UTC"),
            Some(&report),
            &BTreeMap::new(),
        );
        assert_eq!(again, report);
    }

    #[test]
    fn unterminated_sections_are_dropped() {
        let text = "<!-- pattern:a -->\nA\n<!-- /pattern:a -->\n<!-- pattern:b -->\nB\n";
        let sections = parse_sections(text);
        assert_eq!(sections.len(), 1);
        assert_eq!(
            sections["a"],
            "<!-- pattern:a -->\nA\n<!-- /pattern:a -->\n"
        );
    }

    #[test]
    fn generate_needs_criterion_output() {
        let dir = crate::TempDir::new("generate");
        let out = dir.0.join("BENCHMARKS.md");
        let err = generate(&dir.0.join("criterion"), &out, &machine("d")).unwrap_err();
        assert!(err.contains("run `cargo bench` first"), "{err}");
        std::fs::create_dir_all(dir.0.join("criterion/report")).unwrap();
        let err = generate(&dir.0.join("criterion"), &out, &machine("d")).unwrap_err();
        assert!(err.contains("run `cargo bench` first"), "{err}");

        write_bench(
            &dir.0.join("criterion"),
            "g/weft",
            "lockfree/g",
            Some("weft"),
            None,
            "null",
            2.0,
        );
        let summary = generate(&dir.0.join("criterion"), &out, &machine("d")).unwrap();
        assert_eq!(summary, "1 result(s) in 1 pattern(s): lockfree");
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(written.starts_with("# Weft benchmarks\n"));
        assert!(written.contains("<!-- pattern:lockfree -->"));
    }

    #[test]
    fn units_are_human() {
        assert_eq!(format_time(812.34), "812.3 ns");
        assert_eq!(format_time(1_234.0), "1.234 µs");
        assert_eq!(format_time(56_780_000.0), "56.78 ms");
        assert_eq!(format_time(2e9), "2.000 s");
        assert_eq!(
            format_rate(Throughput::Elements(1), 123.4e6),
            "123.4 Melem/s"
        );
        assert_eq!(format_rate(Throughput::Elements(1), 12.0), "12.00 elem/s");
        assert_eq!(
            format_rate(Throughput::Bytes(1), 1.5 * 1024.0 * 1024.0 * 1024.0),
            "1.500 GiB/s"
        );
        assert_eq!(
            format_rate(Throughput::BytesDecimal(1), 2.5e6),
            "2.500 MB/s"
        );
        assert_eq!(format_rate(Throughput::Elements(1), 5e12), "5000.0 Gelem/s");
    }

    #[test]
    fn workloads_sort_naturally() {
        let mut names = vec!["n/128", "n/16", "b", "n/2", "a10", "a9", "n/016x"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a9", "a10", "b", "n/2", "n/16", "n/016x", "n/128"]);
    }

    #[test]
    fn a_section_is_dated_by_its_newest_estimate() {
        let at = |secs: u64| Some(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let mut older = m("pool", "s4", "weft", 10.0, None);
        older.measured = at(1_700_000_000);
        let mut newer = m("pool", "s4", "bb8", 20.0, None);
        newer.measured = at(1_700_086_400);
        let section = render_section("pool", &[&older, &newer], &machine("2030-01-01 00:00 UTC"));
        assert!(
            section.contains("_Measured 2023-11-15 22:13 UTC"),
            "{section}"
        );
        // Without file times (hand-made rows), the report's own date.
        let plain = m("pool", "s4", "weft", 10.0, None);
        let section = render_section("pool", &[&plain], &machine("2030-01-01 00:00 UTC"));
        assert!(section.contains("_Measured 2030-01-01 00:00 UTC"));
    }

    #[test]
    fn dates_are_formatted_in_utc() {
        let at = |secs: u64| format_utc(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01 00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(at(1_709_210_096), "2024-02-29 12:34 UTC");
        assert_eq!(at(1_735_689_599), "2024-12-31 23:59 UTC");
    }

    #[test]
    fn machine_reads_cpuinfo() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n";
        assert_eq!(
            cpu_model_from_cpuinfo(cpuinfo).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        assert_eq!(cpu_model_from_cpuinfo("processor: 0\n"), None);
        let mut machine = machine("d");
        assert_eq!(machine.describe(), "2 CPUs, Test CPU");
        machine.cpus = None;
        machine.cpu_model = None;
        assert_eq!(machine.describe(), "unknown CPU count, unknown CPU model");
    }

    #[test]
    fn metrics_only_patterns_get_their_own_kept_section() {
        let dir = crate::TempDir::new("metrics-only");
        let criterion = dir.0.join("criterion");
        let metrics = criterion.join("weft-metrics");
        std::fs::create_dir_all(&metrics).unwrap();
        std::fs::write(
            metrics.join("platform.json"),
            r#"[{"workload":"ingest_per_server_core","implementation":"weft","value":612345.5,"unit":"events/s/core"},
               {"workload":"ingest_per_server_core","implementation":"target","value":500000.0,"unit":"events/s/core"}]"#,
        )
        .unwrap();
        let extras = collect_metrics(&criterion).unwrap();
        assert!(extras["platform"].measured.is_some(), "dated by its file");

        // An older report with a stale platform section and another pattern's section.
        let old_rows = [m("lockfree", "mpmc", "weft", 1.0, None)];
        let (mut previous, _) = render_report(
            &old_rows,
            &machine("2025-12-01 00:00 UTC"),
            None,
            &BTreeMap::new(),
        );
        previous.push_str(
            "\n<!-- pattern:platform -->\n## platform\nstale\n<!-- /pattern:platform -->\n",
        );

        let mut undated = extras.clone();
        undated.get_mut("platform").unwrap().measured = None;
        let (report, kept) = render_report(
            &[],
            &machine("2026-03-03 00:00 UTC"),
            Some(&previous),
            &undated,
        );
        assert_eq!(kept, ["lockfree"]);
        assert!(!report.contains("stale"), "{report}");
        let sections = parse_sections(&report);
        let platform = &sections["platform"];
        assert!(platform.starts_with("<!-- pattern:platform -->\n## platform\n"));
        assert!(platform.contains("_Measured 2026-03-03 00:00 UTC on 2 CPUs, Test CPU"));
        assert!(
            platform.contains("| ingest_per_server_core | **weft** | 612345.5 events/s/core |"),
            "{platform}"
        );
        assert!(platform.contains("| ingest_per_server_core | `target` | 500000 events/s/core |"));
        assert!(platform.ends_with("<!-- /pattern:platform -->\n"));
        assert!(report.find("## lockfree").unwrap() < report.find("## platform").unwrap());

        // A later run without the metrics file keeps the section verbatim.
        let (later, kept) = render_report(
            &old_rows,
            &machine("2026-04-04 00:00 UTC"),
            Some(&report),
            &BTreeMap::new(),
        );
        assert_eq!(kept, ["platform"]);
        assert!(later.contains(platform.as_str()));

        // `generate` accepts a criterion directory that holds only metrics.
        let out = dir.0.join("BENCHMARKS.md");
        let summary = generate(&criterion, &out, &machine("d")).unwrap();
        assert_eq!(summary, "metrics only: platform");
        assert!(
            std::fs::read_to_string(&out)
                .unwrap()
                .contains("<!-- /pattern:platform -->")
        );
    }

    #[test]
    fn metrics_files_become_tables_in_their_section() {
        let dir = crate::TempDir::new("metrics");
        let metrics = dir.0.join("weft-metrics");
        std::fs::create_dir_all(&metrics).unwrap();
        std::fs::write(
            metrics.join("ratelimit.json"),
            r#"[{"workload":"bytes_per_key","implementation":"weft","value":21.0,"unit":"bytes/key"},
               {"workload":"bytes_per_key","implementation":"governor","value":35.7,"unit":"bytes/key"}]"#,
        )
        .unwrap();
        let extras = collect_metrics(&dir.0).unwrap();
        let table = &extras["ratelimit"].table;
        assert!(
            table.contains("| bytes_per_key | **weft** | 21 bytes/key |"),
            "{table}"
        );
        assert!(
            table.contains("| bytes_per_key | `governor` | 35.7 bytes/key |"),
            "{table}"
        );
        std::fs::write(metrics.join("broken.json"), "{").unwrap();
        assert!(collect_metrics(&dir.0).unwrap_err().contains("broken.json"));
    }
}
