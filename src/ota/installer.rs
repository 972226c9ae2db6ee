//! Installing a bundle the gateway received itself (the web UI's upload):
//! full verification first, then, when the gateway runs from the packaged
//! layout, the side-by-side install of [`super::install`].
//!
//! Invariant: one install at a time per [`Installer`] (clones share the
//! lock), and across every install path and process through
//! [`super::install::lock`], so two uploads (or an upload and a
//! `cmd/update`) racing cannot both switch `current`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::bundle::{self, Manifest, Policy, Target};
use super::install::{self, InstallOptions, Installed};
use super::keys::TrustStore;
use super::{OtaConfig, OtaPaths};

/// What became of a received bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not installable: no trusted key, bad signature, wrong arch, older
    /// version, damaged payload… (the message says which).
    Refused(String),
    /// Verified, but not installed: the gateway does not run from the
    /// packaged layout (`current` is not a link to a release).
    VerifiedOnly {
        manifest: Manifest,
        current: PathBuf,
    },
    /// Installed on trial: the gateway should restart into it now.
    Installed { manifest: Manifest, done: Installed },
    /// Verified, but the install itself failed (nothing was switched).
    Failed { manifest: Manifest, error: String },
}

/// The handle that installs received bundles (see the module header).
#[derive(Debug, Clone)]
pub struct Installer {
    cfg: OtaConfig,
    paths: OtaPaths,
    target: Target,
    lock: Arc<Mutex<()>>,
}

impl Installer {
    /// For a gateway whose data lives in `data_dir`.
    pub fn new(cfg: OtaConfig, data_dir: &Path) -> Installer {
        let paths = cfg.paths(data_dir);
        Installer {
            target: Target {
                gateway: crate::config::GatewayConfig::default().id,
                fleets: cfg.fleets.clone(),
            },
            cfg,
            paths,
            lock: Arc::default(),
        }
    }

    /// For the gateway with this `[gateway] id` (bundle targeting).
    pub fn for_gateway(mut self, id: &str) -> Installer {
        self.target.gateway = id.to_string();
        self
    }

    /// The largest upload to accept: the payload limit plus a header of at
    /// most ~16.5 KiB.
    pub fn upload_cap(&self) -> u64 {
        self.cfg.max_bundle_size.saturating_add(64 * 1024)
    }

    /// Verifies the bundle in `file` completely (nothing written), then
    /// installs it when the packaged layout is there. Blocking: run it on
    /// `spawn_blocking`. The caller restarts the gateway after `Installed`.
    pub fn install_file(&self, file: &Path) -> Outcome {
        // A poisoned lock only means an earlier install panicked; the
        // install itself is crash-safe, so carry on.
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let manifest = match self.verify(file) {
            Ok(m) => m,
            Err(msg) => return Outcome::Refused(msg),
        };
        if install::current_version(&self.paths).is_none() {
            return Outcome::VerifiedOnly {
                manifest,
                current: self.paths.current.clone(),
            };
        }
        match self.install(file) {
            Ok(done) => Outcome::Installed { manifest, done },
            Err(error) => Outcome::Failed { manifest, error },
        }
    }

    fn verify(&self, file: &Path) -> Result<Manifest, String> {
        let keys = TrustStore::load(&self.cfg.keys_dir)
            .map_err(|e| format!("no trusted keys to check it with: {e}"))?;
        let policy = Policy::here(
            install::installed_version(&self.paths),
            self.cfg.max_bundle_size,
        )
        .at(crate::wall::now(), super::clock_trusted(&self.cfg))
        .for_target(self.target.clone());
        let mut r = open(file)?;
        bundle::verify(&mut r, &keys, &policy, &mut super::archive::NullSink)
            .map(|v| v.manifest)
            .map_err(|e| e.to_string())
    }

    fn install(&self, file: &Path) -> Result<Installed, String> {
        let keys = TrustStore::load(&self.cfg.keys_dir).map_err(|e| e.to_string())?;
        let opts = InstallOptions {
            arch: std::env::consts::ARCH,
            max_payload: self.cfg.max_bundle_size,
            on_step: None,
            target: Some(&self.target),
            // A rolled-back version needs `carebridge ota install --allow-rolled-back`.
            allow_rolled_back: false,
            clock_trusted: super::clock_trusted(&self.cfg),
        };
        install::install_bundle_from_reader(&mut open(file)?, &self.paths, &keys, &opts)
            .map_err(|e| e.to_string())
    }
}

fn open(file: &Path) -> Result<std::io::BufReader<std::fs::File>, String> {
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    Ok(std::io::BufReader::with_capacity(64 * 1024, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_bundle_is_refused_and_nothing_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let cfg = OtaConfig {
            keys_dir: dir.path().join("keys"),
            ..Default::default()
        };
        let file = dir.path().join("upload.cbb");
        std::fs::write(&file, b"MZ not a bundle").unwrap();
        let i = Installer::new(cfg, dir.path());
        assert!(matches!(i.install_file(&file), Outcome::Refused(_)));
        assert!(install::current_version(&i.paths).is_none());
        assert_eq!(i.upload_cap(), i.cfg.max_bundle_size + 64 * 1024);
    }
}
