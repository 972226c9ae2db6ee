//! Signed update bundles: the file format, signing, and streaming verification.
//!
//! # Format (version 1)
//!
//! ```text
//! bundle    := header signature payload
//! header    := magic              8 bytes  "CBBUNDLE"
//!              key_id_len         u8       1..=64
//!              key_id             key_id_len bytes, [A-Za-z0-9._-]
//!              manifest_len       u32be    1..=16384
//!              manifest           manifest_len bytes of UTF-8 JSON (below)
//! signature := 64 bytes, Ed25519 over the whole header (magic .. manifest end)
//! payload   := manifest.payload_size bytes: the file archive of `archive.rs`
//!              (`bin/carebridge` plus optional `migrations/…`, `assets/…`)
//! ```
//! Nothing may follow the payload. The manifest:
//! ```json
//! {"format":1, "version":"1.4.2", "arch":"aarch64", "min_version":"1.0.0",
//!  "payload_size":123456, "payload_sha256":"<64 hex>",
//!  "created":"2026-11-23T10:00:00Z", "allow_downgrade":false, "key_id":"ops-2026"}
//! ```
//! `arch` is Rust's `std::env::consts::ARCH` (`aarch64`, `arm`, `x86_64`; `armv7`
//! is accepted as a synonym of `arm`). `min_version` (optional) is the lowest
//! installed version this bundle may replace. `key_id` must equal the header's.
//!
//! Optional fields (absent from older manifests, which install as before):
//! - `expires` — RFC 3339 time after which the bundle is refused (the
//!   gateway's wall clock decides), so an old signed bundle cannot be
//!   replayed for ever; `bundle sign --allow-downgrade` requires it;
//! - `gateways` — gateway ids (`[gateway] id`) the bundle is for;
//! - `fleets` — fleet names (`[ota] fleets`) the bundle is for.
//!
//! With `gateways` or `fleets` present, a gateway installs the bundle only
//! when its id is listed or one of its fleets is; with neither, every
//! gateway may. A manifest field this gateway does not know is refused
//! (never ignored), so an older gateway never skips an expiry it cannot read.
//!
//! # Verification order (invariants)
//! 1. The header is read into memory (bounded: ≤ ~16.5 KiB) and the signature
//!    is checked with the trusted, non-revoked key named in the header
//!    **before any manifest field is parsed or trusted**.
//! 2. Then the manifest: format, key id, architecture, size limit, versions.
//! 3. The payload is streamed through SHA-256 into a sink (the staging
//!    release directory on install) with a fixed 64 KiB buffer; only when the
//!    size and hash match and no byte follows is the result reported good.
//!    The installed bytes are the bytes hashed: the file is never re-read.

use std::io::{self, Read};

use hex::FromHex;
use ring::digest;
use ring::signature;
use serde::{Deserialize, Serialize};

use super::archive::{self, ArchiveError, EntryHeader, EntrySink, UnpackError};
use super::keys::{self, KeyStatus, TrustStore};
use super::version::Version;

pub const MAGIC: &[u8; 8] = b"CBBUNDLE";
pub const FORMAT: u32 = 1;
pub const MAX_MANIFEST: usize = 16 * 1024;
pub const SIG_LEN: usize = 64;

/// The signed description of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub version: String,
    pub arch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    pub payload_size: u64,
    pub payload_sha256: String,
    pub created: String,
    #[serde(default)]
    pub allow_downgrade: bool,
    pub key_id: String,
    /// RFC 3339; refused at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Gateway ids this bundle is for (see the module header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Fleet names this bundle is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<String>,
}

impl Manifest {
    /// Whether the manifest names any gateway or fleet.
    pub fn is_targeted(&self) -> bool {
        !self.gateways.is_empty() || !self.fleets.is_empty()
    }
}

