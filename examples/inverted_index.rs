//! An inverted index with weft-mapreduce: for every word of the corpus, the sorted list of
//! the lines (documents) it occurs on.
//!
//! ```text
//! cargo run --release --example inverted_index [-- <threads>]
//! ```
//!
//! Runs on the same 30 MB synthetic corpus as the `wordcount` example (generated into
//! `target/weft-corpus/` on first use). Each line is a document, numbered from 0 across
//! the files in order. `map` emits `(word, vec![line])` for every word of a line,
//! `combine` appends one posting list to another, and each list is sorted and deduplicated
//! once the job is done (the workers combine in no fixed order). The example prints the
//! index's size, the most frequent terms, a few rare terms' posting lists, and answers an
//! AND query by intersecting two posting lists; the postings of the query's terms are
//! checked against a plain scan of the text.
//!
//! `threads` defaults to the number of CPUs.

mod corpus;

use std::process::ExitCode;
use std::time::Instant;

use weft::mapreduce::MapReduce;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inverted_index: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let threads = corpus::threads_arg("inverted_index")?;
    let paths = corpus::files()?;
    let mut texts = Vec::with_capacity(paths.len());
    for p in &paths {
        texts.push(
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        );
    }
    let lines: Vec<&str> = texts.iter().flat_map(|t| t.lines()).collect();
    let docs = u32::try_from(lines.len()).map_err(|_| "more than 2^32 lines".to_owned())?;
    println!(
        "corpus: {} files, {} lines; {threads} threads",
        paths.len(),
        lines.len()
    );

    let start = Instant::now();
    let output = MapReduce::new()
        .threads(threads)
        .run(
            lines.iter().copied().zip(0..docs),
            |(line, doc): (&str, u32), out| {
                for word in line.split_whitespace() {
                    out.emit(word.to_owned(), vec![doc]);
                }
            },
            |postings: &mut Vec<u32>, mut more| postings.append(&mut more),
        )
        .map_err(|e| format!("building the index failed: {e}"))?;
    let counters = *output.counters();
    let mut index = output.into_sorted_vec();
    for (_, postings) in &mut index {
        postings.sort_unstable();
        postings.dedup();
    }
    let elapsed = start.elapsed();

    let postings: usize = index.iter().map(|(_, p)| p.len()).sum();
    println!(
        "index: {} terms, {postings} postings, built in {:.3} s",
        index.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "counters: splits {}, map input records {}, map output records {}, reduce output records {}",
        counters.splits,
        counters.map_input_records,
        counters.map_output_records,
        counters.reduce_output_records
    );

    // The most frequent terms, by document frequency.
    let mut by_df: Vec<&(String, Vec<u32>)> = index.iter().collect();
    by_df.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    println!("\nmost frequent terms (lines containing them):");
    for (term, p) in by_df.iter().take(5) {
        println!(
            "  {term:<8} {:>8} ({:.1}% of lines)",
            p.len(),
            p.len() as f64 * 100.0 / f64::from(docs)
        );
    }

    // A few rare terms' full posting lists (the index is sorted by term).
    println!("\nsome rare terms:");
    for (term, p) in index
        .iter()
        .filter(|(_, p)| (2..=4).contains(&p.len()))
        .take(5)
    {
        println!("  {term:<12} -> {p:?}");
    }

    // An AND query over two mid-frequency terms.
    let (Some(&a), Some(&b)) = (by_df.get(40), by_df.get(60)) else {
        return Err("the corpus has too few distinct words for the query".to_owned());
    };
    let hits = intersect(&a.1, &b.1);
    println!(
        "\nquery `{} AND {}`: {} and {} lines, {} with both; first: {:?}",
        a.0,
        b.0,
        a.1.len(),
        b.1.len(),
        hits.len(),
        &hits[..hits.len().min(8)]
    );

    // Check the query's posting lists against a scan of the text.
    for (term, p) in [a, b] {
        let scanned: Vec<u32> = lines
            .iter()
            .zip(0u32..)
            .filter(|(line, _)| line.split_whitespace().any(|w| w == term))
            .map(|(_, doc)| doc)
            .collect();
        if &scanned != p {
            return Err(format!(
                "the posting list of {term:?} does not match a scan of the text"
            ));
        }
    }
    println!("posting lists of the query's terms match a scan of the text");
    Ok(())
}

/// The ids in both sorted lists, by a linear merge.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
