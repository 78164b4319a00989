//! Input from text files, in line-aligned chunks.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// An iterator over text files that yields chunks of whole lines of about `chunk_bytes`
/// each, so that a job's splits are a few megabytes of text rather than single lines.
/// A read error ends the iteration and is kept in [`error`](TextChunks::error).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("weft-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("words.txt");
/// # std::fs::write(&path, "a b\nb c\nc c\n").unwrap();
/// use weft_mapreduce::{MapReduce, TextChunks};
///
/// let chunks = TextChunks::new(vec![path], 1 << 20);
/// let counts = MapReduce::new()
///     .run(
///         chunks,
///         |chunk: String, out| {
///             for word in chunk.split_whitespace() {
///                 out.emit(word.to_owned(), 1u32);
///             }
///         },
///         |a, b| *a += b,
///     )?
///     .into_map();
/// assert_eq!(counts["c"], 3);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), weft_mapreduce::JobError>(())
/// ```
#[derive(Debug)]
pub struct TextChunks {
    paths: std::vec::IntoIter<PathBuf>,
    current: Option<BufReader<File>>,
    chunk_bytes: usize,
    error: Option<std::io::Error>,
}

impl TextChunks {
    /// Chunks of about `chunk_bytes` (at least one line each) over `paths`, in order.
    pub fn new(paths: Vec<PathBuf>, chunk_bytes: usize) -> Self {
        TextChunks {
            paths: paths.into_iter(),
            current: None,
            chunk_bytes: chunk_bytes.max(1),
            error: None,
        }
    }

    /// The read error that ended the iteration early, if any.
    pub fn error(&self) -> Option<&std::io::Error> {
        self.error.as_ref()
    }
}

impl Iterator for TextChunks {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut chunk = String::new();
        loop {
            if self.error.is_some() {
                return None;
            }
            if self.current.is_none() {
                match self.paths.next() {
                    Some(path) => match File::open(&path) {
                        Ok(f) => self.current = Some(BufReader::with_capacity(1 << 16, f)),
                        Err(e) => {
                            self.error = Some(e);
                            return None;
                        }
                    },
                    None => return (!chunk.is_empty()).then_some(chunk),
                }
            }
            let Some(reader) = self.current.as_mut() else {
                continue;
            };
            match reader.read_line(&mut chunk) {
                Ok(0) => {
                    // This file is done; go on with the next. A last line without a
                    // newline must not run into the next file's first line.
                    if !chunk.is_empty() && !chunk.ends_with('\n') {
                        chunk.push('\n');
                    }
                    self.current = None;
                }
                Ok(_) => {
                    if chunk.len() >= self.chunk_bytes {
                        return Some(chunk);
                    }
                }
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}
