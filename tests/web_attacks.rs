//! Attacks on the local web UI that used to succeed, replayed over real
//! HTTP on loopback against the real server: a connection flood from one
//! host (and from many), a slow request head, login guessing meant to lock
//! the rightful user out, parallel guesses, and emptying the alert rules.
//! Other client addresses are loopback aliases (127.0.0.x: the whole /8
//! reaches the loopback interface on Linux).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod web_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use carebridge::web::memory::MemoryBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use web_common::*;

const CAROL_PW: &str = "tulip kettle lantern";

async fn connect_from(src: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(format!("{src}:0").parse().unwrap())?;
    sock.connect(to).await
}

/// One request from the client address `src`.
async fn req_from(
    s: &Server,
    src: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let stream = connect_from(src, s.addr).await.unwrap();
    let host = s.addr.to_string();
    exchange(stream, raw(method, &host, path, headers, body.as_bytes())).await
}

/// A login from `src`, with the remembered-device cookie if given.
async fn login_from(s: &Server, src: &str, user: &str, pw: &str, device: Option<&str>) -> Resp {
    let body = serde_json::json!({"username": user, "password": pw}).to_string();
    let mut h = vec![("Origin", s.origin.as_str())];
    if let Some(d) = device {
        h.push(("Cookie", d));
    }
    req_from(s, src, "POST", "/api/v1/login", &h, &body).await
}

/// Every `Set-Cookie` of a response, as `name=value`.
fn cookies(r: &Resp) -> Vec<String> {
    r.head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| l[11..].trim().split(';').next().unwrap().to_string())
        .collect()
}

fn device_cookie(r: &Resp) -> String {
    cookies(r)
        .into_iter()
        .find(|c| c.starts_with("cb_device="))
        .unwrap_or_else(|| panic!("no remembered-device cookie: {r:?}"))
}

/// The wait a 429 asks for, in seconds.
fn wait_of(r: &Resp) -> u64 {
    assert_eq!(r.status, 429, "{r:?}");
    let msg = r.json()["error"].as_str().unwrap().to_string();
    let n = msg
        .rsplit("try again in ")
        .next()
        .and_then(|t| t.strip_suffix(" s"))
        .and_then(|t| t.parse().ok());
    n.unwrap_or_else(|| panic!("no wait in {msg:?}"))
}

