//! The `cmd/update` command and a resumable, size-capped HTTP/1.1 downloader.
//!
//! Command payload (JSON on `<prefix>/<gateway>/cmd/update`):
//! `{"url":"https://updates.example.org/carebridge-1.4.2-aarch64.cbb","sha256":"<64 hex>","size":123456}`
//! (`size` optional). Progress and the result are [`Progress`] documents the
//! integrator publishes on `…/cmd/update/result`.
//!
//! Transport: HTTPS (rustls with the ring provider, roots from `ca_file` or
//! the system bundle) for any host; plain `http://` only to loopback hosts
//! (tests, a local proxy). One `GET` per attempt with `Range: bytes=N-` to
//! resume a `.partial` file; a `200` answer restarts from zero, a `206` must
//! start exactly at N. The total is capped at `max_size` before and while
//! reading, the SHA-256 of the whole file is checked before it is renamed
//! into place. No redirects, no chunked encoding (static file servers and
//! CDNs send `Content-Length`).
//!
//! Blocking I/O: the integrator runs it on `spawn_blocking`.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hex::FromHex;
use ring::digest;
use serde::{Deserialize, Serialize};

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("update command: {0}")]
    BadCommand(String),
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: the file is {size} bytes, over the limit of {max}")]
    TooLarge { url: String, size: u64, max: u64 },
    #[error("{url}: SHA-256 is {actual}, the command says {expected}")]
    HashMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: size is {actual}, the command says {expected}")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl DownloadError {
    /// True when retrying cannot help (bad command, wrong file).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            DownloadError::BadCommand(_)
                | DownloadError::TooLarge { .. }
                | DownloadError::HashMismatch { .. }
                | DownloadError::SizeMismatch { .. }
        )
    }
}

pub use crate::config::HttpUrl as Url;

/// The `cmd/update` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCommand {
    pub url: String,
    pub sha256: String,
    #[serde(default)]
    pub size: Option<u64>,
}

impl UpdateCommand {
    /// Parses and validates a command payload.
    pub fn parse(json: &[u8]) -> Result<UpdateCommand, DownloadError> {
        let c: UpdateCommand =
            serde_json::from_slice(json).map_err(|e| DownloadError::BadCommand(e.to_string()))?;
        Url::parse(&c.url).map_err(DownloadError::BadCommand)?;
        if <[u8; 32]>::from_hex(&c.sha256).is_err() {
            return Err(DownloadError::BadCommand(
                "sha256 must be 64 hex characters".into(),
            ));
        }
        Ok(c)
    }
}

/// Where an update stands; published on `cmd/update/result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Downloading,
    Verifying,
    Installed,
    Committed,
    RolledBack,
    Failed,
}

/// A progress or result document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    pub received: u64,
    pub total: Option<u64>,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// Download settings.
