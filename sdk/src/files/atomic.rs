//! Atomic file writes: the bytes go to a temporary file beside the target (same file system),
//! are flushed to disk, optionally checked there, and only then renamed over the target. A crash
//! or an error at any point leaves the target as it was or complete, never partial; on error the
//! temporary file is removed.

use crate::error::{Error, Result, Status};
use std::path::{Path, PathBuf};

/// The temporary file a write goes to before the rename: `<path>.<pid>.tmp`, in the same folder.
pub fn tmp_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_checked(path, bytes, |_| Ok(()))
}

/// Writes `bytes` to [`tmp_path_for`]`(path)`, flushes it, runs `check` on that file, and renames
/// it over `path` only when the check passes; returns what the check returned.
pub fn write_atomic_checked<T>(path: &Path, bytes: &[u8], check: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    use std::io::Write;
    let tmp = tmp_path_for(path);
    let io =
        |what: &str, p: &Path, e: std::io::Error| Error::new(Status::Io, format!("cannot {what} {}: {e}", p.display()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        f.write_all(bytes).map_err(|e| io("write", &tmp, e))?;
        f.sync_all().map_err(|e| io("flush", &tmp, e))?;
        drop(f);
        let checked = check(&tmp)?;
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::new(Status::Io, format!("cannot move {} to {}: {e}", tmp.display(), path.display())))?;
        Ok(checked)
    })();
    if result.is_err() && tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
