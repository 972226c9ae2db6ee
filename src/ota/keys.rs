//! Signing keys: generation, the trusted-key directory, and revocation.
//!
//! Layout of the trusted-key directory (default `/etc/carebridge/keys/`):
//! - `<key_id>.pub` — one line, the 32-byte Ed25519 public key in lowercase
//!   hex (64 characters; an optional `ed25519:` prefix is accepted). Several
//!   keys may be trusted at once, which is how keys are rotated: ship the new
//!   `.pub` in one update, sign with it in the next.
//! - `<key_id>.revoked` — an (empty) file: the key is refused even if its
//!   `.pub` is still there;
//! - `revoked` — optional list of revoked key ids, one per line, `#` comments.
//!
//! Invariant: a key id is 1–64 of `[A-Za-z0-9._-]` and is the file stem, so
//! an id read from a bundle can never name a path outside the directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Why a key could not be generated, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid Ed25519 {what}")]
    Malformed { path: PathBuf, what: &'static str },
    #[error("key id {0:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadId(String),
    #[error("cannot generate a key: the system random source failed")]
    Random,
}

/// Checks a key id's alphabet (it becomes a file name).
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Files written by [`generate`].
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub key_id: String,
    pub private_path: PathBuf,
    pub public_path: PathBuf,
}

/// Generates an Ed25519 key pair: `<dir>/<id>.pk8` (PKCS#8 v2 DER, mode 0600,
/// never overwritten) and `<dir>/<id>.pub` (hex public key, for the keys dir).
pub fn generate(dir: &Path, key_id: &str) -> Result<GeneratedKey, KeyError> {
    if !valid_key_id(key_id) {
        return Err(KeyError::BadId(key_id.to_string()));
    }
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Random)?;
    fs::create_dir_all(dir).map_err(io(dir))?;
    let private_path = dir.join(format!("{key_id}.pk8"));
    let public_path = dir.join(format!("{key_id}.pub"));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private_path)
        .map_err(io(&private_path))?;
    f.write_all(pkcs8.as_ref()).map_err(io(&private_path))?;
    f.sync_all().map_err(io(&private_path))?;
    let line = format!("ed25519:{}\n", hex::encode(pair.public_key().as_ref()));
    let mut p = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&public_path)
        .map_err(io(&public_path))?;
    p.write_all(line.as_bytes()).map_err(io(&public_path))?;
    p.sync_all().map_err(io(&public_path))?;
    Ok(GeneratedKey {
        key_id: key_id.to_string(),
        private_path,
        public_path,
    })
}

/// Loads a PKCS#8 private key written by [`generate`].
pub fn load_private(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let der = fs::read(path).map_err(io(path))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
        what: "PKCS#8 private key",
    })
}

/// Parses the text of a `.pub` file into the 32 raw key bytes.
pub fn parse_public(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let t = t.strip_prefix("ed25519:").unwrap_or(t);
    hex::FromHex::from_hex(t).ok()
}

/// What the trusted-key directory says about a key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStatus {
    Trusted([u8; 32]),
    Revoked,
    Unknown,
}

/// The trusted public keys and the revocation list, read once.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: BTreeMap<String, [u8; 32]>,
    revoked: BTreeSet<String>,
}

impl TrustStore {
    /// An in-memory store (tests, `verify --pubkey`).
    pub fn from_keys(keys: impl IntoIterator<Item = (String, [u8; 32])>) -> Self {
        TrustStore {
            keys: keys.into_iter().collect(),
            revoked: BTreeSet::new(),
        }
    }

    /// Marks a key id revoked.
    pub fn revoke(&mut self, key_id: &str) {
        self.revoked.insert(key_id.to_string());
    }

    /// Reads `*.pub`, `*.revoked` and `revoked` from `dir`. A malformed
    /// `.pub` file is an error (a silently ignored key would be a surprise
    /// during rotation).
    pub fn load(dir: &Path) -> Result<TrustStore, KeyError> {
        let mut store = TrustStore::default();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name == "revoked" {
                let text = fs::read_to_string(&path).map_err(io(&path))?;
                for line in text.lines() {
                    let id = line.split('#').next().unwrap_or("").trim();
                    if !id.is_empty() {
                        store.revoked.insert(id.to_string());
                    }
                }
            } else if let Some(id) = name.strip_suffix(".revoked") {
                store.revoked.insert(id.to_string());
            } else if let Some(id) = name.strip_suffix(".pub") {
                if !valid_key_id(id) {
                    continue;
                }
                let text = fs::read_to_string(&path).map_err(io(&path))?;
                let key = parse_public(&text).ok_or_else(|| KeyError::Malformed {
                    path: path.clone(),
                    what: "public key (expected 64 hex characters)",
                })?;
                store.keys.insert(id.to_string(), key);
            }
        }
        Ok(store)
    }

    /// Trusted, revoked or unknown. Revocation wins over presence.
    pub fn status(&self, key_id: &str) -> KeyStatus {
        if self.revoked.contains(key_id) {
            return KeyStatus::Revoked;
        }
        match self.keys.get(key_id) {
            Some(k) => KeyStatus::Trusted(*k),
            None => KeyStatus::Unknown,
        }
    }

    /// The trusted (non-revoked) key ids.
    pub fn trusted_ids(&self) -> Vec<String> {
        self.keys
            .keys()
            .filter(|k| !self.revoked.contains(*k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_writes_private_key_0600_and_a_loadable_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let k = generate(dir.path(), "ops-2026").unwrap();
        let mode = fs::metadata(&k.private_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pair = load_private(&k.private_path).unwrap();
        let store = TrustStore::load(dir.path()).unwrap();
        assert_eq!(
            store.status("ops-2026"),
            KeyStatus::Trusted(pair.public_key().as_ref().try_into().unwrap())
        );
        assert!(
            generate(dir.path(), "ops-2026").is_err(),
            "never overwrites"
        );
    }

    #[test]
    fn revoked_file_and_revoked_list_both_win_over_the_pub_file() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "a").unwrap();
        generate(dir.path(), "b").unwrap();
        generate(dir.path(), "c").unwrap();
        fs::write(dir.path().join("a.revoked"), "").unwrap();
        fs::write(dir.path().join("revoked"), "# compromised\nb\n").unwrap();
        let store = TrustStore::load(dir.path()).unwrap();
        assert_eq!(store.status("a"), KeyStatus::Revoked);
        assert_eq!(store.status("b"), KeyStatus::Revoked);
        assert!(matches!(store.status("c"), KeyStatus::Trusted(_)));
        assert_eq!(store.status("zzz"), KeyStatus::Unknown);
        assert_eq!(store.trusted_ids(), vec!["c".to_string()]);
    }

    #[test]
    fn malformed_public_key_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.pub"), "not hex").unwrap();
        let e = TrustStore::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("x.pub"), "{e}");
    }

    #[test]
    fn key_ids_cannot_be_paths() {
        for bad in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(!valid_key_id(bad), "{bad}");
        }
        assert!(valid_key_id("ops-2026.v2_a"));
    }
}
