//! The task behind the guessing alarm ([`crate::devauth::alarm`]): the gate
//! reports each authentication failure's address on a bounded channel
//! (dropped when full: the counters still count); this task feeds them to
//! the alarm and raises its alerts the way the gateway raises its own
//! system alerts (the coordinator outage): an id, the live view, the store
//! (which queues it upstream).

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::devauth::alarm::FailureAlarm;
use crate::store::{Store, Write};

/// The alarm's window and quiet time.
pub const WINDOW: Duration = Duration::from_secs(600);
pub const QUIET: Duration = Duration::from_secs(1800);

/// Runs until shutdown or until every gate is gone.
pub async fn run(
    mut failures: mpsc::Receiver<IpAddr>,
    threshold: u32,
    store: Store,
    live: broadcast::Sender<crate::hub::Live>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut alarm = FailureAlarm::new(threshold, WINDOW, QUIET);
    let mut ids = crate::ids::IdGen::default();
    loop {
        let nap = alarm
            .next_deadline()
            .map_or(Duration::from_secs(3600), |d| d.since(crate::wall::now()));
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            f = failures.recv() => match f {
                Some(peer) => alarm.handle_failure(peer, crate::wall::now()),
                None => { shutdown.cancelled().await; return Ok(()); }
            },
            _ = tokio::time::sleep(nap) => alarm.handle_timeout(crate::wall::now()),
        }
        while let Some(mut a) = alarm.poll_alert() {
            a.uid = Some(ids.next_id());
            tracing::warn!(rule = %a.rule, state = a.state.as_str(), "{}", a.message);
            let _ = live.send(crate::hub::Live::Alert(a.clone()));
            store.submit(Write::Alert(Box::new(a))).await?;
        }
    }
}