/// Why a bundle was refused (or, for `Io`/`Sink`, could not be read).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("need {needed} more bytes")]
    Incomplete { needed: usize },
    #[error("not a carebridge bundle: bad magic bytes (expected \"CBBUNDLE\")")]
    NotABundle,
    #[error("truncated bundle: it ends inside the {0}")]
    Truncated(&'static str),
    #[error("bundle header: {0}")]
    BadHeader(String),
    #[error("bundle is signed with unknown key {0:?}: it is not in the trusted keys directory")]
    UnknownKey(String),
    #[error("bundle is signed with revoked key {0:?}")]
    RevokedKey(String),
    #[error("bundle is unsigned (the signature is all zeros)")]
    Unsigned,
    #[error(
        "bad signature for key {0:?}: the bundle header was tampered with or signed by another key"
    )]
    BadSignature(String),
    #[error("manifest: {0}")]
    BadManifest(String),
    #[error("manifest format {0} is not supported (this gateway reads format {FORMAT})")]
    UnsupportedFormat(u32),
    #[error("bundle is for architecture {bundle:?} but this gateway is {device:?}")]
    WrongArch { bundle: String, device: String },
    #[error(
        "bundle version {bundle} is older than the installed {installed} and was not signed with allow_downgrade"
    )]
    Downgrade { bundle: String, installed: String },
    #[error("bundle {bundle} may only replace version {min} or newer; installed is {installed}")]
    BelowMinimum {
        bundle: String,
        min: String,
        installed: String,
    },
    #[error(
        "bundle {version} expires at {expires} and the gateway's clock ({now}) is not trusted yet (no NTP synchronisation, no RTC): installed once the clock is trusted; `carebridge ota install --trust-clock` after checking the date by hand"
    )]
    ClockUntrusted {
        version: String,
        expires: String,
        now: String,
    },
    #[error("bundle {version} expired at {expires} (the gateway's clock says {now})")]
    Expired {
        version: String,
        expires: String,
        now: String,
    },
    #[error(
        "bundle {version} is not for this gateway: it targets gateways {gateways:?} and fleets {fleets:?}; this gateway is {gateway:?} in fleets {member_of:?}"
    )]
    NotTargeted {
        version: String,
        gateways: Vec<String>,
        fleets: Vec<String>,
        gateway: String,
        member_of: Vec<String>,
    },
    #[error("bundle payload of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("truncated bundle: payload has {got} of {expected} bytes")]
    PayloadTruncated { expected: u64, got: u64 },
    #[error("bundle has extra bytes after the payload")]
    TrailingData,
    #[error(
        "payload SHA-256 is {actual}, the signed manifest says {expected}: the payload was tampered with"
    )]
    HashMismatch { expected: String, actual: String },
    #[error("signed payload is not a valid archive: {0}")]
    Archive(ArchiveError),
    #[error("reading the bundle: {0}")]
    Io(io::Error),
    #[error("writing {name:?}: {source}")]
    Sink { name: String, source: io::Error },
}

impl BundleError {
    /// True when the bundle itself was refused; false for local I/O failures.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, BundleError::Io(_) | BundleError::Sink { .. })
    }
}

/// What the device accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// This gateway's architecture (`std::env::consts::ARCH`).
    pub arch: String,
    /// The version running now; `None` skips version checks (first install).
    pub installed: Option<Version>,
    /// Largest accepted `payload_size`.
    pub max_payload: u64,
    /// The time `expires` is checked against; `None` skips the check.
    pub now: Option<crate::model::Time>,
    /// Whether `now` can be believed (NTP-synchronised or an RTC). When it
    /// cannot, a bundle with `expires` is refused as
    /// [`BundleError::ClockUntrusted`] (retried later) unless its own
    /// `created` time already proves it expired: a stale clock (a Pi
    /// without an RTC boots on its last saved time) would let an expired
    /// bundle through.
    pub clock_trusted: bool,
    /// Who this gateway is, for `gateways`/`fleets`; `None` skips the check
    /// (`bundle verify` on a build machine without `--gateway`).
    pub target: Option<Target>,
}

