//! Crash-safe file-system primitives used by install and recovery.
//!
//! Invariants: a file written with [`atomic_write`] is either the old or the
//! new content after a power cut (temp file, fsync, rename, directory fsync);
//! [`switch_symlink`] replaces a symlink in one `rename(2)`, so readers see the
//! old or the new target, never a missing link.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O failure with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PathError {
    pub path: PathBuf,
    pub source: io::Error,
}

pub fn at(path: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
    move |source| PathError {
        path: path.to_path_buf(),
        source,
    }
}

/// Fsyncs a directory so a rename or create inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<(), PathError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn temp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically and durably.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), PathError> {
    let tmp = temp_name(path, "tmp");
    let mut f = fs::File::create(&tmp).map_err(at(&tmp))?;
    f.write_all(bytes).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(at(path))?;
    fsync_dir(parent_of(path))
}

/// Copies `from` to `to` atomically and durably.
pub fn atomic_copy(from: &Path, to: &Path) -> Result<(), PathError> {
    let tmp = temp_name(to, "tmp");
    fs::copy(from, &tmp).map_err(at(from))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(at(&tmp))?;
    fs::rename(&tmp, to).map_err(at(to))?;
    fsync_dir(parent_of(to))
}

/// Points `link` at `target` atomically (symlink to a temp name, rename over).
pub fn switch_symlink(link: &Path, target: &Path) -> Result<(), PathError> {
    let tmp = temp_name(link, "new");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(at(&tmp)(e)),
    }
    std::os::unix::fs::symlink(target, &tmp).map_err(at(&tmp))?;
    fs::rename(&tmp, link).map_err(at(link))?;
    fsync_dir(parent_of(link))
}

/// Removes leftovers of interrupted writes (`.<name>.tmp-*`, `.<name>.new-*`)
/// next to `path`.
pub fn clean_temps(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.");
    if let Ok(rd) = fs::read_dir(parent_of(path)) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn switch_symlink_replaces_an_existing_link() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("current");
        switch_symlink(&link, Path::new("releases/1.0.0")).unwrap();
        switch_symlink(&link, Path::new("releases/1.1.0")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("releases/1.1.0"));
    }
}
