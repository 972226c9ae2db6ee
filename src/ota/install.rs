//! Installing a verified bundle side by side and switching to it.
//!
//! Layout (see [`super::OtaPaths`]):
//! ```text
//! <data_dir>/current              symlink → <releases>/<version>   (what systemd runs)
//! <releases>/<version>/release.json   the signed manifest, written last
//! <releases>/<version>/bin/carebridge ... the payload files
//! <releases>/.staging-<version>-<pid>/  an install in progress
//! <data_dir>/ota-backups/<version>.db   the database as <version> left it
//! <data_dir>/ota-state.json             trial state (trial.rs)
//! ```
//! Install steps, in order ([`InstallStep`]); a power cut after any of them
//! leaves `current` on a complete release and recovery does the right thing:
//! 1. `HeaderVerified` — signature and manifest checked (nothing written yet);
//! 2. `PayloadUnpacked` — payload streamed into the staging dir while hashed;
//!    size and hash matched; files and `release.json` fsynced;
//! 3. `ReleasePlaced` — staging renamed to `<releases>/<version>` (a release
//!    directory without a dot is complete by construction);
//! 4. `DatabaseBackedUp` — `VACUUM INTO` copy of the database (online-safe;
//!    the caller should still quiesce writers so the copy is current);
//! 5. `TrialRecorded` — state file says: `<version>` on trial, previous, backup;
//! 6. `Switched` — `current` renamed over to the new release.
//!
//! Killed before 5: state idle, `current` old → the old release runs.
//! Killed between 5 and 6: recovery sees `current` ≠ trial → `Interrupted`.
//! Killed after 6: recovery starts attempt 1 of the trial.
//!
//! The whole install holds [`lock`] (recovery waits for it too), so a live
//! install is never "between 5 and 6" in anyone's eyes but its own, and the
//! staging directories it removes are only those of dead installs. A refused
//! bundle never leaves its staging directory behind. The manifest's
//! `expires` and `gateways`/`fleets` are checked against the wall clock and
//! [`InstallOptions::target`]; a version this gateway rolled back is refused
//! unless [`InstallOptions::allow_rolled_back`].

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::OtaPaths;
use super::archive::DirSink;
use super::bundle::{self, BundleError, Manifest, Policy, Target};
use super::fsutil::{self, PathError, at};
use super::keys::TrustStore;
use super::recover;
use super::version::Version;

/// The durable steps of an install, for crash tests and progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallStep {
    HeaderVerified,
    PayloadUnpacked,
    ReleasePlaced,
    DatabaseBackedUp,
    TrialRecorded,
    Switched,
}

pub const STEPS: [InstallStep; 6] = [
    InstallStep::HeaderVerified,
    InstallStep::PayloadUnpacked,
    InstallStep::ReleasePlaced,
    InstallStep::DatabaseBackedUp,
    InstallStep::TrialRecorded,
    InstallStep::Switched,
];

/// Why an install failed. `Bundle` refusals are the sender's fault.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Fs(#[from] PathError),
    #[error("version {0} is already the running release")]
    AlreadyCurrent(String),
    #[error("release {0} is still on trial; wait for it to commit or roll back")]
    TrialInProgress(String),
    #[error(
        "version {version} was rolled back on this gateway at {at}; it is not installed again automatically (install a newer version, or by hand: carebridge ota install --allow-rolled-back)"
    )]
    RolledBack { version: String, at: String },
    #[error("database backup {path}: {reason}")]
    Database { path: PathBuf, reason: String },
    #[error(transparent)]
    State(#[from] recover::StateError),
}

impl InstallError {
    /// True when the bundle was refused (exit code 2), false for local failures.
    pub fn is_refusal(&self) -> bool {
        match self {
            InstallError::Bundle(b) => b.is_refusal(),
            InstallError::AlreadyCurrent(_)
            | InstallError::TrialInProgress(_)
            | InstallError::RolledBack { .. } => true,
            _ => false,
        }
    }
}