/// This gateway's identity as a bundle's `gateways`/`fleets` see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `[gateway] id`.
    pub gateway: String,
    /// `[ota] fleets`.
    pub fleets: Vec<String>,
}

impl Target {
    /// Whether a manifest's targeting lets this gateway install it.
    pub fn admits(&self, m: &Manifest) -> bool {
        !m.is_targeted()
            || m.gateways.contains(&self.gateway)
            || m.fleets.iter().any(|f| self.fleets.contains(f))
    }
}

impl Policy {
    /// This machine's architecture, the given installed version and limit;
    /// no expiry or target check until [`Policy::at`] / [`Policy::for_target`].
    pub fn here(installed: Option<Version>, max_payload: u64) -> Self {
        Policy {
            arch: std::env::consts::ARCH.to_string(),
            installed,
            max_payload,
            now: None,
            clock_trusted: true,
            target: None,
        }
    }

    /// Checks `expires` against `now`, which is `trusted` or not (see
    /// [`Policy::clock_trusted`]).
    pub fn at(mut self, now: crate::model::Time, trusted: bool) -> Self {
        self.now = Some(now);
        self.clock_trusted = trusted;
        self
    }

    /// Checks `gateways`/`fleets` against this gateway.
    pub fn for_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }
}

fn same_arch(a: &str, b: &str) -> bool {
    let norm = |s: &str| match s {
        "armv7" | "armv7l" | "armhf" => "arm".to_string(),
        "arm64" => "aarch64".to_string(),
        "amd64" => "x86_64".to_string(),
        o => o.to_string(),
    };
    norm(a) == norm(b)
}

/// The header fields, borrowed from the buffer, before any check.
#[derive(Debug, Clone, Copy)]
pub struct RawHeader<'a> {
    pub key_id: &'a str,
    pub manifest: &'a [u8],
    /// The bytes the signature covers.
    pub signed: &'a [u8],
    pub signature: &'a [u8],
}

/// Decodes the header and signature from the front of `buf` (pure; checks nothing
/// cryptographic). Returns the header and the bytes used.
pub fn decode_header(buf: &[u8]) -> Result<(RawHeader<'_>, usize), BundleError> {
    let need = |have: usize, want: usize| BundleError::Incomplete {
        needed: want - have,
    };
    if buf.len() < 9 {
        if !MAGIC.starts_with(buf) {
            return Err(BundleError::NotABundle);
        }
        return Err(need(buf.len(), 9));
    }
    if &buf[..8] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let kl = usize::from(buf[8]);
    if kl == 0 || kl > 64 {
        return Err(BundleError::BadHeader(format!("key id length {kl}")));
    }
    let after_key = 9 + kl;
    if buf.len() < after_key + 4 {
        return Err(need(buf.len(), after_key + 4));
    }
    let key_id = std::str::from_utf8(&buf[9..after_key])
        .ok()
        .filter(|k| keys::valid_key_id(k))
        .ok_or_else(|| BundleError::BadHeader("key id is not [A-Za-z0-9._-]".into()))?;
    let mut ml = [0u8; 4];
    ml.copy_from_slice(&buf[after_key..after_key + 4]);
    let ml = u32::from_be_bytes(ml) as usize;
    if ml == 0 || ml > MAX_MANIFEST {
        return Err(BundleError::BadHeader(format!(
            "manifest length {ml} is not between 1 and {MAX_MANIFEST}"
        )));
    }
    let end = after_key + 4 + ml;
    if buf.len() < end + SIG_LEN {
        return Err(need(buf.len(), end + SIG_LEN));
    }
    Ok((
        RawHeader {
            key_id,
            manifest: &buf[after_key + 4..end],
            signed: &buf[..end],
            signature: &buf[end..end + SIG_LEN],
        },
        end + SIG_LEN,
    ))
}

