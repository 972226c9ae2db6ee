//! The credential file: `<data_dir>/devauth/credentials.json` (format in
//! [`crate::devauth::record`]), owner-only (0600, directory 0700), replaced
//! atomically (write a temporary file, fsync, rename, fsync the directory)
//! so a power cut leaves the old file or the new one, never half of one.
//! The records live in memory behind a lock for the gate's checks; a change
//! is written to disk first and takes effect only once durable.
//!
//! A file that does not parse (tampered, truncated by a failing card) is
//! moved aside as `credentials.json.bad` and the gateway starts with no
//! device credentials — closed, not open — and says so in the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::devauth::record::{Credential, Credentials, Holder, Push, Pushed, RecordError};
use crate::devauth::secret;
use crate::model::Time;

/// Why a credential change failed.
#[derive(Debug, thiserror::Error)]
pub enum CredError {
    #[error("{0}")]
    Invalid(#[from] RecordError),
    #[error("{0} already has a credential: revoke it first")]
    Exists(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Random(#[from] secret::NoRandom),
}

/// What a log-in attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok(Holder),
    UnknownUser,
    BadPassword,
}

/// The credentials, shared by the gate, the web UI and `cmd/config`.
#[derive(Clone, Debug)]
pub struct CredentialStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    creds: RwLock<Credentials>,
    /// Serialises changes (read, write the file, swap).
    change: Mutex<()>,
}

/// The file under a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("devauth").join("credentials.json")
}

