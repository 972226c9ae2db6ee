//! What is read before any task starts: the files the configuration names
//! (so a missing secret is a clear input error, not a half-started
//! gateway), the store, the stored configuration overlay, the device facts,
//! the active rules and the rule engine with its saved state.

use anyhow::Context;

use crate::config::Config;
use crate::model::{DeviceInfo, Time};
use crate::rules::active::Version;
use crate::store::{Store, Write};

use super::{Exit, RunOptions};

/// The files and names the configuration points at, checked and read.
pub(super) struct Inputs {
    pub tz: jiff::tz::TimeZone,
    pub broker_password: Option<String>,
    pub uplink: Option<crate::uplink::mqtt::Prepared>,
    /// The base rules (config file or built-in); a set applied later from
    /// the UI or the cloud is stored and wins (see `rules::active`).
    pub base_rules: Version,
    /// The local broker's access policy (with `[local_broker]`), taken by
    /// the wiring.
    pub devauth: Option<crate::devauth::Prepared>,
}

/// Reads and checks everything the configuration names; every failure is
/// an input error (exit code 2).
pub(super) fn read_inputs(cfg: &Config) -> Result<Inputs, Exit> {
    if cfg.simulator.is_some() && !cfg!(feature = "sim") {
        return Err(Exit::input(anyhow::anyhow!(
            "simulator: this build has no simulators (built without the `sim` feature, as the \
             .deb is); remove the [simulator] section"
        )));
    }
    let tz = jiff::tz::TimeZone::get(&cfg.gateway.timezone)
        .map_err(|e| Exit::input(anyhow::anyhow!("gateway.timezone: {e}")))?;
    std::fs::create_dir_all(&cfg.gateway.data_dir)
        .with_context(|| format!("gateway.data_dir {}", cfg.gateway.data_dir.display()))
        .map_err(Exit::runtime)?;
    let broker_password = match cfg
        .local_broker
        .as_ref()
        .and_then(|b| b.password_file.as_ref())
    {
        Some(p) => Some(
            crate::uplink::mqtt::read_secret("local_broker.password_file", p)
                .map_err(Exit::input)?,
        ),
        None => None,
    };
    let devauth = match &cfg.local_broker {
        Some(_) => {
            Some(crate::devauth::prepare(cfg, broker_password.clone()).map_err(Exit::input)?)
        }
        None => None,
    };
    let uplink = match &cfg.uplink.mqtt {
        Some(m) => {
            Some(crate::uplink::mqtt::Prepared::new(m, &cfg.gateway.id).map_err(Exit::input)?)
        }
        None => None,
    };
    let base_rules = match &cfg.rules.file {
        Some(path) => {
            crate::rules::load(path).map_err(Exit::input)?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("rules.file {}", path.display()))
                .map_err(Exit::input)?;
            Version {
                version: 0,
                source: "config".into(),
                applied_at: 0,
                text,
            }
        }
        None => Version {
            version: 0,
            source: "built-in".into(),
            applied_at: 0,
            text: crate::rules::MINIMAL_RULES.to_string(),
        },
    };
    Ok(Inputs {
        tz,
        broker_password,
        uplink,
        base_rules,
        devauth,
    })
}

/// What the last run left: the configuration with its stored overlay, the
/// active rules and an engine carrying on where it stopped.
pub(super) struct Restored {
    /// The file's configuration with the stored remote-config overlay.
    pub cfg: Config,
    /// The configuration file as read (the overlay's base).
    pub file_cfg: Config,
    pub overlay: crate::remote_config::Active,
    pub active_rules: Version,
    pub engine: crate::rules::Engine,
}

/// Applies the stored remote-config overlay (`[devices.*]`, `[log]`),
/// registers the device facts and restores the rules and the engine.
pub(super) async fn restore(
    file_cfg: Config,
    opts: &RunOptions,
    store: &Store,
    inputs: &Inputs,
) -> Result<Restored, Exit> {
    let (cfg, overlay) = crate::remote_config::with_overlay(store, &file_cfg)
        .await
        .map_err(Exit::runtime)?;
    if cfg.log != file_cfg.log
        && let Some(l) = &opts.log
        && let Err(e) = l.apply(&cfg.log)
    {
        tracing::warn!(error = %e, "stored log levels not applied");
    }
    // Device facts: the registry as the UI left it, then the config file's
    // (which win), known to the rules before the first reading arrives.
    let mut devices = store.devices().await.map_err(Exit::runtime)?;
    for (id, d) in &cfg.devices {
        if let Some(info) = crate::remote_config::device_info(id, d) {
            store
                .submit(Write::Device(Box::new(info.clone())))
                .await
                .map_err(Exit::runtime)?;
            devices.push(info);
        }
    }
    let (active_rules, rule_set) = crate::rules::active::startup_set(store, &inputs.base_rules)
        .await
        .map_err(Exit::runtime)?;
    tracing::info!(version = active_rules.version, source = %active_rules.source, "rules");
    let now = opts.clock.now();
    let engine = build_engine(&rule_set, inputs.tz.clone(), store, &devices, now)
        .await
        .map_err(Exit::input)?;
    Ok(Restored {
        cfg,
        file_cfg,
        overlay,
        active_rules,
        engine,
    })
}