/// Held while a bundle installs: an exclusive `flock` on
/// `<data_dir>/ota-install.lock`. Every install path (web upload,
/// `cmd/update`, `carebridge ota install`, `ota poll`) goes through
/// [`install_bundle_from_reader`], which takes it for the whole install
/// (staging clean-up included); recovery ([`super::recover::recover`]) and
/// release pruning take it too. So two installs never interleave — in one
/// process or in two — and recovery never sees an install half-way. The
/// kernel drops the lock when the file is closed, also when the process dies.
#[derive(Debug)]
pub struct InstallLock(#[allow(dead_code)] fs::File);

fn lock_file(paths: &OtaPaths) -> Result<(fs::File, PathBuf), PathError> {
    let p = paths.state.with_file_name("ota-install.lock");
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir).map_err(fsutil::at(dir))?;
    }
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(fsutil::at(&p))?;
    Ok((f, p))
}

/// Waits for, then takes, the install lock of the gateway at `paths`.
pub fn lock(paths: &OtaPaths) -> Result<InstallLock, PathError> {
    use std::os::fd::AsRawFd;
    let (f, p) = lock_file(paths)?;
    nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::LockExclusive)
        .map_err(std::io::Error::from)
        .map_err(fsutil::at(&p))?;
    Ok(InstallLock(f))
}

/// Takes the install lock, waiting at most `wait`; `Ok(None)` when another
/// holder kept it that long.
pub fn lock_within(
    paths: &OtaPaths,
    wait: std::time::Duration,
) -> Result<Option<InstallLock>, PathError> {
    use std::os::fd::AsRawFd;
    let (f, p) = lock_file(paths)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(()) => return Ok(Some(InstallLock(f))),
            Err(nix::errno::Errno::EWOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(nix::errno::Errno::EWOULDBLOCK) => return Ok(None),
            Err(e) => return Err(fsutil::at(&p)(std::io::Error::from(e))),
        }
    }
}

/// Device-side settings of an install.
#[derive(Clone, Copy)]
pub struct InstallOptions<'a> {
    /// `std::env::consts::ARCH` normally; tests pass others.
    pub arch: &'a str,
    pub max_payload: u64,
    /// Called after each durable step (crash tests, progress reporting).
    pub on_step: Option<&'a dyn Fn(InstallStep)>,
    /// This gateway's id and fleets for the manifest's `gateways`/`fleets`;
    /// `None` only where no configuration is known (tests).
    pub target: Option<&'a Target>,
    /// Install a version this gateway rolled back (a person asked for it
    /// explicitly); automatic paths (poll, `cmd/update`, web) never set it.
    pub allow_rolled_back: bool,
    /// The clock can be believed for a bundle's `expires` (see
    /// [`super::clock_trusted`]; `ota install --trust-clock`).
    pub clock_trusted: bool,
}

impl std::fmt::Debug for InstallOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallOptions")
            .field("arch", &self.arch)
            .field("max_payload", &self.max_payload)
            .field("target", &self.target)
            .field("allow_rolled_back", &self.allow_rolled_back)
            .field("clock_trusted", &self.clock_trusted)
            .finish_non_exhaustive()
    }
}

/// The result of a successful install: the gateway should now restart into it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub version: String,
    pub previous: Option<String>,
    pub db_backup: Option<PathBuf>,
    pub files: usize,
}

/// The version `current` points at, if it names a complete release.
pub fn current_version(paths: &OtaPaths) -> Option<String> {
    let target = fs::read_link(&paths.current).ok()?;
    let name = target.file_name()?.to_str()?.to_string();
    paths
        .release(&name)
        .join("release.json")
        .is_file()
        .then_some(name)
}

