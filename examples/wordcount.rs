//! Word count with weft-mapreduce over a 30 MB synthetic corpus, in memory and spilling.
//!
//! ```text
//! cargo run --release --example wordcount [-- <threads>]
//! ```
//!
//! Generates the corpus into `target/weft-corpus/` on first use (see `corpus/mod.rs`),
//! reads it with [`TextChunks`] in line-aligned chunks of 1 MiB (one chunk per split),
//! counts the words with map-side combining, and prints the top words, the totals, the
//! elapsed time and throughput, and the job's counters. It then counts again under an
//! 8 MiB memory budget, which makes the workers spill sorted runs to disk and merge them
//! back, and checks that both runs give the same counts.
//!
//! `threads` defaults to the number of CPUs.

mod corpus;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use weft::mapreduce::{Counters, FastMap, MapReduce, TextChunks};

/// Bytes of text per input chunk (one chunk is one split).
const CHUNK_BYTES: usize = 1 << 20;
/// The memory budget of the second run, small enough to force spilling.
const SPILL_BUDGET: usize = 8 << 20;
/// Words shown in the top list.
const TOP: usize = 10;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wordcount: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let threads = corpus::threads_arg("wordcount")?;
    let paths = corpus::files()?;
    let mut bytes = 0u64;
    for p in &paths {
        bytes += std::fs::metadata(p)
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?
            .len();
    }
    println!(
        "corpus: {} files, {:.1} MB in {}; {threads} threads",
        paths.len(),
        bytes as f64 / 1e6,
        corpus::dir().display()
    );

    let job = MapReduce::new().threads(threads).split_size(1);
    let in_memory = count_words(&job, &paths)?;
    println!("\n== in memory ==");
    in_memory.print(bytes, true);

    let spilling = count_words(&job.clone().memory_budget(SPILL_BUDGET), &paths)?;
    println!("\n== memory budget {} MiB ==", SPILL_BUDGET >> 20);
    spilling.print(bytes, false);

    if spilling.counts != in_memory.counts {
        return Err("the spilling run's counts differ from the in-memory run's".to_owned());
    }
    println!(
        "\nboth runs agree on all {} words",
        thousands(in_memory.counts.len() as u64)
    );
    Ok(())
}

/// One word count's result.
struct Run {
    counts: FastMap<String, u64>,
    counters: Counters,
    elapsed: Duration,
}

/// Counts the words of the files at `paths` with `job`.
fn count_words(job: &MapReduce, paths: &[PathBuf]) -> Result<Run, String> {
    let mut chunks = TextChunks::new(paths.to_vec(), CHUNK_BYTES);
    let start = Instant::now();
    let output = job
        .run(
            &mut chunks,
            |chunk: String, out| {
                for word in chunk.split_whitespace() {
                    out.emit(word.to_owned(), 1u64);
                }
            },
            |count, n| *count += n,
        )
        .map_err(|e| format!("the word count failed: {e}"))?;
    // A read error ends the input early; the job cannot tell, so ask the input.
    if let Some(e) = chunks.error() {
        return Err(format!("reading the corpus failed: {e}"));
    }
    let counters = *output.counters();
    let counts = output.into_map();
    Ok(Run {
        counts,
        counters,
        elapsed: start.elapsed(),
    })
}

impl Run {
    fn print(&self, bytes: u64, top: bool) {
        let total: u64 = self.counts.values().sum();
        if top {
            let mut words: Vec<(&String, &u64)> = self.counts.iter().collect();
            words.sort_unstable_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            println!("top {TOP} words:");
            for (i, (word, n)) in words.iter().take(TOP).enumerate() {
                println!(
                    "  {:>2}. {word:<8} {:>10} ({:.2}%)",
                    i + 1,
                    thousands(**n),
                    **n as f64 * 100.0 / total as f64
                );
            }
        }
        let secs = self.elapsed.as_secs_f64();
        println!(
            "words: {} total, {} distinct",
            thousands(total),
            thousands(self.counts.len() as u64)
        );
        println!("time: {:.3} s, {:.1} MB/s", secs, bytes as f64 / 1e6 / secs);
        let c = &self.counters;
        println!(
            "counters: splits {}, map input records {}, map output records {}, \
             spilled records {} ({} runs, {:.1} MB), reduce output records {}",
            thousands(c.splits),
            thousands(c.map_input_records),
            thousands(c.map_output_records),
            thousands(c.spilled_records),
            thousands(c.spill_runs),
            c.spilled_bytes as f64 / 1e6,
            thousands(c.reduce_output_records)
        );
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}
