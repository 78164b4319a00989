//! The synthetic corpus the examples run on, generated once into `target/weft-corpus/`.
//!
//! Text with the statistics of natural language without shipping any: words are built
//! from two-letter syllables (the word of rank `r` spells `r` in base 16, so frequent
//! words are short), drawn with Zipf frequencies (the word of rank `r` has weight
//! `1 / (r + 1)`) from a vocabulary of a million words, in lines of 5 to 15 words. A
//! seeded xorshift generator makes the files identical on every machine: about 30 MB in
//! 4 files, with about half a million distinct words, enough for a word count to outgrow
//! a small memory budget and spill.
//!
//! `benches/mapreduce.rs` has its own copy of the generator (benches cannot share a module
//! with examples); keep the two alike.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// Files in the corpus.
const FILES: usize = 4;
/// Bytes per file (about; a file ends at the first line boundary past this).
const FILE_BYTES: usize = 7_500_000;
/// Distinct words the generator draws from.
const VOCABULARY: usize = 1_000_000;
/// The seed of the first file; file `i` uses `SEED + i`.
const SEED: u64 = 0x5EED_0EF7;

/// The syllables words are built from: 16 of two letters, so a word is its rank in base 16.
const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "so", "ta", "vi", "be", "da", "fu", "go", "hi", "ju", "pe", "ze",
];

/// The directory the corpus lives in: `$CARGO_TARGET_DIR/weft-corpus`, or
/// `target/weft-corpus` in the workspace.
pub(crate) fn dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("weft-corpus")
}

/// The corpus files, generated first if they are not there yet.
///
/// Each file is written under a temporary name and renamed when complete, so an
/// interrupted run never leaves a truncated file that a later run would take as done.
pub(crate) fn ensure() -> io::Result<Vec<PathBuf>> {
    let dir = dir();
    let paths: Vec<PathBuf> = (0..FILES)
        .map(|i| dir.join(format!("part-{i:02}.txt")))
        .collect();
    if paths.iter().all(|p| p.is_file()) {
        return Ok(paths);
    }
    fs::create_dir_all(&dir)?;
    eprintln!(
        "generating a {} MB corpus in {} (once) ...",
        FILES * FILE_BYTES / 1_000_000,
        dir.display()
    );
    let words = Words::new(VOCABULARY);
    for (i, path) in paths.iter().enumerate() {
        if path.is_file() {
            continue;
        }
        let partial = path.with_extension("txt.partial");
        let mut out = BufWriter::new(File::create(&partial)?);
        let mut rng = XorShift::new(SEED + i as u64);
        let mut line = String::new();
        let mut written = 0;
        while written < FILE_BYTES {
            words.line(&mut rng, &mut line);
            line.push('\n');
            out.write_all(line.as_bytes())?;
            written += line.len();
        }
        out.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        fs::rename(&partial, path)?;
    }
    Ok(paths)
}

/// The corpus files, generated on first use, with a message naming the directory if
/// that fails.
pub(crate) fn files() -> Result<Vec<PathBuf>, String> {
    ensure().map_err(|e| format!("cannot generate the corpus in {}: {e}", dir().display()))
}

/// The example's one optional argument, a thread count (default: the CPUs); `program`
/// names the example in the usage message.
pub(crate) fn threads_arg(program: &str) -> Result<usize, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let usage =
        format!("usage: {program} [THREADS]  (a positive integer; default {cpus}, the CPUs)");
    let mut args = std::env::args().skip(1);
    let threads = match args.next() {
        None => cpus,
        Some(a) => match a.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("not a thread count: {a:?}\n{usage}")),
        },
    };
    if args.next().is_some() {
        return Err(usage);
    }
    Ok(threads)
}

/// About `bytes` of lines of 5 to 15 words drawn with Zipf frequencies (rank `r` has
/// weight `1 / (r + 1)`) from `vocabulary` words: the in-memory corpora of
/// `benches/mapreduce.rs`, which includes this module.
#[allow(dead_code)] // used by the bench; the examples read the files `ensure` writes
pub(crate) fn lines(vocabulary: usize, bytes: usize, seed: u64) -> Vec<String> {
    let words = Words::new(vocabulary);
    let mut rng = XorShift::new(seed);
    let (mut out, mut size) = (Vec::new(), 0);
    while size < bytes {
        let mut line = String::new();
        words.line(&mut rng, &mut line);
        size += line.len() + 1;
        out.push(line);
    }
    out
}

/// A vocabulary with Zipf frequencies.
struct Words {
    words: Vec<String>,
    /// `cumulative[r]`: the total weight of ranks `0..=r`.
    cumulative: Vec<f64>,
}

impl Words {
    fn new(vocabulary: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (0..vocabulary)
            .map(|r| {
                total += 1.0 / (r + 1) as f64;
                total
            })
            .collect();
        Words {
            words: (0..vocabulary).map(word).collect(),
            cumulative,
        }
    }

    /// Replaces `line` with 5 to 15 words, separated by spaces.
    fn line(&self, rng: &mut XorShift, line: &mut String) {
        line.clear();
        let total = self.cumulative[self.cumulative.len() - 1];
        for i in 0..5 + rng.next() % 11 {
            let x = rng.unit() * total;
            let rank = self.cumulative.partition_point(|&c| c < x);
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&self.words[rank.min(self.words.len() - 1)]);
        }
    }
}

/// The word of rank `rank`: its base-16 digits as syllables, most significant first.
fn word(mut rank: usize) -> String {
    let mut syllables = Vec::new();
    loop {
        syllables.push(SYLLABLES[rank % 16]);
        rank /= 16;
        if rank == 0 {
            break;
        }
    }
    syllables.reverse();
    syllables.concat()
}

/// xorshift64* (Marsaglia's xorshift, scrambled by a multiply as Vigna proposed): small,
/// fast and the same everywhere.
struct XorShift(u64);

impl XorShift {
    /// A generator whose state is `seed` scrambled by splitmix64, so that nearby seeds
    /// give unrelated streams.
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1) // the state must not be zero
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
