//! The `cmd/update` flow, as the integrator wires it: parse the command,
//! download (resumable, capped), verify and install, and report progress and
//! the result as [`Progress`] documents for `<prefix>/<gateway>/cmd/update/result`.
//!
//! After `Phase::Installed` the integrator stops the daemon cleanly (exit 0);
//! systemd restarts it into the new release, which is then on trial. The
//! final outcome (committed / rolled back) arrives later as an
//! [`UpdateReport`] in the OTA state; [`report_progress`] turns it into the
//! same document shape.
//!
//! Blocking: run on `spawn_blocking`. The caller quiesces database writers
//! around the call (the install takes a database backup).

use std::fs;

use super::bundle::Target;
use super::download::{self, Downloader, Phase, Progress, UpdateCommand};
use super::install::{self, InstallOptions};
use super::keys::TrustStore;
use super::trial::{Outcome, UpdateReport};
use super::{OtaConfig, OtaPaths};

fn failed(received: u64, total: Option<u64>, error: String) -> Progress {
    Progress {
        phase: Phase::Failed,
        received,
        total,
        version: None,
        error: Some(error),
    }
}

/// Handles one `cmd/update` payload end to end. `publish` receives progress
/// (at most about every 10 %); the returned document is the final result.
pub fn handle_update_command(
    payload: &[u8],
    cfg: &OtaConfig,
    paths: &OtaPaths,
    target: &Target,
    publish: &mut dyn FnMut(&Progress),
) -> Progress {
    let cmd = match UpdateCommand::parse(payload) {
        Ok(c) => c,
        Err(e) => return failed(0, None, e.to_string()),
    };
    // The bundle is the payload plus a header of at most ~16.5 KiB.
    let mut dl = Downloader::new(cfg.max_bundle_size.saturating_add(64 * 1024));
    if cmd.url.starts_with("https://") {
        match download::tls_config(cfg.ca_file.as_deref()) {
            Ok(t) => dl.tls = Some(t),
            Err(e) => return failed(0, cmd.size, e.to_string()),
        }
    }
    if let Some(dir) = paths.download.parent()
        && let Err(e) = fs::create_dir_all(dir)
    {
        return failed(0, cmd.size, format!("{}: {e}", dir.display()));
    }
    let mut last_tenth = u64::MAX;
    let mut last_bytes = 0u64;
    let mut on_bytes = |got: u64, total: Option<u64>| {
        let due = match total {
            Some(t) if t > 0 => {
                let tenth = got.saturating_mul(10) / t;
                let due = tenth != last_tenth;
                last_tenth = tenth;
                due
            }
            _ => got.saturating_sub(last_bytes) >= 1 << 20,
        };
        if due {
            last_bytes = got;
            publish(&Progress {
                phase: Phase::Downloading,
                received: got,
                total,
                version: None,
                error: None,
            });
        }
    };
    let size = match dl.download(&cmd, &paths.download, &mut on_bytes) {
        Ok(n) => n,
        Err(e) => return failed(0, cmd.size, e.to_string()),
    };
    publish(&Progress {
        phase: Phase::Verifying,
        received: size,
        total: Some(size),
        version: None,
        error: None,
    });
    let keys = match TrustStore::load(&cfg.keys_dir) {
        Ok(k) => k,
        Err(e) => return failed(size, Some(size), e.to_string()),
    };
    let opts = InstallOptions {
        arch: std::env::consts::ARCH,
        max_payload: cfg.max_bundle_size,
        on_step: None,
        target: Some(target),
        // Automatic: a version rolled back here is refused.
        allow_rolled_back: false,
        clock_trusted: super::clock_trusted(cfg),
    };
    let res = fs::File::open(&paths.download)
        .map_err(|e| format!("{}: {e}", paths.download.display()))
        .and_then(|f| {
            let mut r = std::io::BufReader::with_capacity(64 * 1024, f);
            install::install_bundle_from_reader(&mut r, paths, &keys, &opts)
                .map_err(|e| e.to_string())
        });
    let _ = fs::remove_file(&paths.download);
    match res {
        Ok(done) => Progress {
            phase: Phase::Installed,
            received: size,
            total: Some(size),
            version: Some(done.version),
            error: None,
        },
        Err(e) => failed(size, Some(size), e),
    }
}

/// The result document for a finished trial.
pub fn report_progress(r: &UpdateReport) -> Progress {
    let (phase, error) = match r.outcome {
        Outcome::Committed => (Phase::Committed, None),
        Outcome::RolledBack => (Phase::RolledBack, r.reason.clone()),
        Outcome::Interrupted => (Phase::Failed, r.reason.clone()),
    };
    Progress {
        phase,
        received: 0,
        total: None,
        version: Some(r.version.clone()),
        error,
    }
}
