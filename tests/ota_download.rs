//! The `cmd/update` delivery path against a local HTTP server started by the
//! test on 127.0.0.1: resumable download (Range), size cap, hash check, then
//! install from the downloaded file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use carebridge::ota::download::{DownloadError, Downloader, UpdateCommand};
use carebridge::ota::install;
use ota_support::*;

/// How the test server misbehaves.
#[derive(Clone, Copy)]
struct Faults {
    /// Close the connection after this many body bytes on the first request.
    cut_first_at: Option<usize>,
    /// Ignore Range headers (always 200 with the whole file).
    ignore_range: bool,
    /// Announce this Content-Length instead of the real one.
    claim_len: Option<u64>,
}

struct Server {
    url: String,
    requests: Arc<AtomicUsize>,
    ranges: Arc<Mutex<Vec<Option<u64>>>>,
}

fn serve(body: Vec<u8>, faults: Faults) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/updates/v2.cbb", l.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let (req2, ranges2) = (requests.clone(), ranges.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            let n = req2.fetch_add(1, Ordering::SeqCst);
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut from: Option<u64> = None;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    from = v.trim().trim_end_matches('-').parse().ok();
                }
            }
            ranges2.lock().unwrap().push(from);
            let start = if faults.ignore_range {
                0
            } else {
                from.unwrap_or(0) as usize
            };
            let part = &body[start.min(body.len())..];
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
                    part.len(),
                    start,
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    faults.claim_len.unwrap_or(part.len() as u64)
                )
            };
            let _ = s.write_all(head.as_bytes());
            let send = match faults.cut_first_at {
                Some(c) if n == 0 => &part[..c.min(part.len())],
                _ => part,
            };
            let _ = s.write_all(send);
        }
    });
    Server {
        url,
        requests,
        ranges,
    }
}

