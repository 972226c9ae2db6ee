//! Wiring of the alarm receiving centre path: turn the capture of alerts
//! into its queue on (or off, without `[arc]`), then start its task.

use super::Exit;
use super::wiring::Wiring;
use crate::store::Write;
use crate::uplink::arc::{self, queue::CAPTURE_KEY};

/// Starts the ARC task when `[arc]` is configured. Runs before the hub, so
/// no alert is committed before capture is on.
pub(super) async fn start_arc(w: &mut Wiring) -> Result<(), Exit> {
    let Some(cfg) = w.cfg.arc.clone() else {
        // No ARC: stop capturing (a queue left from before stays, unsent).
        w.store
            .submit(Write::Kv(CAPTURE_KEY.into(), None))
            .await
            .map_err(|e| Exit::input(anyhow::anyhow!("store: {e}")))?;
        return Ok(());
    };
    let key = arc::load_key(&cfg).map_err(|e| Exit::input(anyhow::anyhow!(e)))?;
    w.store
        .submit(Write::Kv(CAPTURE_KEY.into(), Some(b"1".to_vec())))
        .await
        .map_err(|e| Exit::input(anyhow::anyhow!("store: {e}")))?;
    w.store
        .flush()
        .await
        .map_err(|e| Exit::input(anyhow::anyhow!("store: {e}")))?;
    let task = arc::ArcTask {
        key,
        db: w.cfg.db_path(),
        busy: w.cfg.store.busy_timeout.0,
        clock: w.opts.clock.clone(),
        changed: w.store.outbox_changed(),
        status: w.arc_status.clone().unwrap_or_default(),
        rule_type: {
            let stats = w.hub_stats.clone();
            std::sync::Arc::new(move |id: &str| stats.rule_type(id).map(|t| t.as_str()))
        },
        cfg,
    };
    let (handle, run) = arc::start(task, w.shutdown.clone());
    w.arc = Some(handle);
    w.tasks.spawn(async move { ("arc", run.await) });
    Ok(())
}
