//! Command-line front ends: `carebridge bundle keygen|sign|verify|inspect`
//! (release engineering) and `carebridge ota recover|status|commit|check|install`
//! (what the systemd units and an operator call). `ota install` waits while
//! another install runs and needs `--allow-rolled-back` for a version this
//! gateway rolled back; `ota poll` never installs one.
//!
//! Exit codes (carried by [`OtaCliError`]): 0 success, 1 runtime failure,
//! 2 invalid input or refused bundle, 3 (`ota check` only) a trial is
//! overdue and the service must be restarted.

use std::fs;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use super::archive::{self, EntryHeader, EntrySink, NullSink};
use super::bundle::{self, EntrySource, ManifestInput, PayloadEntry, Policy};
use super::install::{self, InstallOptions};
use super::keys::{self, TrustStore};
use super::recover;
use super::trial::{CheckDecision, TrialPolicy};
use super::version::Version;
use super::{OtaConfig, OtaPaths, download};

/// A failed command: the message for stderr and the process exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OtaCliError {
    pub code: u8,
    pub message: String,
}

impl OtaCliError {
    pub fn invalid(m: impl std::fmt::Display) -> Self {
        OtaCliError {
            code: 2,
            message: m.to_string(),
        }
    }
    pub fn runtime(m: impl std::fmt::Display) -> Self {
        OtaCliError {
            code: 1,
            message: m.to_string(),
        }
    }
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

fn bundle_err(e: bundle::BundleError) -> OtaCliError {
    if e.is_refusal() {
        OtaCliError::invalid(format!("refused: {e}"))
    } else {
        OtaCliError::runtime(e)
    }
}

/// `carebridge bundle …`
#[derive(Debug, clap::Subcommand)]
pub enum BundleCmd {
    /// Generate an Ed25519 signing key: <DIR>/<ID>.pk8 (private, 0600) and <DIR>/<ID>.pub.
    Keygen {
        /// Key id (file stem; appears in every bundle it signs).
        #[arg(long)]
        id: String,
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Build and sign a bundle.
    Sign {
        /// PKCS#8 private key from `bundle keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Key id; default: the key file's stem.
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        version: String,
        /// Target architecture: aarch64, arm (armv7) or x86_64.
        #[arg(long)]
        arch: String,
        /// Lowest installed version this bundle may replace.
        #[arg(long)]
        min_version: Option<String>,
        /// Allow installing over a newer version (needs --expires).
        #[arg(long)]
        allow_downgrade: bool,
        /// Refuse the bundle from this RFC 3339 time on (e.g. 2027-01-31T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// Only for this gateway id (`[gateway] id`); repeatable.
        #[arg(long = "gateway")]
        gateways: Vec<String>,
        /// Only for gateways in this fleet (`[ota] fleets`); repeatable.
        #[arg(long = "fleet")]
        fleets: Vec<String>,
        /// The carebridge binary (becomes bin/carebridge).
        #[arg(long)]
        binary: PathBuf,
        /// Extra files NAME=PATH (e.g. migrations/0003.sql=./0003.sql); repeatable.
        #[arg(long = "file")]
        files: Vec<String>,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Verify a bundle against trusted keys (signature, manifest, payload hash).
    Verify {
        bundle: PathBuf,
        #[arg(long, default_value = "/etc/carebridge/keys")]
        keys_dir: PathBuf,
        /// Check architecture and downgrade against this installed version.
        #[arg(long)]
        installed: Option<String>,
        /// Device architecture; default: this machine's.
        #[arg(long)]
        arch: Option<String>,
        #[arg(long, default_value_t = 128 * 1024 * 1024)]
        max_size: u64,
        /// Check `gateways`/`fleets` as this gateway id would (else not checked).
        #[arg(long)]
        gateway: Option<String>,
        /// With --gateway: the fleets it belongs to; repeatable.
        #[arg(long = "fleet")]
        fleets: Vec<String>,
    },
    /// Print a bundle's manifest and files WITHOUT checking the signature.
    Inspect { bundle: PathBuf },
}

fn open(p: &Path) -> Result<BufReader<fs::File>, OtaCliError> {
    fs::File::open(p)
        .map(|f| BufReader::with_capacity(64 * 1024, f))
        .map_err(|e| OtaCliError::invalid(format!("{}: {e}", p.display())))
}

/// Runs a `bundle` subcommand, printing results on stdout.
pub fn run(cmd: BundleCmd) -> Result<(), OtaCliError> {
    match cmd {
        BundleCmd::Keygen { id, out_dir } => {
            let k = keys::generate(&out_dir, &id).map_err(|e| match e {
                keys::KeyError::BadId(_) => OtaCliError::invalid(e),
                _ => OtaCliError::runtime(e),
            })?;
            println!(
                "private key: {} (keep secret)\npublic key:  {} (copy to /etc/carebridge/keys/)",
                k.private_path.display(),
                k.public_path.display()
            );
            Ok(())
        }
        BundleCmd::Sign {
            key,
            key_id,
            version,
            arch,
            min_version,
            allow_downgrade,
            expires,
            gateways,
            fleets,
            binary,
            files,
            out,
        } => {
            let pair = keys::load_private(&key).map_err(OtaCliError::invalid)?;
            let key_id = key_id
                .or_else(|| key.file_stem().and_then(|s| s.to_str()).map(String::from))
                .ok_or_else(|| OtaCliError::invalid("--key-id is required"))?;
            let mut entries = vec![PayloadEntry {
                name: archive::BINARY_NAME.into(),
                executable: true,
                source: EntrySource::File(binary),
            }];
            for f in files {
                let (name, path) = f
                    .split_once('=')
                    .ok_or_else(|| OtaCliError::invalid(format!("--file {f:?}: use NAME=PATH")))?;
                entries.push(PayloadEntry {
                    name: name.into(),
                    executable: false,
                    source: EntrySource::File(path.into()),
                });
            }
            let input = ManifestInput {
                version,
                arch,
                min_version,
                allow_downgrade,
                created: None,
                expires,
                gateways,
                fleets,
            };
            let tmp = out.with_extension("partial");
            let mut w = std::io::BufWriter::new(
                fs::File::create(&tmp)
                    .map_err(|e| OtaCliError::runtime(format!("{}: {e}", tmp.display())))?,
            );
            let m = bundle::write_bundle(&pair, &key_id, &input, &entries, &mut w);
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(match e {
                        bundle::BundleError::Io(_) => OtaCliError::runtime(e),
                        e => OtaCliError::invalid(e),
                    });
                }
            };
            w.flush()
                .and_then(|()| fs::rename(&tmp, &out))
                .map_err(|e| OtaCliError::runtime(format!("{}: {e}", out.display())))?;
            println!(
                "{}: carebridge {} for {}, payload {} bytes, sha256 {}, key {}",
                out.display(),
                m.version,
                m.arch,
                m.payload_size,
                m.payload_sha256,
                m.key_id
            );
            Ok(())
        }
        BundleCmd::Verify {
            bundle: path,
            keys_dir,
            installed,
            arch,
            max_size,
            gateway,
            fleets,
        } => {
            let keys = TrustStore::load(&keys_dir).map_err(OtaCliError::invalid)?;
            let installed = installed
                .map(|v| Version::parse(&v))
                .transpose()
                .map_err(OtaCliError::invalid)?;
            let policy = Policy {
                arch: arch.unwrap_or_else(|| std::env::consts::ARCH.into()),
                installed,
                max_payload: max_size,
                now: Some(crate::wall::now()),
                // A build or operator machine: its clock is taken as it is.
                clock_trusted: true,
                target: gateway.map(|gateway| bundle::Target { gateway, fleets }),
            };
            let v = bundle::verify(&mut open(&path)?, &keys, &policy, &mut NullSink)
                .map_err(bundle_err)?;
            println!(
                "{}: OK — carebridge {} for {}, signed by {}, {} files",
                path.display(),
                v.manifest.version,
                v.manifest.arch,
                v.manifest.key_id,
                v.entries.len()
            );
            Ok(())
        }
        BundleCmd::Inspect { bundle: path } => {
            let mut r = open(&path)?;
            let mut head = Vec::new();
            let (key_id, manifest) = loop {
                match bundle::decode_header(&head) {
                    Ok((raw, _)) => break (raw.key_id.to_string(), raw.manifest.to_vec()),
                    Err(bundle::BundleError::Incomplete { needed }) => {
                        let start = head.len();
                        head.resize(start + needed, 0);
                        std::io::Read::read_exact(&mut r, &mut head[start..])
                            .map_err(|_| OtaCliError::invalid("truncated bundle header"))?;
                    }
                    Err(e) => return Err(OtaCliError::invalid(e)),
                }
            };
            println!("key id: {key_id}\nsignature: NOT CHECKED (use `bundle verify`)");
            // Unverified bytes: never let them drive the terminal.
            let shown: String = String::from_utf8_lossy(&manifest)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            println!("manifest: {shown}");
            let mut lister = Lister(Vec::new());
            let res = archive::unpack(&mut r, &mut lister);
            for h in &lister.0 {
                println!(
                    "  {} {:>10} {}",
                    if h.executable { "x" } else { "-" },
                    h.size,
                    h.name
                );
            }
            res.map(|_| ()).map_err(OtaCliError::invalid)
        }
    }
}

struct Lister(Vec<EntryHeader>);
impl EntrySink for Lister {
    fn begin(&mut self, h: &EntryHeader) -> std::io::Result<()> {
        self.0.push(h.clone());
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where to find the configuration and data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct Where {
    #[arg(long, default_value = "/etc/carebridge/carebridge.toml")]
    pub config: PathBuf,
    /// Override `gateway.data_dir` (tests, rescue).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl Where {
    fn load(&self) -> Result<(OtaConfig, OtaPaths), OtaCliError> {
        self.load_all().map(|(c, p, _)| (c, p))
    }

    /// Also this gateway's identity for bundle targeting.
    fn load_all(&self) -> Result<(OtaConfig, OtaPaths, bundle::Target), OtaCliError> {
        let (cfg, data_dir, gateway) = if self.config.exists() {
            match crate::config::load(&self.config) {
                Ok(c) => (c.ota.unwrap_or_default(), c.gateway.data_dir, c.gateway.id),
                // The stable system binary may be older than the config (keys
                // added by a newer release): recovery must still work, so fall
                // back to reading only what OTA needs.
                Err(full) => match lenient_load(&self.config) {
                    Some(found) => {
                        eprintln!(
                            "warning: {full}\nwarning: using only [gateway] data_dir and [ota]"
                        );
                        found
                    }
                    None => return Err(OtaCliError::invalid(full)),
                },
            }
        } else {
            let g = crate::config::GatewayConfig::default();
            (OtaConfig::default(), g.data_dir, g.id)
        };
        let data_dir = self.data_dir.clone().unwrap_or(data_dir);
        let paths = cfg.paths(&data_dir);
        let target = bundle::Target {
            gateway,
            fleets: cfg.fleets.clone(),
        };
        Ok((cfg, paths, target))
    }
}

/// `[gateway] data_dir` and `id` and a valid `[ota]` from a config the full
/// parser refused.
fn lenient_load(path: &Path) -> Option<(OtaConfig, PathBuf, String)> {
    let text = fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let data_dir = match table.get("gateway").and_then(|g| g.get("data_dir")) {
        Some(v) => PathBuf::from(v.as_str()?),
        None => crate::config::GatewayConfig::default().data_dir,
    };
    let id = match table.get("gateway").and_then(|g| g.get("id")) {
        Some(v) => v.as_str()?.to_string(),
        None => crate::config::GatewayConfig::default().id,
    };
    let ota: OtaConfig = match table.get("ota") {
        Some(v) => v.clone().try_into().ok()?,
        None => OtaConfig::default(),
    };
    (ota.validate().is_empty() && data_dir.is_absolute()).then_some((ota, data_dir, id))
}

/// `carebridge ota …`
#[derive(Debug, clap::Subcommand)]
pub enum OtaCmd {
    /// Before each start (ExecStartPre): repair `current`, count a trial start or roll back.
    Recover {
        #[command(flatten)]
        at: Where,
    },
    /// Print releases, trial and pending reports as JSON.
    Status {
        #[command(flatten)]
        at: Where,
    },
    /// Commit the release on trial now (operator override).
    Commit {
        #[command(flatten)]
        at: Where,
    },
    /// Guard (timer): exit 3 when a trial attempt is overdue.
    Check {
        #[command(flatten)]
        at: Where,
    },
    /// Fetch `[ota] poll_url` (an update command document) and install what it
    /// names. Exit 3 when a release was installed (the unit's OnFailure then
    /// restarts carebridge into it); 0 when there is nothing new or the
    /// network failed (the next timer run retries).
    Poll {
        #[command(flatten)]
        at: Where,
    },
    /// Verify and install a bundle file as the new release on trial. Waits
    /// while another install runs; refuses while a release is on trial.
    Install {
        bundle: PathBuf,
        /// Install a version this gateway rolled back before.
        #[arg(long)]
        allow_rolled_back: bool,
        /// Believe the clock for the bundle's `expires` although it is not
        /// NTP-synchronised (you checked the date by hand).
        #[arg(long)]
        trust_clock: bool,
        #[command(flatten)]
        at: Where,
    },
}

fn state_err(e: recover::StateError) -> OtaCliError {
    OtaCliError::runtime(e)
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("cannot print: {e}"),
    }
}

/// Runs an `ota` subcommand.
pub fn run_ota(cmd: OtaCmd) -> Result<(), OtaCliError> {
    let now = crate::wall::now();
    match cmd {
        OtaCmd::Recover { at } => {
            let (cfg, paths) = at.load()?;
            let exe = std::env::current_exe().ok();
            let r = recover::recover(&paths, &TrialPolicy::from(&cfg), exe.as_deref(), now)
                .map_err(state_err)?;
            print_json(&r);
            Ok(())
        }
        OtaCmd::Status { at } => {
            let (_, paths) = at.load()?;
            print_json(&recover::status(&paths).map_err(state_err)?);
            Ok(())
        }
        OtaCmd::Commit { at } => {
            let (_, paths) = at.load()?;
            match recover::commit_now(&paths, now).map_err(state_err)? {
                Some(v) => println!("committed {v}"),
                None => println!("no release on trial"),
            }
            Ok(())
        }
        OtaCmd::Check { at } => {
            let (cfg, paths) = at.load()?;
            match recover::check(&paths, &TrialPolicy::from(&cfg), now).map_err(state_err)? {
                CheckDecision::Fine => Ok(()),
                CheckDecision::Overdue { version, reason } => Err(OtaCliError {
                    code: 3,
                    message: format!("release {version} on trial is overdue: {reason}"),
                }),
            }
        }
        OtaCmd::Poll { at } => {
            let (cfg, paths, target) = at.load_all()?;
            poll(&cfg, &paths, &target)
        }
        OtaCmd::Install {
            bundle: path,
            allow_rolled_back,
            trust_clock,
            at,
        } => {
            let (cfg, paths, target) = at.load_all()?;
            let keys = TrustStore::load(&cfg.keys_dir).map_err(OtaCliError::invalid)?;
            let opts = InstallOptions {
                arch: std::env::consts::ARCH,
                max_payload: cfg.max_bundle_size,
                on_step: None,
                target: Some(&target),
                allow_rolled_back,
                clock_trusted: trust_clock || super::clock_trusted(&cfg),
            };
            let done = install::install_bundle_from_reader(&mut open(&path)?, &paths, &keys, &opts)
                .map_err(|e| {
                    if e.is_refusal() {
                        OtaCliError::invalid(format!("refused: {e}"))
                    } else {
                        OtaCliError::runtime(e)
                    }
                })?;
            print_json(&done);
            Ok(())
        }
    }
}

fn poll(cfg: &OtaConfig, paths: &OtaPaths, target: &bundle::Target) -> Result<(), OtaCliError> {
    let Some(url) = &cfg.poll_url else {
        println!("no [ota] poll_url configured");
        return Ok(());
    };
    let Some(data_dir) = paths.state.parent() else {
        return Err(OtaCliError::runtime("state file has no directory"));
    };
    let mut dl = download::Downloader::new(64 * 1024);
    if url.starts_with("https://") {
        dl.tls = Some(download::tls_config(cfg.ca_file.as_deref()).map_err(OtaCliError::runtime)?);
    }
    let doc = match dl.fetch_small(url, &data_dir.join("ota-poll.json")) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("poll failed, will retry: {e}");
            return Ok(());
        }
    };
    let cmd = download::UpdateCommand::parse(&doc).map_err(OtaCliError::invalid)?;
    let last = data_dir.join("ota-poll-last");
    if fs::read_to_string(&last).is_ok_and(|s| s.trim().eq_ignore_ascii_case(&cmd.sha256)) {
        println!("no new update");
        return Ok(());
    }
    dl.max_size = cfg.max_bundle_size + 64 * 1024;
    if cmd.url.starts_with("https://") && dl.tls.is_none() {
        dl.tls = Some(download::tls_config(cfg.ca_file.as_deref()).map_err(OtaCliError::runtime)?);
    }
    // Not `cmd/update`'s file: the daemon may be downloading into that now.
    let file = paths.download.with_extension("poll.cbb");
    if let Err(e) = dl.download(&cmd, &file, &mut |_, _| {}) {
        eprintln!("download failed, will retry: {e}");
        return Ok(());
    }
    let keys = TrustStore::load(&cfg.keys_dir).map_err(OtaCliError::invalid)?;
    let opts = InstallOptions {
        arch: std::env::consts::ARCH,
        max_payload: cfg.max_bundle_size,
        on_step: None,
        target: Some(target),
        allow_rolled_back: false,
        clock_trusted: super::clock_trusted(cfg),
    };
    let res = install::install_bundle_from_reader(&mut open(&file)?, paths, &keys, &opts);
    let _ = fs::remove_file(&file);
    // Remember the bundle either way: a refused bundle is not retried every
    // poll; except one waiting for a trusted clock (the next poll retries).
    if !matches!(
        res,
        Err(install::InstallError::Bundle(
            bundle::BundleError::ClockUntrusted { .. }
        ))
    ) {
        let _ = super::fsutil::atomic_write(&last, cmd.sha256.as_bytes());
    }
    match res {
        Ok(done) => Err(OtaCliError {
            code: 3,
            message: format!("installed {}; restarting into it", done.version),
        }),
        Err(e) if e.is_refusal() => Err(OtaCliError::invalid(format!("refused: {e}"))),
        Err(e) => Err(OtaCliError::runtime(e)),
    }
}
