//! The serial-board reader: a thread per `[[serial]]` port that splits the
//! bytes into lines, parses them with the core's line parser
//! ([`carebridge_core::line`]) and sends readings and link status to the hub.
//!
//! Invariant: the reader thread never exits except on shutdown or when the
//! hub's channel is closed; a vanished port is reopened every
//! `reopen_interval`.

use std::io::Read;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use carebridge_core::line::*;

use crate::model::{Ingest, LinkStatus};

/// Reads one board until `shutdown`, sending readings and link status to `out`.
pub async fn run(
    cfg: SerialBoardConfig,
    out: mpsc::Sender<Ingest>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || read_board(&cfg, &out, &shutdown))
        .await
        .map_err(|e| anyhow::anyhow!("serial board thread panicked: {e}"))
}

fn status(link: &str, up: bool, detail: String) -> Ingest {
    Ingest::Link(LinkStatus {
        link: link.into(),
        up,
        detail,
        at: crate::wall::now(),
    })
}

fn read_board(cfg: &SerialBoardConfig, out: &mpsc::Sender<Ingest>, shutdown: &CancellationToken) {
    let link = cfg.link_name();
    let mut bad_lines: u64 = 0;
    let mut reported_down = false;
    while !shutdown.is_cancelled() {
        let port = serialport::new(&cfg.port, cfg.baud)
            .timeout(Duration::from_millis(50))
            .open_native();
        let mut port = match port {
            Ok(p) => p,
            Err(e) => {
                if !reported_down {
                    reported_down = true;
                    if out
                        .blocking_send(status(
                            &link,
                            false,
                            format!("cannot open {}: {e}", cfg.port),
                        ))
                        .is_err()
                    {
                        return;
                    }
                }
                sleep_unless(cfg.reopen_interval.0, shutdown);
                continue;
            }
        };
        if out
            .blocking_send(status(&link, true, format!("reading {}", cfg.port)))
            .is_err()
        {
            return;
        }
        let mut split = LineSplitter::default();
        let mut buf = [0u8; 512];
        let mut last_report = Instant::now() - Duration::from_secs(10);
        let why = loop {
            if shutdown.is_cancelled() {
                return;
            }
            let n = match port.read(&mut buf) {
                Ok(0) => break "port closed".to_string(),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => break format!("port vanished: {e}"),
            };
            let mut msgs = Vec::new();
            split.push(&buf[..n], |l| {
                let r = l.and_then(|b| {
                    std::str::from_utf8(b)
                        .map_err(|_| LineError::NotUtf8)
                        .map(|s| (s, parse_line(s, crate::wall::now(), cfg.checksum)))
                });
                match r {
                    Ok((_, Ok(Some(reading)))) => msgs.push(Ingest::Reading(reading)),
                    Ok((_, Ok(None))) => {}
                    Ok((text, Err(e))) => {
                        msgs.push(bad(&link, &mut bad_lines, text, &e, &mut last_report))
                    }
                    Err(e) => msgs.push(bad(&link, &mut bad_lines, "", &e, &mut last_report)),
                }
            });
            for m in msgs {
                if let Ingest::Link(l) = &m
                    && l.detail.is_empty()
                {
                    continue;
                }
                if out.blocking_send(m).is_err() {
                    return;
                }
            }
        };
        reported_down = true;
        if out.blocking_send(status(&link, false, why)).is_err() {
            return;
        }
        sleep_unless(cfg.reopen_interval.0, shutdown);
    }
}

/// Counts and logs a bad line; reports it in the link status at most once a second.
fn bad(link: &str, count: &mut u64, text: &str, e: &LineError, last: &mut Instant) -> Ingest {
    *count += 1;
    let text: String = text.chars().take(80).collect();
    tracing::warn!(target: "carebridge::ingest::line", "{link}: bad line {text:?}: {e}");
    if last.elapsed() < Duration::from_secs(1) {
        return status(link, true, String::new());
    }
    *last = Instant::now();
    status(
        link,
        true,
        format!("{count} bad line(s); last {text:?}: {e}"),
    )
}

fn sleep_unless(d: Duration, shutdown: &CancellationToken) {
    let end = Instant::now() + d;
    while Instant::now() < end && !shutdown.is_cancelled() {
        std::thread::sleep(Duration::from_millis(20));
    }
}