impl CredentialStore {
    /// Reads the file under `data_dir` (none yet: no credentials).
    pub fn open(data_dir: &Path) -> CredentialStore {
        let path = path_in(data_dir);
        let creds = match std::fs::read(&path) {
            Ok(bytes) => match Credentials::parse(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    let aside = path.with_extension("json.bad");
                    let _ = std::fs::rename(&path, &aside);
                    tracing::error!(file = %path.display(), moved_to = %aside.display(), error = %e,
                        "device credentials file unreadable; starting with none (devices must be given new credentials)");
                    Credentials::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Credentials::default(),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "device credentials file unreadable; starting with none");
                Credentials::default()
            }
        };
        CredentialStore {
            inner: Arc::new(Inner {
                path,
                creds: RwLock::new(creds),
                change: Mutex::new(()),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn read<T>(&self, f: impl FnOnce(&Credentials) -> T) -> T {
        match self.inner.creds.read() {
            Ok(g) => f(&g),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Checks a log-in (constant-time MAC comparison).
    pub fn verify(&self, username: &str, password: &[u8]) -> Verdict {
        self.read(|c| match c.get(username) {
            None => Verdict::UnknownUser,
            Some(cred) => match cred.salt_mac() {
                Ok((salt, mac)) if secret::verify(&salt, &mac, password) => {
                    Verdict::Ok(cred.holder.clone())
                }
                _ => Verdict::BadPassword,
            },
        })
    }

    /// Does `username` still have a credential (revocation check)?
    pub fn has(&self, username: &str) -> bool {
        self.read(|c| c.get(username).is_some())
    }

    pub fn list(&self) -> Vec<Credential> {
        self.read(|c| c.iter().cloned().collect())
    }

    pub fn len(&self) -> usize {
        self.read(|c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes a credential for `holder` and returns its secret (shown once,
    /// never stored). Refused when the holder has one already.
    pub fn create(&self, holder: Holder, by: &str, now: Time) -> Result<String, CredError> {
        let (text, salt) = secret::generate()?;
        let cred = Credential {
            salt: hex::encode(salt),
            mac: hex::encode(secret::mac(&salt, text.as_bytes())),
            holder,
            created_at: now,
            created_by: by.to_string(),
        };
        self.change(|c| {
            let user = cred.holder.username().to_string();
            if c.get(&user).is_some() {
                return Err(CredError::Exists(user));
            }
            c.set(cred)?;
            Ok(())
        })?;
        Ok(text)
    }

    /// Removes the credential of `username`; whether there was one.
    pub fn revoke(&self, username: &str) -> Result<bool, CredError> {
        self.change(|c| Ok(c.revoke(username)))
    }

    /// Applies a `cmd/config` push as one change (all or nothing):
    /// returns (set, revoked).
    pub fn apply_push(&self, push: Push, now: Time) -> Result<(usize, usize), CredError> {
        let mut records = Vec::with_capacity(push.set.len());
        for p in push.set {
            records.push(match p {
                Pushed::Record(c) => c,
                Pushed::Secret { holder, secret: s } => {
                    let salt = secret::salt()?;
                    Credential {
                        salt: hex::encode(salt),
                        mac: hex::encode(secret::mac(&salt, s.as_bytes())),
                        holder,
                        created_at: now,
                        created_by: "remote".into(),
                    }
                }
            });
        }
        self.change(|c| {
            let set = records.len();
            for r in records {
                c.set(r)?;
            }
            let revoked = push.revoke.iter().filter(|u| c.revoke(u)).count();
            Ok((set, revoked))
        })
    }

    /// Runs `f` on a copy, writes the copy durably, then makes it current.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Credentials) -> Result<T, CredError>,
    ) -> Result<T, CredError> {
        let _one = self.inner.change.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.read(|c| c.clone());
        let out = f(&mut next)?;
        write_private(&self.inner.path, &next.to_bytes()).map_err(|source| CredError::Write {
            path: self.inner.path.clone(),
            source,
        })?;
        match self.inner.creds.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        Ok(out)
    }
}

/// Writes `bytes` to `path`, owner-only, atomically and durably.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::model::DeviceId;

    fn pendant() -> Holder {
        Holder::Device(DeviceId::new("pendant").unwrap())
    }

    #[test]
    fn a_created_credential_is_stored_hashed_0600_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s = CredentialStore::open(dir.path());
        let secret = s.create(pendant(), "ui:ann", Time(0)).unwrap();
        assert_eq!(
            s.verify("pendant", secret.as_bytes()),
            Verdict::Ok(pendant())
        );
        assert_eq!(s.verify("pendant", b"guess"), Verdict::BadPassword);
        assert_eq!(s.verify("door", b"x"), Verdict::UnknownUser);
        let text = std::fs::read_to_string(s.path()).unwrap();
        assert!(
            !text.contains(&secret),
            "the secret itself is never written"
        );
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = CredentialStore::open(dir.path());
        assert_eq!(
            again.verify("pendant", secret.as_bytes()),
            Verdict::Ok(pendant())
        );
        assert!(matches!(
            again.create(pendant(), "ui:ann", Time(0)),
            Err(CredError::Exists(_))
        ));
        assert!(again.revoke("pendant").unwrap());
        assert!(!again.revoke("pendant").unwrap());
        assert_eq!(
            CredentialStore::open(dir.path()).verify("pendant", secret.as_bytes()),
            Verdict::UnknownUser
        );
    }

    #[test]
    fn a_tampered_file_is_moved_aside_and_nobody_gets_in() {
        let dir = tempfile::tempdir().unwrap();
        let s = CredentialStore::open(dir.path());
        let secret = s.create(pendant(), "ui:ann", Time(0)).unwrap();
        let text = std::fs::read_to_string(s.path()).unwrap();
        std::fs::write(s.path(), text.replace("\"mac\": \"", "\"mac\": \"zz")).unwrap();
        let after = CredentialStore::open(dir.path());
        assert_eq!(
            after.verify("pendant", secret.as_bytes()),
            Verdict::UnknownUser
        );
        assert!(after.path().with_extension("json.bad").exists());
    }

    #[test]
    fn a_failed_write_changes_nothing_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = CredentialStore::open(dir.path());
        // The directory becomes a file: the write must fail.
        std::fs::write(dir.path().join("devauth"), b"x").unwrap();
        assert!(matches!(
            s.create(pendant(), "ui:ann", Time(0)),
            Err(CredError::Write { .. })
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn a_push_by_secret_lets_the_device_in_and_a_revoke_shuts_it_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = CredentialStore::open(dir.path());
        let push = crate::devauth::record::parse_push(
            &serde_json::json!({"set": [{"device": "pendant", "secret": "0123456789abcdef0123456789"}]}),
            Time(0),
            "remote",
        )
        .unwrap();
        assert_eq!(s.apply_push(push, Time(0)).unwrap(), (1, 0));
        assert_eq!(
            s.verify("pendant", b"0123456789abcdef0123456789"),
            Verdict::Ok(pendant())
        );
        let push = crate::devauth::record::parse_push(
            &serde_json::json!({"revoke": ["pendant"]}),
            Time(0),
            "remote",
        )
        .unwrap();
        assert_eq!(s.apply_push(push, Time(0)).unwrap(), (0, 1));
        assert!(!s.has("pendant"));
    }
}
