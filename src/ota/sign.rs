//! Making a signed bundle (the release engineer's side of [`super::bundle`]):
//! the manifest fields chosen by the signer, the payload entries, and
//! `write_bundle`, which refuses what a gateway would refuse to install
//! (clashing entry names, a downgrade bundle without an expiry).

use std::io::{self, Read, Write};
use std::path::PathBuf;

use ring::digest;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::archive::{self, ArchiveError, EntryHeader};
use super::bundle::{BundleError, FORMAT, MAGIC, Manifest};
use super::keys;
use super::version::Version;

/// Where an entry's bytes come from when signing.
#[derive(Debug, Clone)]
pub enum EntrySource {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// One file to put in a bundle.
#[derive(Debug, Clone)]
pub struct PayloadEntry {
    pub name: String,
    pub executable: bool,
    pub source: EntrySource,
}

/// The manifest fields chosen by the release engineer.
#[derive(Debug, Clone)]
pub struct ManifestInput {
    pub version: String,
    pub arch: String,
    pub min_version: Option<String>,
    pub allow_downgrade: bool,
    /// RFC 3339; `None` means now.
    pub created: Option<String>,
    /// RFC 3339; `None`: never expires (not allowed with `allow_downgrade`).
    pub expires: Option<String>,
    /// Gateway ids and fleet names the bundle is for; both empty: any gateway.
    pub gateways: Vec<String>,
    pub fleets: Vec<String>,
}

fn entry_len(e: &PayloadEntry) -> io::Result<u64> {
    match &e.source {
        EntrySource::File(p) => Ok(std::fs::metadata(p)?.len()),
        EntrySource::Bytes(b) => Ok(b.len() as u64),
    }
}

/// Writes the archive to `out`, returning its size.
fn write_payload(entries: &[PayloadEntry], out: &mut dyn Write) -> io::Result<u64> {
    let mut total = 0u64;
    for e in entries {
        let size = entry_len(e)?;
        let mut h = Vec::new();
        archive::encode_entry_header(
            &EntryHeader {
                name: e.name.clone(),
                executable: e.executable,
                size,
            },
            &mut h,
        );
        out.write_all(&h)?;
        let copied = match &e.source {
            EntrySource::File(p) => io::copy(&mut std::fs::File::open(p)?.take(size), out)?,
            EntrySource::Bytes(b) => {
                out.write_all(b)?;
                b.len() as u64
            }
        };
        if copied != size {
            return Err(io::Error::other(format!(
                "{} changed while signing",
                e.name
            )));
        }
        total += h.len() as u64 + size;
    }
    Ok(total)
}

struct HashWriter(digest::Context);
impl Write for HashWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Builds and signs a bundle. Streams twice over the entries (hash, then
/// write), so large files are never held in memory.
pub fn write_bundle(
    key: &Ed25519KeyPair,
    key_id: &str,
    input: &ManifestInput,
    entries: &[PayloadEntry],
    out: &mut dyn Write,
) -> Result<Manifest, BundleError> {
    if !keys::valid_key_id(key_id) {
        return Err(BundleError::BadHeader(format!(
            "key id {key_id:?} is invalid"
        )));
    }
    Version::parse(&input.version).map_err(BundleError::BadManifest)?;
    if let Some(min) = &input.min_version {
        Version::parse(min).map_err(BundleError::BadManifest)?;
    }
    if let Some(e) = &input.expires {
        crate::model::Time::parse_rfc3339(e).map_err(|_| {
            BundleError::BadManifest(format!("expires {e:?} is not an RFC 3339 time"))
        })?;
    } else if input.allow_downgrade {
        return Err(BundleError::BadManifest(
            "allow_downgrade needs an expiry (--expires): a downgrade bundle must not stay valid for ever"
                .into(),
        ));
    }
    // The device refuses what it could not unpack into one directory:
    // never sign such a bundle.
    archive::check_names(entries.iter().map(|e| e.name.as_str())).map_err(BundleError::Archive)?;
    if !entries
        .iter()
        .any(|e| e.name == archive::BINARY_NAME && e.executable)
    {
        return Err(BundleError::Archive(ArchiveError::MissingBinary));
    }
    let mut hw = HashWriter(digest::Context::new(&digest::SHA256));
    let size = write_payload(entries, &mut hw).map_err(BundleError::Io)?;
    let manifest = Manifest {
        format: FORMAT,
        version: input.version.clone(),
        arch: input.arch.clone(),
        min_version: input.min_version.clone(),
        payload_size: size,
        payload_sha256: hex::encode(hw.0.finish().as_ref()),
        created: input
            .created
            .clone()
            .unwrap_or_else(|| crate::wall::now().to_rfc3339()),
        allow_downgrade: input.allow_downgrade,
        key_id: key_id.to_string(),
        expires: input.expires.clone(),
        gateways: input.gateways.clone(),
        fleets: input.fleets.clone(),
    };
    let json =
        serde_json::to_vec(&manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    let header = encode_header(key_id, &json);
    let sig = key.sign(&header);
    out.write_all(&header).map_err(BundleError::Io)?;
    out.write_all(sig.as_ref()).map_err(BundleError::Io)?;
    let written = write_payload(entries, out).map_err(BundleError::Io)?;
    if written != size {
        return Err(BundleError::Io(io::Error::other(
            "an entry changed while signing",
        )));
    }
    Ok(manifest)
}

/// The unsigned header bytes for a key id and manifest JSON.
pub fn encode_header(key_id: &str, manifest_json: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(13 + key_id.len() + manifest_json.len());
    h.extend_from_slice(MAGIC);
    h.push(key_id.len().min(255) as u8);
    h.extend_from_slice(key_id.as_bytes());
    h.extend_from_slice(&(manifest_json.len() as u32).to_be_bytes());
    h.extend_from_slice(manifest_json);
    h
}

/// The raw public key of a key pair (for trust stores in tests and tools).
pub fn public_key_of(key: &Ed25519KeyPair) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(key.public_key().as_ref());
    k
}