/// Opens the store; a database that fails its integrity check is moved
/// aside (kept for inspection) and a fresh one is created: a gateway that
/// refuses to start raises no alerts at all.
pub(super) fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let store = open_store_inner(cfg);
    // The database, keys and credentials are for the gateway's user only.
    crate::private::secure_data_dir(&cfg.gateway.data_dir);
    store
}

fn open_store_inner(cfg: &Config) -> anyhow::Result<Store> {
    let path = cfg.db_path();
    match Store::open(&path, &cfg.store) {
        Ok(s) => Ok(s),
        Err(crate::store::StoreError::Corrupt { detail }) => {
            let moved = Store::quarantine(&path)
                .with_context(|| format!("moving the corrupt database {} aside", path.display()))?;
            tracing::error!(%detail, moved_to = %moved.display(), "database failed its integrity check; starting a fresh one");
            Store::open(&path, &cfg.store).with_context(|| format!("opening {}", path.display()))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    }
}

/// The rule engine: the configured rule set (or the built-in safety rules),
/// its state restored from the last run, routines seeded from history.
async fn build_engine(
    set: &crate::rules::RuleSet,
    tz: jiff::tz::TimeZone,
    store: &Store,
    devices: &[DeviceInfo],
    now: Time,
) -> anyhow::Result<crate::rules::Engine> {
    let mut engine = crate::rules::Engine::new(set, tz)?;
    // Order matters: devices, then learned routines, then saved state.
    for d in devices {
        engine.set_device(d);
    }
    // Reading 15 days of history costs ~1.7 µs a row at start-up: only
    // when a routine rule will learn from it.
    if engine.learns_routines() {
        let since = Time(now.as_millis() - 15 * 86_400_000);
        let history = store.history(since, now, 500_000).await?;
        engine.learn_from_history(history.iter());
    }
    if let Some((full, deltas)) = crate::hub::load_rule_state(store).await? {
        restore_rule_state(&mut engine, &full, &deltas, now);
    }
    Ok(engine)
}

/// Restores saved rule state. State saved by a run whose clock was ahead of
/// this one's (a Pi without an RTC boots on a stale clock) moves back to
/// this clock, as after a step back: readings are not taken for stale and
/// timers are not put off by the gap; the NTP step later moves it on like
/// any step (durations then leave out the downtime, at most).
pub(super) fn restore_rule_state(
    engine: &mut crate::rules::Engine,
    full: &[u8],
    deltas: &[Vec<u8>],
    now: Time,
) {
    match engine.restore_journal(full, deltas, now) {
        Ok((n, applied)) if applied < deltas.len() => tracing::warn!(
            restored = n,
            deltas = applied,
            unusable = deltas.len() - applied,
            "rule state restored up to a journal entry that does not follow (the rest is dropped)"
        ),
        Ok((n, applied)) => tracing::info!(restored = n, deltas = applied, "rule state restored"),
        Err(e) => {
            tracing::warn!(error = %e, "saved rule state not usable; starting fresh");
            return;
        }
    }
    let ahead = engine.now().as_millis().saturating_sub(now.as_millis());
    if ahead > 0 {
        tracing::warn!(
            ahead_ms = ahead,
            "saved rule state is ahead of the clock (stale clock at boot?); moved back to it"
        );
        engine.shift(-ahead, now);
    }
}

#[cfg(test)]
mod restore_tests {
    use super::*;
    use crate::model::{AlertState, DeviceId, Kind, Reading};

    #[test]
    fn state_saved_ahead_of_a_stale_boot_clock_follows_it_and_the_ntp_step() {
        let set = crate::rules::RuleSet::parse(
            "[[rule]]\nid = \"cold\"\ntype = \"threshold\"\nkind = \"temperature\"\nbelow = 16.0\nfor = \"30m\"\n",
            "t",
        )
        .unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        let t0 = 1_795_435_200_000_i64;
        let r = |v: f64, at: i64| {
            Reading::new(DeviceId::new("k").unwrap(), Kind::Temperature, v, Time(at)).unwrap()
        };
        let mut e = crate::rules::Engine::new(&set, tz.clone()).unwrap();
        let mut out = Vec::new();
        e.on_reading(Time(t0), &r(14.0, t0), &mut out);
        let bytes = e.snapshot();
        // Power cut 5 min later; the Pi boots on a clock 3 days stale.
        let stale = t0 + 5 * 60_000 - 3 * 86_400_000;
        let mut e = crate::rules::Engine::new(&set, tz).unwrap();
        restore_rule_state(&mut e, &bytes, &[], Time(stale));
        // A reading on the stale clock is not dropped as out of order.
        let dropped = e.dropped();
        e.on_reading(Time(stale + 1_000), &r(13.0, stale + 1_000), &mut out);
        assert_eq!(e.dropped(), dropped);
        // NTP steps the clock to the true time (1 min after boot).
        let truth = t0 + 6 * 60_000;
        e.shift(truth - (stale + 60_000), Time(truth));
        let due = e.next_deadline().unwrap().as_millis();
        // 30 min after the cold reading, plus at most the 5 min the state
        // was not running (saved at the reading, restored after the cut);
        // not 3 days late (the stale clock's gap).
        assert!(
            due <= t0 + 35 * 60_000 && due >= t0 + 30 * 60_000,
            "the 30 min alert put off by the stale clock: due {}",
            Time(due)
        );
        let mut out = Vec::new();
        e.on_tick(Time(due), &mut out);
        assert_eq!(
            out.iter().filter(|a| a.state == AlertState::Raised).count(),
            1
        );
    }
}