/// The manifest a release was installed from.
pub fn release_manifest(paths: &OtaPaths, version: &str) -> Result<Manifest, PathError> {
    let p = paths.release(version).join("release.json");
    let text = fs::read(&p).map_err(at(&p))?;
    serde_json::from_slice(&text).map_err(|e| PathError {
        path: p,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// The version running now: `current`'s, else this binary's (factory install).
pub fn installed_version(paths: &OtaPaths) -> Option<Version> {
    current_version(paths)
        .and_then(|v| Version::parse(&v).ok())
        .or_else(|| Version::parse(env!("CARGO_PKG_VERSION")).ok())
}

/// Points `current` at an installed release.
pub fn switch_to(paths: &OtaPaths, version: &str) -> Result<(), PathError> {
    fsutil::switch_symlink(&paths.current, &paths.release(version))
}

fn fsync_tree(dir: &Path) -> Result<(), PathError> {
    for e in fs::read_dir(dir).map_err(at(dir))? {
        let e = e.map_err(at(dir))?;
        if e.file_type().map_err(at(dir))?.is_dir() {
            fsync_tree(&e.path())?;
        }
    }
    fsutil::fsync_dir(dir)
}

/// Removes staging directories left by installs that died. Called with the
/// install lock held: every install and the factory seeding of recovery
/// stage only under that lock, so no staging directory but the caller's
/// (`keep`) can belong to a live installer.
fn remove_stale_staging(releases: &Path, keep: Option<&Path>) {
    if let Ok(rd) = fs::read_dir(releases) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".staging-")
                && keep != Some(e.path().as_path())
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Copies the database with `VACUUM INTO` (a consistent snapshot even with
/// other connections open), then renames it into place durably.
pub fn backup_database(db: &Path, dest: &Path) -> Result<(), InstallError> {
    let err = |reason: String| InstallError::Database {
        path: dest.to_path_buf(),
        reason,
    };
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let tmp = dest.with_extension("db.partial");
    let _ = fs::remove_file(&tmp);
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| err(e.to_string()))?;
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| err("path is not UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [tmp_str])
        .map_err(|e| err(e.to_string()))?;
    drop(conn);
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(at(&tmp))?;
    fs::rename(&tmp, dest).map_err(at(dest))?;
    if let Some(dir) = dest.parent() {
        fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

/// Puts a backup back in place of the database. The WAL and shared-memory
/// files of the abandoned database are removed first: replaying them onto
/// the restored file would corrupt it.
pub fn restore_database(backup: &Path, db: &Path) -> Result<(), PathError> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&p)(e)),
        }
    }
    fsutil::atomic_copy(backup, db)
}

/// Verifies `reader` as a bundle and installs it as the new release on trial.
/// The caller quiesces database writers for the duration (the backup step)
/// and restarts the service afterwards so the new release starts.
pub fn install_bundle_from_reader<R: Read>(
    reader: &mut R,
    paths: &OtaPaths,
    keys: &TrustStore,
    opts: &InstallOptions<'_>,
) -> Result<Installed, InstallError> {
    let step = |s: InstallStep| {
        if let Some(f) = opts.on_step {
            f(s);
        }
    };
    let _one_at_a_time = lock(paths)?;
    let state = recover::load_state(&paths.state)?;
    if let Some(t) = &state.trial {
        return Err(InstallError::TrialInProgress(t.version.clone()));
    }
    let current = current_version(paths);
    let policy = Policy {
        arch: opts.arch.to_string(),
        installed: installed_version(paths),
        max_payload: opts.max_payload,
        now: Some(crate::wall::now()),
        clock_trusted: opts.clock_trusted,
        target: opts.target.cloned(),
    };
    let manifest = bundle::read_header(reader, keys, &policy)?;
    let version = Version::parse(&manifest.version)
        .map_err(BundleError::BadManifest)?
        .to_string();
    if current.as_deref() == Some(version.as_str()) {
        return Err(InstallError::AlreadyCurrent(version));
    }
    if let Some(at) = state.rolled_back_at(&version)
        && !opts.allow_rolled_back
    {
        return Err(InstallError::RolledBack {
            version,
            at: at.to_rfc3339(),
        });
    }
    step(InstallStep::HeaderVerified);

    fs::create_dir_all(&paths.releases).map_err(at(&paths.releases))?;
    remove_stale_staging(&paths.releases, None);
    let staging = paths
        .releases
        .join(format!(".staging-{version}-{}", std::process::id()));
    fs::create_dir(&staging).map_err(at(&staging))?;
    // Whatever goes wrong while staging (a refused payload, a full disk),
    // the staging directory goes with it.
    let staged = stage(reader, &manifest, &staging);
    let entries = match staged {
        Ok(e) => e,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    step(InstallStep::PayloadUnpacked);

    let dest = paths.release(&version);
    if dest.exists() {
        // A leftover of an earlier, abandoned install of the same version
        // (never `current`: checked above; never on trial: none is).
        fs::remove_dir_all(&dest).map_err(at(&dest))?;
    }
    fs::rename(&staging, &dest).map_err(at(&dest))?;
    fsutil::fsync_dir(&paths.releases)?;
    step(InstallStep::ReleasePlaced);

    let db_backup = if paths.db.exists() {
        let name = current.clone().unwrap_or_else(|| "factory".into());
        let b = paths.backups.join(format!("{name}.db"));
        backup_database(&paths.db, &b)?;
        Some(b)
    } else {
        None
    };
    step(InstallStep::DatabaseBackedUp);

    // Under the state lock too: the running daemon's health reports and
    // report acknowledgements rewrite the same file.
    let now = crate::wall::now();
    recover::update_state(paths, |s| {
        if let Some(t) = &s.trial {
            return Err(recover::StateError::Corrupt {
                path: paths.state.clone(),
                reason: format!("release {} went on trial during this install", t.version),
            });
        }
        s.begin_trial(&version, current.clone(), db_backup.clone(), now);
        Ok(())
    })?;
    step(InstallStep::TrialRecorded);

    switch_to(paths, &version)?;
    step(InstallStep::Switched);

    Ok(Installed {
        version,
        previous: current,
        db_backup,
        files: entries.len(),
    })
}

/// Streams the payload into `staging` and writes `release.json` beside it,
/// everything fsynced.
fn stage<R: Read>(
    reader: &mut R,
    manifest: &Manifest,
    staging: &Path,
) -> Result<Vec<super::archive::EntryHeader>, InstallError> {
    let entries = bundle::read_payload(reader, manifest, &mut DirSink::new(staging))?;
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    fsutil::atomic_write(&staging.join(super::archive::MANIFEST_NAME), &json)?;
    fsync_tree(staging)?;
    Ok(entries)
}

/// Removes old releases, keeping `current`, any release named in the state
/// file, and the newest `keep` releases.
pub fn prune_releases(paths: &OtaPaths, keep: usize) -> Result<Vec<String>, PathError> {
    // Never under an install's feet: skip this time if one runs.
    let Some(_lock) = lock_within(paths, std::time::Duration::ZERO)? else {
        return Ok(Vec::new());
    };
    let state = recover::load_state(&paths.state).unwrap_or_default();
    let mut protect: Vec<String> = current_version(paths).into_iter().collect();
    if let Some(t) = &state.trial {
        protect.push(t.version.clone());
        protect.extend(t.previous.clone());
    }
    let mut versions: Vec<Version> = Vec::new();
    for e in fs::read_dir(&paths.releases)
        .map_err(at(&paths.releases))?
        .flatten()
    {
        if let Some(v) = e.file_name().to_str().and_then(|n| Version::parse(n).ok()) {
            versions.push(v);
        }
    }
    versions.sort();
    versions.reverse();
    let mut removed = Vec::new();
    for v in versions.into_iter().skip(keep) {
        let name = v.to_string();
        if protect.contains(&name) {
            continue;
        }
        let dir = paths.release(&name);
        fs::remove_dir_all(&dir).map_err(at(&dir))?;
        removed.push(name);
    }
    Ok(removed)
}