fn sha(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

#[test]
fn interrupted_download_resumes_with_range_then_installs() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let big = format!("#!/bin/sh\n# {}\n", "x".repeat(200_000));
    let b = bundle(kr.signer(), "2.0.0", &big);
    let srv = serve(
        b.clone(),
        Faults {
            cut_first_at: Some(70_000),
            ignore_range: false,
            claim_len: None,
        },
    );
    let cmd = UpdateCommand::parse(
        format!(
            r#"{{"url":"{}","sha256":"{}","size":{}}}"#,
            srv.url,
            sha(&b),
            b.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let dest = d.path().join("dl.cbb");
    let mut seen = Vec::new();
    let n = Downloader::new(1 << 20)
        .download(&cmd, &dest, &mut |got, total| seen.push((got, total)))
        .unwrap();
    assert_eq!(n, b.len() as u64);
    assert_eq!(srv.requests.load(Ordering::SeqCst), 2);
    assert_eq!(*srv.ranges.lock().unwrap(), [None, Some(70_000)]);
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress is monotonic"
    );
    let done = install::install_bundle_from_reader(
        &mut std::fs::File::open(&dest).unwrap(),
        &paths,
        &kr.store(),
        &opts(),
    )
    .unwrap();
    assert_eq!(done.version, "2.0.0");
    assert_eq!(install::current_version(&paths).as_deref(), Some("2.0.0"));
}

#[test]
fn server_ignoring_range_restarts_from_zero_and_still_verifies() {
    let d = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let srv = serve(
        body.clone(),
        Faults {
            cut_first_at: Some(10_000),
            ignore_range: true,
            claim_len: None,
        },
    );
    let cmd = UpdateCommand {
        url: srv.url.clone(),
        sha256: sha(&body),
        size: None,
    };
    let dest = d.path().join("f");
    Downloader::new(1 << 20)
        .download(&cmd, &dest, &mut |_, _| {})
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn download_over_the_size_cap_is_refused_before_the_body() {
    let d = tempfile::tempdir().unwrap();
    let srv = serve(
        vec![0u8; 10],
        Faults {
            cut_first_at: None,
            ignore_range: false,
            claim_len: Some(10 << 30),
        },
    );
    let cmd = UpdateCommand {
        url: srv.url.clone(),
        sha256: "0".repeat(64),
        size: None,
    };
    let e = Downloader::new(1 << 20)
        .download(&cmd, &d.path().join("f"), &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(e, DownloadError::TooLarge { .. }), "{e}");
    // A declared size over the cap is refused without connecting at all.
    let cmd = UpdateCommand {
        size: Some(2 << 20),
        ..cmd
    };
    let before = srv.requests.load(Ordering::SeqCst);
    assert!(matches!(
        Downloader::new(1 << 20).download(&cmd, &d.path().join("g"), &mut |_, _| {}),
        Err(DownloadError::TooLarge { .. })
    ));
    assert_eq!(srv.requests.load(Ordering::SeqCst), before);
}

#[test]
fn wrong_hash_is_refused_and_the_partial_file_dropped() {
    let d = tempfile::tempdir().unwrap();
    let srv = serve(
        b"hello".to_vec(),
        Faults {
            cut_first_at: None,
            ignore_range: false,
            claim_len: None,
        },
    );
    let cmd = UpdateCommand {
        url: srv.url.clone(),
        sha256: sha(b"other"),
        size: None,
    };
    let dest = d.path().join("f");
    let e = Downloader::new(1 << 20)
        .download(&cmd, &dest, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(e, DownloadError::HashMismatch { .. }), "{e}");
    assert!(e.is_refusal());
    assert!(!dest.exists() && !dest.with_extension("partial").exists());
}

#[test]
fn unreachable_server_is_a_retryable_failure() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cmd = UpdateCommand {
        url: format!("http://127.0.0.1:{port}/x"),
        sha256: "0".repeat(64),
        size: None,
    };
    let d = tempfile::tempdir().unwrap();
    let mut dl = Downloader::new(1 << 20);
    dl.attempts = 2;
    let e = dl
        .download(&cmd, &d.path().join("f"), &mut |_, _| {})
        .unwrap_err();
    assert!(!e.is_refusal(), "{e}");
}

/// A CA and a leaf certificate for 127.0.0.1, made with the `openssl` CLI.
fn make_certs(
    dir: &std::path::Path,
) -> Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let script = r#"set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -subj /CN=test-ca -days 2 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext 2>/dev/null
"#;
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| {
        (
            dir.join("ca.pem"),
            dir.join("leaf.pem"),
            dir.join("leaf.key"),
        )
    })
}

#[test]
fn https_download_verifies_the_server_against_the_configured_ca() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let Some((ca, leaf, key)) = make_certs(d.path()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is needed for this test"
        );
        eprintln!("SKIP: openssl not available");
        return;
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let scfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 7) as u8).collect();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let served = body.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(tcp) = conn else { return };
            let Ok(sc) = rustls::ServerConnection::new(scfg.clone()) else {
                return;
            };
            let mut s = rustls::StreamOwned::new(sc, tcp);
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut b).unwrap_or(0) == 0 {
                    break;
                }
                head.push(b[0]);
            }
            if head.is_empty() {
                continue;
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                served.len()
            );
            let _ = s.write_all(&served);
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    });
    let cmd = UpdateCommand {
        url: format!("https://127.0.0.1:{port}/v2.cbb"),
        sha256: sha(&body),
        size: Some(body.len() as u64),
    };
    let mut dl = Downloader::new(1 << 20);
    dl.tls = Some(carebridge::ota::download::tls_config(Some(&ca)).unwrap());
    let dest = d.path().join("f");
    dl.download(&cmd, &dest, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    // A client that does not trust this CA refuses the server.
    let mut other = Downloader::new(1 << 20);
    other.attempts = 1;
    other.tls = Some(carebridge::ota::download::tls_config(Some(&leaf)).unwrap());
    let e = other
        .download(&cmd, &d.path().join("g"), &mut |_, _| {})
        .unwrap_err();
    assert!(!e.is_refusal(), "{e}");
}

