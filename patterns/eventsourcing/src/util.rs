//! Small helpers shared by the stores.

use std::time::{Duration, Instant};

use weft_sync::{Condvar, MutexGuard};

/// Waits on `condvar` while `blocked(&state)` holds, for at most `timeout` in total
/// (spurious and unrelated wake-ups do not end the wait early). Returns the guard.
pub(crate) fn wait_while<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    timeout: Duration,
    mut blocked: impl FnMut(&T) -> bool,
) -> MutexGuard<'a, T> {
    // A real deadline, not a Clock: this bounds a blocking wait on a condition variable
    // that an append signals; no outcome depends on the timeout elapsing.
    let deadline = Instant::now().checked_add(timeout);
    while blocked(&guard) {
        match deadline {
            None => guard = condvar.wait(guard),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                guard = condvar.wait_timeout(guard, deadline - now).0;
            }
        }
    }
    guard
}

/// A file name for an arbitrary string: ASCII letters, digits, `-` and `_` stay, every
/// other byte becomes `%XX`, so no name can climb out of its directory or collide.
pub(crate) fn file_name_for(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces the file at `path` with `bytes` atomically and durably: writes a temporary
/// file beside it, fsyncs it, renames it over `path`, then fsyncs the directory.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), crate::Error> {
    use std::io::Write;
    let io = |what: &str, e| crate::Error::io(format!("{what} {}", path.display()), e);
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| io("creating a temporary for", e))?;
    file.write_all(bytes).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io("renaming into", e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// A directory of small files, one per name, each replaced atomically: the storage of
/// the file snapshot and checkpoint stores.
#[derive(Debug, Clone)]
pub(crate) struct FileDir {
    dir: std::path::PathBuf,
    extension: &'static str,
}

impl FileDir {
    /// Uses (and creates if needed) `dir`, naming files `<escaped name>.<extension>`.
    pub(crate) fn open(
        dir: &std::path::Path,
        extension: &'static str,
    ) -> Result<Self, crate::Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::Error::io(format!("creating {}", dir.display()), e))?;
        Ok(FileDir {
            dir: dir.to_path_buf(),
            extension,
        })
    }

    /// The file of `name`.
    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir
            .join(format!("{}.{}", file_name_for(name), self.extension))
    }

    /// The contents of the file of `name`, or `None` if it does not exist.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>, crate::Error> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Replaces the file of `name` with `bytes`, atomically and durably.
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), crate::Error> {
        write_atomically(&self.path(name), bytes)
    }
}

/// fsyncs a directory so a file created or renamed in it survives a power loss.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), crate::Error> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir)
            .map_err(|e| crate::Error::io(format!("opening {}", dir.display()), e))?;
        d.sync_all()
            .map_err(|e| crate::Error::io(format!("syncing {}", dir.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