#[derive(Clone)]
pub struct Downloader {
    pub max_size: u64,
    pub timeout: Duration,
    /// Attempts (each resumes where the last stopped).
    pub attempts: u32,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader")
            .field("max_size", &self.max_size)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// A TLS client configuration trusting the PEM certificates in `ca_file`
/// (default: the system bundle `/etc/ssl/certs/ca-certificates.crt`).
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, DownloadError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let path = ca_file.unwrap_or(Path::new("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| DownloadError::Tls(format!("{}: {e}", path.display())))?
    {
        let cert = cert.map_err(|e| DownloadError::Tls(format!("{}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| DownloadError::Tls(format!("{}: {e}", path.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DownloadError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The parsed head of an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub content_length: Option<u64>,
    /// `(first, total)` of `Content-Range: bytes first-last/total`.
    pub content_range: Option<(u64, Option<u64>)>,
    pub chunked: bool,
}

/// Parses a response head (up to and excluding the blank line).
pub fn parse_head(head: &str) -> Result<ResponseHead, String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut h = ResponseHead {
        status,
        content_length: None,
        content_range: None,
        chunked: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                h.content_length = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad Content-Length {value:?}"))?,
                );
            }
            "content-range" => {
                let bad = || format!("bad Content-Range {value:?}");
                let spec = value.strip_prefix("bytes ").ok_or_else(bad)?;
                let (range, total) = spec.split_once('/').ok_or_else(bad)?;
                let first = range
                    .split_once('-')
                    .and_then(|(a, _)| a.parse::<u64>().ok())
                    .ok_or_else(bad)?;
                h.content_range = Some((first, total.parse().ok()));
            }
            "transfer-encoding" => h.chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    Ok(h)
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl Downloader {
    /// Defaults: the given cap, 30 s I/O timeout, 5 attempts, no TLS config
    /// (https URLs then fail until [`tls_config`] is set).
    pub fn new(max_size: u64) -> Self {
        Downloader {
            max_size,
            timeout: Duration::from_secs(30),
            attempts: 5,
            tls: None,
        }
    }

    fn connect(&self, url: &Url, raw: &str) -> Result<Box<dyn Stream>, DownloadError> {
        let http = |reason: String| DownloadError::Http {
            url: raw.to_string(),
            reason,
        };
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .map_err(|e| http(format!("connect: {e}")))?;
        tcp.set_read_timeout(Some(self.timeout))
            .and_then(|()| tcp.set_write_timeout(Some(self.timeout)))
            .map_err(|e| http(e.to_string()))?;
        if !url.tls {
            return Ok(Box::new(tcp));
        }
        let cfg = self
            .tls
            .clone()
            .ok_or_else(|| DownloadError::Tls("no TLS configuration for https".into()))?;
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| http(format!("server name: {e}")))?;
        let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| http(e.to_string()))?;
        Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }

    /// One GET from `offset`, appending to `file`. Returns the total size if known.
    fn fetch_once(
        &self,
        url: &Url,
        raw: &str,
        file: &mut fs::File,
        offset: &mut u64,
        ctx: &mut digest::Context,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Option<u64>, DownloadError> {
        let http = |reason: String| DownloadError::Http {
            url: raw.to_string(),
            reason,
        };
        let mut s = self.connect(url, raw)?;
        let host = if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        let mut req = format!(
            "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: carebridge-ota/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n",
            url.path,
            url.port,
            env!("CARGO_PKG_VERSION")
        );
        if *offset > 0 {
            req.push_str(&format!("Range: bytes={offset}-\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .and_then(|()| s.flush())
            .map_err(|e| http(format!("send: {e}")))?;
        // Read the head byte by byte-ish: small reads until the blank line, capped.
        let mut head = Vec::with_capacity(1024);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(http("response head over 16 KiB".into()));
            }
            match s.read(&mut byte) {
                Ok(0) => return Err(http("connection closed in the response head".into())),
                Ok(_) => head.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(http(format!("read: {e}"))),
            }
        }
        let text = String::from_utf8_lossy(&head[..head.len() - 4]).into_owned();
        let h = parse_head(&text).map_err(http)?;
        if h.chunked {
            return Err(http("chunked transfer encoding is not supported".into()));
        }
        let total = match h.status {
            206 => {
                let (first, total) = h
                    .content_range
                    .ok_or_else(|| http("206 without Content-Range".into()))?;
                if first != *offset {
                    return Err(http(format!("asked for byte {offset}, got {first}")));
                }
                total
            }
            200 => {
                if *offset > 0 {
                    // The server ignored Range: start again from zero.
                    file.set_len(0)
                        .and_then(|()| file.rewind())
                        .map_err(|e| http(e.to_string()))?;
                    *offset = 0;
                    *ctx = digest::Context::new(&digest::SHA256);
                }
                h.content_length
            }
            416 => Some(*offset),
            other => return Err(http(format!("HTTP status {other}"))),
        };
        if let Some(t) = total
            && t > self.max_size
        {
            return Err(DownloadError::TooLarge {
                url: raw.to_string(),
                size: t,
                max: self.max_size,
            });
        }
        if h.status == 416 {
            return Ok(total);
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // rustls reports a peer that closes without close_notify this way;
                // the length and hash checks decide whether the file is whole.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && total.is_some() => break,
                Err(e) => return Err(http(format!("read: {e}"))),
            };
            if *offset + n as u64 > self.max_size {
                return Err(DownloadError::TooLarge {
                    url: raw.to_string(),
                    size: *offset + n as u64,
                    max: self.max_size,
                });
            }
            file.write_all(&buf[..n])
                .map_err(|e| http(format!("write: {e}")))?;
            ctx.update(&buf[..n]);
            *offset += n as u64;
            progress(*offset, total);
            if total.is_some_and(|t| *offset >= t) {
                break;
            }
        }
        Ok(total)
    }

    /// Downloads `cmd.url` to `dest` (via `dest.partial`, resumed if present),
    /// checking size cap, declared size and SHA-256. Returns the size.
    pub fn download(
        &self,
        cmd: &UpdateCommand,
        dest: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, DownloadError> {
        self.download_inner(cmd, Some(&cmd.sha256), dest, progress)
    }

    /// Fetches a small document (e.g. the poll document) into memory, capped
    /// at `max_size`, without a hash check.
    pub fn fetch_small(&self, url: &str, scratch: &Path) -> Result<Vec<u8>, DownloadError> {
        let cmd = UpdateCommand {
            url: url.to_string(),
            sha256: String::new(),
            size: None,
        };
        let _ = fs::remove_file(scratch.with_extension("partial"));
        self.download_inner(&cmd, None, scratch, &mut |_, _| {})?;
        let body = fs::read(scratch).map_err(|source| DownloadError::Io {
            path: scratch.to_path_buf(),
            source,
        });
        let _ = fs::remove_file(scratch);
        body
    }

    fn download_inner(
        &self,
        cmd: &UpdateCommand,
        sha256: Option<&str>,
        dest: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, DownloadError> {
        let url = Url::parse(&cmd.url).map_err(DownloadError::BadCommand)?;
        if let Some(size) = cmd.size
            && size > self.max_size
        {
            return Err(DownloadError::TooLarge {
                url: cmd.url.clone(),
                size,
                max: self.max_size,
            });
        }
        let partial = dest.with_extension("partial");
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| DownloadError::Io { path: p, source }
        };
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(io_err(&partial))?;
        // Seed the hash with what an earlier run already fetched.
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut offset = io::copy(
            &mut (&file).take(self.max_size + 1),
            &mut HashSink(&mut ctx),
        )
        .map_err(io_err(&partial))?;
        if offset > self.max_size {
            file.set_len(0).map_err(io_err(&partial))?;
            offset = 0;
            ctx = digest::Context::new(&digest::SHA256);
        }
        file.seek(io::SeekFrom::Start(offset))
            .map_err(io_err(&partial))?;
        let mut last_err = None;
        let mut total = None;
        for _ in 0..self.attempts.max(1) {
            match self.fetch_once(&url, &cmd.url, &mut file, &mut offset, &mut ctx, progress) {
                Ok(t) => {
                    total = t;
                    if t.is_none_or(|t| offset >= t) {
                        last_err = None;
                        break;
                    }
                    last_err = Some(DownloadError::Http {
                        url: cmd.url.clone(),
                        reason: format!("connection closed at byte {offset}"),
                    });
                }
                Err(e) if e.is_refusal() => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        let expected = cmd.size.or(total);
        if let Some(exp) = expected
            && exp != offset
        {
            return Err(DownloadError::SizeMismatch {
                url: cmd.url.clone(),
                expected: exp,
                actual: offset,
            });
        }
        let actual = hex::encode(ctx.finish().as_ref());
        if let Some(expected) = sha256
            && !actual.eq_ignore_ascii_case(expected)
        {
            let _ = fs::remove_file(&partial);
            return Err(DownloadError::HashMismatch {
                url: cmd.url.clone(),
                expected: expected.to_string(),
                actual,
            });
        }
        file.sync_all().map_err(io_err(&partial))?;
        drop(file);
        fs::rename(&partial, dest).map_err(io_err(dest))?;
        Ok(offset)
    }
}

struct HashSink<'a>(&'a mut digest::Context);
impl Write for HashSink<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