#[test]
fn update_command_flow_downloads_installs_and_reports_progress() {
    use carebridge::ota::OtaConfig;
    use carebridge::ota::download::Phase;
    use carebridge::ota::update::handle_update_command;
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let cfg = OtaConfig {
        keys_dir: kr.dir.clone(),
        ..OtaConfig::default()
    };
    // This machine's architecture, as the real flow checks it.
    let mut inp = input("2.0.0");
    inp.arch = std::env::consts::ARCH.into();
    let b = bundle_with(
        kr.signer(),
        &inp,
        &format!("#!/bin/sh\n#{}\n", "y".repeat(100_000)),
    );
    let srv = serve(
        b.clone(),
        Faults {
            cut_first_at: None,
            ignore_range: false,
            claim_len: None,
        },
    );
    let payload = format!(r#"{{"url":"{}","sha256":"{}"}}"#, srv.url, sha(&b));
    let mut seen = Vec::new();
    let fin = handle_update_command(
        payload.as_bytes(),
        &cfg,
        &paths,
        &Default::default(),
        &mut |p| seen.push(p.clone()),
    );
    assert_eq!(fin.phase, Phase::Installed, "{fin:?}");
    assert_eq!(fin.version.as_deref(), Some("2.0.0"));
    assert!(seen.iter().any(|p| p.phase == Phase::Downloading));
    assert!(seen.len() <= 13, "progress is throttled: {}", seen.len());
    assert_eq!(install::current_version(&paths).as_deref(), Some("2.0.0"));
    assert!(!paths.download.exists());
    let json = serde_json::to_string(&fin).unwrap();
    assert!(json.contains("\"phase\":\"installed\""), "{json}");

    // A refused bundle (a downgrade now) ends as `failed` with the reason.
    let old = bundle_with(
        kr.signer(),
        &{
            let mut i = input("1.5.0");
            i.arch = std::env::consts::ARCH.into();
            i
        },
        "#!/bin/sh\n",
    );
    carebridge::ota::recover::commit_now(&paths, carebridge::model::Time::from_secs(9)).unwrap();
    let srv = serve(
        old.clone(),
        Faults {
            cut_first_at: None,
            ignore_range: false,
            claim_len: None,
        },
    );
    let payload = format!(r#"{{"url":"{}","sha256":"{}"}}"#, srv.url, sha(&old));
    let fin = handle_update_command(
        payload.as_bytes(),
        &cfg,
        &paths,
        &Default::default(),
        &mut |_| {},
    );
    assert_eq!(fin.phase, Phase::Failed);
    assert!(
        fin.error
            .unwrap()
            .contains("older than the installed 2.0.0")
    );
    let fin = handle_update_command(
        b"{\"url\":1}",
        &cfg,
        &paths,
        &Default::default(),
        &mut |_| {},
    );
    assert!(fin.error.unwrap().starts_with("update command:"));
}

#[test]
fn update_commands_refuse_rolled_back_expired_and_untargeted_bundles_and_install_targeted_ones() {
    use carebridge::model::Time;
    use carebridge::ota::OtaConfig;
    use carebridge::ota::bundle::Target;
    use carebridge::ota::download::Phase;
    use carebridge::ota::recover::{self, Recovery};
    use carebridge::ota::update::handle_update_command;
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    // This test's clock is taken as it is (CI machines are often not
    // NTP-synchronised); the trusted-clock wait is checked at the end.
    let cfg = OtaConfig {
        keys_dir: kr.dir.clone(),
        expiry_needs_trusted_clock: false,
        ..OtaConfig::default()
    };
    let me = Target {
        gateway: "gw-1".into(),
        fleets: vec!["north".into()],
    };
    let here = |v: &str| {
        let mut i = input(v);
        i.arch = std::env::consts::ARCH.into();
        i
    };
    let update = |b: &[u8]| {
        let srv = serve(
            b.to_vec(),
            Faults {
                cut_first_at: None,
                ignore_range: false,
                claim_len: None,
            },
        );
        let payload = format!(r#"{{"url":"{}","sha256":"{}"}}"#, srv.url, sha(b));
        handle_update_command(payload.as_bytes(), &cfg, &paths, &me, &mut |_| {})
    };

    // 2.0.0 arrives by cmd/update, fails its trial and is rolled back.
    let crashing = bundle_with(kr.signer(), &here("2.0.0"), CRASH_SCRIPT);
    assert_eq!(update(&crashing).phase, Phase::Installed);
    let mut r = Recovery::Normal {
        current: String::new(),
    };
    for s in 0..4 {
        r = recover::recover(&paths, &policy(), None, Time::from_secs(100 + s)).unwrap();
    }
    assert!(matches!(r, Recovery::RolledBack { .. }), "{r:?}");
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));

    // The same bundle again (a replayed command): refused, never re-installed.
    let fin = update(&crashing);
    assert_eq!(fin.phase, Phase::Failed, "{fin:?}");
    let e = fin.error.unwrap_or_default();
    assert!(
        e.contains("version 2.0.0 was rolled back on this gateway"),
        "{e}"
    );
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));

    // Expired: refused with both times.
    let mut i = here("2.1.0");
    i.expires = Some("2020-01-01T00:00:00Z".into());
    let fin = update(&bundle_with(kr.signer(), &i, &healthy_script("2.1.0")));
    let e = fin.error.unwrap_or_default();
    assert!(
        e.contains("bundle 2.1.0 expired at 2020-01-01T00:00:00Z"),
        "{e}"
    );

    // For another gateway and another fleet: refused, naming both sides.
    let mut i = here("2.1.0");
    i.gateways = vec!["gw-2".into()];
    i.fleets = vec!["south".into()];
    let fin = update(&bundle_with(kr.signer(), &i, &healthy_script("2.1.0")));
    let e = fin.error.unwrap_or_default();
    assert!(e.contains("not for this gateway"), "{e}");
    assert!(
        e.contains("\"gw-2\"") && e.contains("\"gw-1\"") && e.contains("\"north\""),
        "{e}"
    );
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));

    // With the default `expiry_needs_trusted_clock`, an expiring bundle
    // waits while this machine's clock is not trusted (no NTP, no RTC).
    let mut i = here("2.1.0");
    i.expires = Some("2099-01-01T00:00:00Z".into());
    let expiring = bundle_with(kr.signer(), &i, &healthy_script("2.1.0"));
    if !carebridge::app::TrustProbe::default().check().0 {
        let strict = OtaConfig {
            keys_dir: kr.dir.clone(),
            ..OtaConfig::default()
        };
        let srv = serve(
            expiring.clone(),
            Faults {
                cut_first_at: None,
                ignore_range: false,
                claim_len: None,
            },
        );
        let payload = format!(r#"{{"url":"{}","sha256":"{}"}}"#, srv.url, sha(&expiring));
        let fin = handle_update_command(payload.as_bytes(), &strict, &paths, &me, &mut |_| {});
        let e = fin.error.unwrap_or_default();
        assert!(e.contains("is not trusted yet"), "{e}");
        assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
    }

    // A newer version, for this gateway's fleet, not yet expired: installed.
    let mut i = here("2.1.0");
    i.fleets = vec!["south".into(), "north".into()];
    i.expires = Some("2099-01-01T00:00:00Z".into());
    let fin = update(&bundle_with(kr.signer(), &i, &healthy_script("2.1.0")));
    assert_eq!(fin.phase, Phase::Installed, "{fin:?}");
    assert_eq!(install::current_version(&paths).as_deref(), Some("2.1.0"));
    let m = install::release_manifest(&paths, "2.1.0").unwrap();
    assert_eq!(m.fleets, vec!["south".to_string(), "north".to_string()]);
}