/// Checks the signature, then the manifest against the policy.
pub fn check_header(
    raw: &RawHeader<'_>,
    keys: &TrustStore,
    policy: &Policy,
) -> Result<Manifest, BundleError> {
    let public = match keys.status(raw.key_id) {
        KeyStatus::Trusted(k) => k,
        KeyStatus::Revoked => return Err(BundleError::RevokedKey(raw.key_id.into())),
        KeyStatus::Unknown => return Err(BundleError::UnknownKey(raw.key_id.into())),
    };
    if raw.signature.iter().all(|b| *b == 0) {
        return Err(BundleError::Unsigned);
    }
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(raw.signed, raw.signature)
        .map_err(|_| BundleError::BadSignature(raw.key_id.into()))?;
    // From here on the manifest bytes are authentic.
    let m: Manifest = serde_json::from_slice(raw.manifest)
        .map_err(|e| BundleError::BadManifest(e.to_string()))?;
    if m.format != FORMAT {
        return Err(BundleError::UnsupportedFormat(m.format));
    }
    if m.key_id != raw.key_id {
        return Err(BundleError::BadManifest(format!(
            "key_id {:?} differs from the header's {:?}",
            m.key_id, raw.key_id
        )));
    }
    if <[u8; 32]>::from_hex(&m.payload_sha256).is_err() {
        return Err(BundleError::BadManifest(
            "payload_sha256 is not 64 hex characters".into(),
        ));
    }
    let Ok(created) = crate::model::Time::parse_rfc3339(&m.created) else {
        return Err(BundleError::BadManifest(format!(
            "created {:?} is not an RFC 3339 time",
            m.created
        )));
    };
    let expires = m
        .expires
        .as_deref()
        .map(|e| {
            crate::model::Time::parse_rfc3339(e).map_err(|_| {
                BundleError::BadManifest(format!("expires {e:?} is not an RFC 3339 time"))
            })
        })
        .transpose()?;
    for name in m.gateways.iter().chain(&m.fleets) {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(BundleError::BadManifest(format!(
                "gateways/fleets entry {name:?} is empty, too long or has control characters"
            )));
        }
    }
    if let (Some(exp), Some(now)) = (expires, policy.now) {
        // The true time is at least the bundle's own signing time, however
        // stale the clock.
        if now.max(created) >= exp {
            return Err(BundleError::Expired {
                version: m.version.clone(),
                expires: exp.to_rfc3339(),
                now: now.to_rfc3339(),
            });
        }
        if !policy.clock_trusted {
            return Err(BundleError::ClockUntrusted {
                version: m.version.clone(),
                expires: exp.to_rfc3339(),
                now: now.to_rfc3339(),
            });
        }
    }
    if let Some(t) = &policy.target
        && !t.admits(&m)
    {
        return Err(BundleError::NotTargeted {
            version: m.version.clone(),
            gateways: m.gateways.clone(),
            fleets: m.fleets.clone(),
            gateway: t.gateway.clone(),
            member_of: t.fleets.clone(),
        });
    }
    if !same_arch(&m.arch, &policy.arch) {
        return Err(BundleError::WrongArch {
            bundle: m.arch.clone(),
            device: policy.arch.clone(),
        });
    }
    if m.payload_size > policy.max_payload {
        return Err(BundleError::TooLarge {
            size: m.payload_size,
            max: policy.max_payload,
        });
    }
    let version = Version::parse(&m.version).map_err(BundleError::BadManifest)?;
    let min = m
        .min_version
        .as_deref()
        .map(Version::parse)
        .transpose()
        .map_err(BundleError::BadManifest)?;
    if let Some(installed) = &policy.installed {
        if let Some(min) = &min
            && installed < min
        {
            return Err(BundleError::BelowMinimum {
                bundle: m.version.clone(),
                min: min.to_string(),
                installed: installed.to_string(),
            });
        }
        if version < *installed && !m.allow_downgrade {
            return Err(BundleError::Downgrade {
                bundle: m.version.clone(),
                installed: installed.to_string(),
            });
        }
    }
    Ok(m)
}

