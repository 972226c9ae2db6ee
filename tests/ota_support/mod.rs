//! Shared helpers for the OTA integration tests: keys, bundles whose
//! `bin/carebridge` is a small shell script written by the test, and a
//! data directory with a first release installed and committed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use carebridge::model::Time;
use carebridge::ota::OtaPaths;
use carebridge::ota::bundle::{self, EntrySource, ManifestInput, PayloadEntry};
use carebridge::ota::install::{self, InstallOptions, Installed};
use carebridge::ota::keys::{self, TrustStore};
use carebridge::ota::recover;
use carebridge::ota::trial::TrialPolicy;
use ring::signature::Ed25519KeyPair;

pub const ARCH: &str = "x86_64";
pub const MAX: u64 = 1 << 20;

pub struct Signer {
    pub id: String,
    pub pair: Ed25519KeyPair,
    pub private: PathBuf,
}

/// A keys directory (trusted `.pub` files) and the signers that made them.
pub struct Keyring {
    pub dir: PathBuf,
    pub signers: Vec<Signer>,
}

impl Keyring {
    pub fn new(root: &Path, ids: &[&str]) -> Keyring {
        let dir = root.join("keys");
        let secret = root.join("secret");
        let signers = ids
            .iter()
            .map(|id| {
                let k = keys::generate(&secret, id).unwrap();
                fs::create_dir_all(&dir).unwrap();
                fs::copy(&k.public_path, dir.join(format!("{id}.pub"))).unwrap();
                Signer {
                    id: id.to_string(),
                    pair: keys::load_private(&k.private_path).unwrap(),
                    private: k.private_path,
                }
            })
            .collect();
        Keyring { dir, signers }
    }
    pub fn store(&self) -> TrustStore {
        TrustStore::load(&self.dir).unwrap()
    }
    pub fn signer(&self) -> &Signer {
        &self.signers[0]
    }
}

/// The manifest fields of a normal upgrade bundle.
pub fn input(version: &str) -> ManifestInput {
    ManifestInput {
        version: version.into(),
        arch: ARCH.into(),
        min_version: None,
        allow_downgrade: false,
        created: Some("2026-11-23T10:00:00Z".into()),
        expires: None,
        gateways: Vec::new(),
        fleets: Vec::new(),
    }
}

/// A bundle whose binary is `script` plus a migration file.
pub fn bundle_with(s: &Signer, inp: &ManifestInput, script: &str) -> Vec<u8> {
    let entries = vec![
        PayloadEntry {
            name: "bin/carebridge".into(),
            executable: true,
            source: EntrySource::Bytes(script.as_bytes().to_vec()),
        },
        PayloadEntry {
            name: "migrations/0001.sql".into(),
            executable: false,
            source: EntrySource::Bytes(b"create table if not exists t(v);".to_vec()),
        },
    ];
    let mut out = Vec::new();
    bundle::write_bundle(&s.pair, &s.id, inp, &entries, &mut out).unwrap();
    out
}

pub fn bundle(s: &Signer, version: &str, script: &str) -> Vec<u8> {
    bundle_with(s, &input(version), script)
}

/// Scripts standing in for carebridge builds. Each writes what it is doing to
/// `$CB_OUT` (`serving <version>`) and its health to `$CB_HEALTH`.
pub fn healthy_script(version: &str) -> String {
    format!(
        "#!/bin/sh\necho \"serving {version}\" >> \"$CB_OUT\"\nwhile true; do echo healthy > \"$CB_HEALTH\"; sleep 0.05; done\n"
    )
}
pub const CRASH_SCRIPT: &str = "#!/bin/sh\necho crashing >> \"$CB_OUT\"\nexit 1\n";
pub const HANG_SCRIPT: &str = "#!/bin/sh\necho hanging >> \"$CB_OUT\"\nexec sleep 600\n";
pub const UNHEALTHY_SCRIPT: &str = "#!/bin/sh\necho degraded >> \"$CB_OUT\"\nwhile true; do echo unhealthy > \"$CB_HEALTH\"; sleep 0.05; done\n";

pub fn opts() -> InstallOptions<'static> {
    InstallOptions {
        arch: ARCH,
        max_payload: MAX,
        on_step: None,
        target: None,
        allow_rolled_back: false,
        clock_trusted: true,
    }
}

pub fn policy() -> TrialPolicy {
    TrialPolicy {
        trial_period: std::time::Duration::from_secs(60),
        commit_timeout: std::time::Duration::from_secs(300),
        max_attempts: 3,
    }
}

pub fn install_bytes(paths: &OtaPaths, keys: &TrustStore, b: &[u8]) -> Installed {
    install::install_bundle_from_reader(&mut &b[..], paths, keys, &opts()).unwrap()
}

/// A data dir with release 1.0.0 installed, started once and committed, and
/// a SQLite database holding `v1-data`.
pub fn with_v1(root: &Path, kr: &Keyring) -> OtaPaths {
    let paths = OtaPaths::under(&root.join("data"));
    fs::create_dir_all(root.join("data")).unwrap();
    let db = rusqlite::Connection::open(&paths.db).unwrap();
    db.execute_batch("create table t(v text); insert into t values('v1-data');")
        .unwrap();
    drop(db);
    install_bytes(
        &paths,
        &kr.store(),
        &bundle(kr.signer(), "1.0.0", &healthy_script("1.0.0")),
    );
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
    recover::recover(&paths, &policy(), None, Time::from_secs(0)).unwrap();
    recover::commit_now(&paths, Time::from_secs(1)).unwrap();
    recover::ack_reports(&paths, 10).unwrap();
    paths
}

pub fn db_rows(paths: &OtaPaths) -> Vec<String> {
    let db = rusqlite::Connection::open(&paths.db).unwrap();
    let mut st = db.prepare("select v from t order by rowid").unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}