/// A server with an installer and a carer, Carol, who has logged in before
/// from her own browser (127.0.0.3): returns her remembered-device cookie.
async fn with_carol() -> (Server, String) {
    let s = start().await;
    let admin = setup(&s).await;
    let body = serde_json::json!({"name": "carol", "role": "carer", "password": CAROL_PW});
    let r = admin
        .call(&s, "POST", "/api/v1/users", &body.to_string())
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = login_from(&s, "127.0.0.3", "carol", CAROL_PW, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let device = device_cookie(&r);
    (s, device)
}

/// Keeps `per_addr` sockets open from each address, re-opening each as
/// soon as the server closes it, on a runtime of its own (an attacker is
/// another process). Returns the stop switch and the count of opens.
fn flood(
    to: SocketAddr,
    addrs: Vec<String>,
    per_addr: usize,
) -> (
    CancellationToken,
    Arc<AtomicU64>,
    std::thread::JoinHandle<()>,
) {
    let stop = CancellationToken::new();
    let opened = Arc::new(AtomicU64::new(0));
    let (st, op) = (stop.clone(), opened.clone());
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for a in addrs {
                for _ in 0..per_addr {
                    let (st, op, a) = (st.clone(), op.clone(), a.clone());
                    tasks.push(tokio::spawn(async move {
                        while !st.is_cancelled() {
                            match connect_from(&a, to).await {
                                Ok(mut sock) => {
                                    op.fetch_add(1, Ordering::Relaxed);
                                    let mut b = [0u8; 64];
                                    // Idle until the server closes it.
                                    tokio::select! {
                                        _ = st.cancelled() => return,
                                        _ = sock.read(&mut b) => {}
                                    }
                                }
                                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                            }
                        }
                    }));
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    });
    (stop, opened, t)
}

/// Ten requests from `src`, each must be answered within 3 s.
async fn always_served(s: &Server, src: &str) {
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            req_from(s, src, "GET", "/healthz", &[], ""),
        )
        .await
        .unwrap_or_else(|_| panic!("try {i}: not served within 3 s"));
        assert_eq!(r.status, 200, "try {i}: {r:?}");
        assert!(t0.elapsed() < Duration::from_secs(3));
        slowest = slowest.max(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{src}: served 10 of 10 under the flood, slowest {slowest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_holding_400_idle_sockets_cannot_keep_a_second_client_out() {
    let s = start().await;
    let (stop, opened, t) = flood(s.addr, vec!["127.0.0.1".into()], 400);
    tokio::time::sleep(Duration::from_millis(800)).await;
    always_served(&s, "127.0.0.2").await;
    stop.cancel();
    t.join().unwrap();
    assert!(
        opened.load(Ordering::Relaxed) > 400,
        "the flood re-opened its sockets as they were closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_hosts_filling_every_slot_still_leave_room_for_a_new_client() {
    let s = start().await;
    let addrs: Vec<String> = (10..30).map(|i| format!("127.0.0.{i}")).collect();
    // 20 × 16 = 320 sockets wanted: far more than the 128 slots.
    let (stop, opened, t) = flood(s.addr, addrs, 16);
    tokio::time::sleep(Duration::from_millis(800)).await;
    always_served(&s, "127.0.0.2").await;
    stop.cancel();
    t.join().unwrap();
    assert!(opened.load(Ordering::Relaxed) >= 128);
}

#[tokio::test]
async fn a_request_head_that_trickles_in_is_cut_off() {
    let s = start().await;
    let mut sock = connect_from("127.0.0.5", s.addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    let closed = loop {
        // One header byte a second: never a whole head.
        if sock.write_all(b"X").await.is_err() {
            break t0.elapsed();
        }
        match tokio::time::timeout(Duration::from_secs(1), sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break t0.elapsed(),
            Ok(Ok(_)) => {} // a 408 may come first; the close follows
            Err(_) => {}
        }
        assert!(t0.elapsed() < Duration::from_secs(12), "still open");
    };
    assert!(closed <= Duration::from_secs(8), "closed after {closed:?}");
}

#[tokio::test]
async fn a_hundred_wrong_logins_from_one_address_never_lock_out_the_rightful_user() {
    let (s, device) = with_carol().await;
    let (mut checked, mut waits) = (0, Vec::new());
    for _ in 0..100 {
        let r = login_from(&s, "127.0.0.1", "carol", "wrong password 1", None).await;
        match r.status {
            401 => checked += 1,
            429 => waits.push(wait_of(&r)),
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert!(checked <= 5, "{checked} guesses were checked");
    assert!(waits.len() >= 95);
    assert!(waits.iter().all(|w| *w <= 60), "never an hour: {waits:?}");
    // Carol's own browser gets straight in.
    let r = login_from(&s, "127.0.0.3", "carol", CAROL_PW, Some(&device)).await;
    assert_eq!(r.status, 200, "{r:?}");
    // So does a device she never used: one address guessing counts little.
    let r = login_from(&s, "127.0.0.4", "carol", CAROL_PW, None).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn guessing_from_twenty_addresses_slows_new_devices_briefly_and_never_carols_browser() {
    let (s, device) = with_carol().await;
    let mut waits = Vec::new();
    for i in 10..30 {
        let src = format!("127.0.0.{i}");
        for _ in 0..5 {
            let r = login_from(&s, &src, "carol", "wrong password 2", None).await;
            match r.status {
                401 => {}
                429 => waits.push(wait_of(&r)),
                other => panic!("unexpected {other}: {r:?}"),
            }
        }
    }
    assert!(!waits.is_empty(), "the account's guessing was noticed");
    assert!(waits.iter().all(|w| *w <= 60), "{waits:?}");
    // Carol's browser: in, at once, while the strangers wait.
    let r = login_from(&s, "127.0.0.3", "carol", CAROL_PW, Some(&device)).await;
    assert_eq!(r.status, 200, "{r:?}");
    // A fresh device: a short delay that grows with each failure there.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let r = login_from(&s, "127.0.0.40", "carol", "wrong password 3", None).await;
        match r.status {
            429 => {
                let w = wait_of(&r);
                seen.push(w);
                tokio::time::sleep(Duration::from_secs(w)).await;
            }
            401 => {}
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    eprintln!("a fresh device's waits: {seen:?} s");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen[2] > seen[0], "the delay grows: {seen:?}");
    assert!(seen.iter().all(|w| *w <= 60), "{seen:?}");
    // And she gets in there too once she waits it out.
    let r = login_from(&s, "127.0.0.40", "carol", CAROL_PW, None).await;
    let r = if r.status == 429 {
        tokio::time::sleep(Duration::from_secs(wait_of(&r))).await;
        login_from(&s, "127.0.0.40", "carol", CAROL_PW, None).await
    } else {
        r
    };
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_simultaneous_guesses_are_counted_before_they_are_checked() {
    let (s, _) = with_carol().await;
    let s = Arc::new(s);
    let tries: Vec<_> = (0..30)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                login_from(&s, "127.0.0.50", "carol", "wrong password 4", None)
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tries {
        statuses.push(t.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    // Connections over the per-address cap are closed unanswered (0).
    let dropped = statuses.iter().filter(|s| **s == 0).count();
    assert!(checked <= 5, "{checked} checked: {statuses:?}");
    assert!(refused >= 10, "counted before checked: {statuses:?}");
    assert_eq!(checked + refused + dropped, 30, "{statuses:?}");
}

#[tokio::test]
async fn a_success_does_not_wipe_the_addresses_failures_for_other_accounts() {
    let (s, _) = with_carol().await;
    let src = "127.0.0.60";
    for u in [
        "ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ida",
    ] {
        let r = login_from(&s, src, u, "wrong password 5", None).await;
        assert_eq!(r.status, 401, "{r:?}");
    }
    let r = login_from(&s, src, "carol", CAROL_PW, None).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = login_from(&s, src, "joe", "wrong password 5", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = login_from(&s, src, "kim", "wrong password 5", None).await;
    assert!(wait_of(&r) <= 60);
}

#[tokio::test]
async fn one_account_logging_in_again_and_again_does_not_log_anyone_else_out() {
    let (s, _) = with_carol().await;
    let admin = client_from(&login(&s, "admin", PASSWORD).await);
    let first = client_from(&login_from(&s, "127.0.0.3", "carol", CAROL_PW, None).await);
    for _ in 0..carebridge::web::auth::MAX_SESSIONS_PER_USER {
        let r = login_from(&s, "127.0.0.3", "carol", CAROL_PW, None).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = admin.call(&s, "GET", "/api/v1/session", "").await;
    assert_eq!(r.status, 200, "the installer stays logged in: {r:?}");
    let r = first.call(&s, "GET", "/api/v1/session", "").await;
    assert_eq!(r.status, 401, "carol's own oldest session made room");
}

#[tokio::test]
async fn guessable_passwords_and_direction_tricks_in_names_are_refused() {
    let s = start().await;
    let admin = setup(&s).await;
    for (pw, why) in [
        ("aaaaaaaaaa", "one character repeated"),
        ("1234567890", "consecutive"),
        ("password123", "most common"),
        ("Liverpool2026!", "common word"),
    ] {
        let body = serde_json::json!({"name": "dave", "role": "carer", "password": pw});
        let r = admin
            .call(&s, "POST", "/api/v1/users", &body.to_string())
            .await;
        assert_eq!(r.status, 400, "{pw}: {r:?}");
        let j = r.json();
        assert_eq!(j["field"], "password");
        assert!(j["error"].as_str().unwrap().contains(why), "{pw}: {j}");
    }
    let body = serde_json::json!({"name": "Kitchen\u{202E}txt.exe"});
    let r = admin
        .call(&s, "PUT", "/api/v1/devices/pendant", &body.to_string())
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["field"], "name");
    assert!(r.json()["error"].as_str().unwrap().contains("U+202E"));
    // Plain HTTP (loopback) carries no HSTS: it would pin a name to HTTPS.
    let r = req(&s, "GET", "/healthz", &[], "").await;
    assert_eq!(r.header("strict-transport-security"), None);
}

const EMPTY: &str = r#"{"text": ""}"#;

async fn warnings(s: &Server, c: &Client) -> Vec<String> {
    let j = c.call(s, "GET", "/api/v1/session", "").await.json();
    j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn off_banner(w: &[String]) -> bool {
    w.iter().any(|w| w.contains("Life-safety alerts are off"))
}

#[tokio::test]
async fn emptying_the_rules_is_refused_naming_the_life_safety_rules_unless_confirmed() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = start_with(Arc::new(MemoryBackend::new().with_rules()), dir).await;
    let c = setup(&s).await;
    assert!(!off_banner(&warnings(&s, &c).await));
    let r = c.call(&s, "PUT", "/api/v1/rules", EMPTY).await;
    assert_eq!(r.status, 409, "{r:?}");
    let j = r.json();
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("panic, fall, smoke, water_leak"),
        "{j}"
    );
    assert_eq!(
        j["missing_life_safety"],
        serde_json::json!(["panic", "fall", "smoke", "water_leak"])
    );
    let g = c.call(&s, "GET", "/api/v1/rules", "").await.json();
    assert_eq!(g["active"]["version"], 0, "nothing applied");
    // A set keeping panic and fall but dropping smoke and leaks: named too.
    let partial = serde_json::json!({"text":
        "[[rule]]\nid = \"panic\"\ntype = \"immediate\"\nkinds = [\"panic\", \"fall\"]\n"});
    let r = c
        .call(&s, "PUT", "/api/v1/rules", &partial.to_string())
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(
        r.json()["missing_life_safety"],
        serde_json::json!(["smoke", "water_leak"])
    );
    // Confirmed: applied, audited, and a standing warning on every page.
    let r = c
        .call(
            &s,
            "PUT",
            "/api/v1/rules",
            r#"{"text": "", "allow_missing_life_safety": true}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = warnings(&s, &c).await;
    assert!(off_banner(&w), "{w:?}");
    assert!(w.iter().any(|w| w.contains("panic")), "{w:?}");
    let audit = c.call(&s, "GET", "/api/v1/audit", "").await.json();
    assert!(
        audit["entries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("WITHOUT life-safety"),
        "{audit}"
    );
    // Factory reset: the next household gets the default rules back.
    let r = c
        .call(
            &s,
            "POST",
            "/api/v1/system/factory-reset",
            r#"{"confirm":"RESET"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let c = setup(&s).await;
    let g = c.call(&s, "GET", "/api/v1/rules", "").await.json();
    let text = g["active"]["text"].as_str().unwrap();
    assert!(text.contains("id = \"panic\""), "{g}");
    assert_eq!(g["active"]["source"], "built-in");
    assert!(!off_banner(&warnings(&s, &c).await));
}

#[tokio::test]
async fn a_backup_without_life_safety_rules_is_not_restored_unless_confirmed() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = start_with(Arc::new(MemoryBackend::new().with_rules()), dir).await;
    let c = setup(&s).await;
    let mut doc = c.call(&s, "GET", "/api/v1/system/backup", "").await.json();
    doc["rules"]["text"] = "".into();
    let r = c
        .call(&s, "POST", "/api/v1/system/restore", &doc.to_string())
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.json()["field"], "rules");
    assert!(r.json()["error"].as_str().unwrap().contains("panic"));
    assert!(!off_banner(&warnings(&s, &c).await), "nothing restored");
    doc["allow_missing_life_safety"] = true.into();
    let r = c
        .call(&s, "POST", "/api/v1/system/restore", &doc.to_string())
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(off_banner(&warnings(&s, &c).await));
}

#[tokio::test]
async fn a_restore_says_so_when_it_adds_unseen_devices_or_plain_http_to_the_network() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let s = start_with(Arc::new(MemoryBackend::new().with_rules()), dir).await;
    let c = setup(&s).await;
    let mut doc = c.call(&s, "GET", "/api/v1/system/backup", "").await.json();
    doc["devices"] = serde_json::json!([
        {"id": "pendant", "name": "Pendant", "room": "hall"},
        {"id": "ghost-1", "name": "Ghost", "room": "attic"},
    ]);
    doc["config"] = "[gateway]\nid = \"home-1\"\n\n[web]\nlisten = \"0.0.0.0:80\"\ntls = false\nallow_plain_http = true\n".into();
    let r = c
        .call(&s, "POST", "/api/v1/system/restore", &doc.to_string())
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let w = r.json()["warnings"].clone();
    let w: Vec<&str> = w
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        w.iter()
            .any(|x| x.contains("never seen") && x.contains("ghost-1") && !x.contains("pendant")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.contains("plain HTTP") && x.contains("0.0.0.0:80")),
        "{w:?}"
    );
}

#[tokio::test]
async fn the_gateway_reports_life_safety_rules_off_until_a_reset_brings_them_back() {
    use carebridge::hub::HubCommand;
    use carebridge::rules::active::{Rules, Version};
    use carebridge::store::{Store, StoreConfig};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("carebridge.db"), &StoreConfig::default()).unwrap();
    let (hub_tx, mut hub_rx) = tokio::sync::mpsc::channel::<HubCommand>(16);
    tokio::spawn(async move {
        while let Some(cmd) = hub_rx.recv().await {
            if let HubCommand::Rules { reply, .. } = cmd {
                let _ = reply.send(Default::default());
            }
        }
    });
    let base = Version {
        version: 0,
        source: "built-in".into(),
        applied_at: 0,
        text: carebridge::rules::MINIMAL_RULES.to_string(),
    };
    let rules = Rules::new(store.clone(), hub_tx, base).with_life_safety(vec![
        carebridge::model::Kind::Panic,
        carebridge::model::Kind::Smoke,
    ]);
    let off = rules.life_safety_off();
    assert!(off.borrow().is_empty());
    let now = carebridge::wall::now();
    rules.apply("", "remote", None, now).await.unwrap();
    assert_eq!(
        *off.borrow(),
        vec![
            carebridge::model::Kind::Panic,
            carebridge::model::Kind::Smoke
        ]
    );
    let r = rules.reset().await.unwrap();
    assert_eq!(r.source, "built-in");
    assert!(off.borrow().is_empty());
    assert_eq!(rules.active().await.unwrap().source, "built-in");
    assert!(rules.history().await.unwrap().current.is_none());
}

/// A kept-alive connection from `src` after one answered request.
async fn kept_alive(s: &Server, src: &str) -> TcpStream {
    let mut sock = connect_from(src, s.addr).await.unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("{\"ok\":true}") {
        let n = tokio::time::timeout(Duration::from_secs(3), sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    sock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_kept_alive_connections_close_early_when_slots_run_short() {
    let s = start().await;
    let mut first = kept_alive(&s, "127.0.0.7").await;
    let mut second = kept_alive(&s, "127.0.0.7").await;
    // Plenty of room: they stay open for now.
    let mut b = [0u8; 8];
    let quiet = tokio::time::timeout(Duration::from_millis(300), first.read(&mut b)).await;
    assert!(quiet.is_err(), "closed with slots to spare");
    let t0 = Instant::now();
    let addrs: Vec<String> = (70..78).map(|i| format!("127.0.0.{i}")).collect();
    let (stop, _, t) = flood(s.addr, addrs, 12);
    // One of the two goes at once; an address's last connection may stay
    // (a browser keeps one open), so wait for the first that closes.
    let (mut b0, mut b1) = ([0u8; 8], [0u8; 8]);
    let closed = tokio::time::timeout(Duration::from_secs(4), async {
        tokio::select! {
            r = first.read(&mut b0) => r,
            r = second.read(&mut b1) => r,
        }
    })
    .await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle kept-alive connections stayed open under pressure: {closed:?}"
    );
    // Well before the 5 s head timeout would have closed them.
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    stop.cancel();
    t.join().unwrap();
}

#[test]
fn the_gateway_makes_its_data_private_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("web")).unwrap();
    let creds = data.join("web/setup-code");
    std::fs::write(&creds, b"ABCD-EFGH-JKMN\n").unwrap();
    for (p, m) in [(&data, 0o755), (&creds, 0o644)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    // No cloud needed: the uplink just keeps retrying a closed port.
    let mut gw = common::Gateway::start(dir.path(), "gw-private", common::free_port(), "");
    let db = data.join("carebridge.db");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600, "carebridge.db");
    assert_eq!(mode(&creds), 0o600);
    for side in ["carebridge.db-wal", "carebridge.db-shm"] {
        let p = data.join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    gw.stop();
}