/// Reads exactly the header from a stream and checks it. Leaves the reader
/// at the first payload byte.
pub fn read_header<R: Read>(
    r: &mut R,
    keys: &TrustStore,
    policy: &Policy,
) -> Result<Manifest, BundleError> {
    let mut buf = Vec::with_capacity(512);
    loop {
        match decode_header(&buf) {
            Ok((raw, _)) => return check_header(&raw, keys, policy),
            Err(BundleError::Incomplete { needed }) => {
                let start = buf.len();
                buf.resize(start + needed, 0);
                let mut got = start;
                while got < buf.len() {
                    match r.read(&mut buf[got..]) {
                        Ok(0) => {
                            let what = if start < 9 {
                                "header"
                            } else {
                                "manifest or signature"
                            };
                            return Err(BundleError::Truncated(what));
                        }
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(BundleError::Io(e)),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Bounds a reader to the payload and hashes what passes through.
struct PayloadReader<'a, R> {
    inner: &'a mut R,
    left: u64,
    got: u64,
    ctx: digest::Context,
    short: bool,
}

impl<R: Read> Read for PayloadReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            self.short = true;
            return Ok(0);
        }
        self.ctx.update(&buf[..n]);
        self.left -= n as u64;
        self.got += n as u64;
        Ok(n)
    }
}

/// Streams the payload into `sink`, then checks size, hash and end of input.
pub fn read_payload<R: Read>(
    r: &mut R,
    m: &Manifest,
    sink: &mut dyn EntrySink,
) -> Result<Vec<EntryHeader>, BundleError> {
    let mut pr = PayloadReader {
        inner: r,
        left: m.payload_size,
        got: 0,
        ctx: digest::Context::new(&digest::SHA256),
        short: false,
    };
    let unpacked = archive::unpack(&mut pr, sink);
    let archive_problem = match unpacked {
        Ok(entries) => Ok(entries),
        Err(UnpackError::Read(e)) => return Err(BundleError::Io(e)),
        Err(UnpackError::Sink { name, source }) => return Err(BundleError::Sink { name, source }),
        Err(UnpackError::Archive(a)) => {
            // Drain the rest so a tampered payload is reported as tampered,
            // not as whatever archive error the flipped byte happened to cause.
            io::copy(&mut pr, &mut io::sink()).map_err(BundleError::Io)?;
            Err(a)
        }
    };
    if pr.short || pr.got < m.payload_size {
        return Err(BundleError::PayloadTruncated {
            expected: m.payload_size,
            got: pr.got,
        });
    }
    let actual = hex::encode(pr.ctx.finish().as_ref());
    if !actual.eq_ignore_ascii_case(&m.payload_sha256) {
        return Err(BundleError::HashMismatch {
            expected: m.payload_sha256.clone(),
            actual,
        });
    }
    let entries = archive_problem.map_err(BundleError::Archive)?;
    let mut one = [0u8; 1];
    loop {
        match pr.inner.read(&mut one) {
            Ok(0) => break,
            Ok(_) => return Err(BundleError::TrailingData),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BundleError::Io(e)),
        }
    }
    Ok(entries)
}

/// A fully verified bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub entries: Vec<EntryHeader>,
}

/// Header, signature, policy, then the streamed payload into `sink`.
pub fn verify<R: Read>(
    r: &mut R,
    keys: &TrustStore,
    policy: &Policy,
    sink: &mut dyn EntrySink,
) -> Result<Verified, BundleError> {
    let manifest = read_header(r, keys, policy)?;
    let entries = read_payload(r, &manifest, sink)?;
    Ok(Verified { manifest, entries })
}

pub use super::sign::{
    EntrySource, ManifestInput, PayloadEntry, encode_header, public_key_of, write_bundle,
};

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
