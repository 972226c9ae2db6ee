//! Topic permissions on the local broker.
//!
//! | account | may publish | may subscribe |
//! |---|---|---|
//! | `Device(id)` | `carebridge/in/<id>` only | filters under `carebridge/cmd/<id>/` (and that topic itself) |
//! | `HomeAssistant` | `<discovery_prefix>/status` (HA's birth message) | filters under `<discovery_prefix>/` or `<state_prefix>/` |
//! | `Legacy` (the deprecated shared `username`) | `carebridge/in/<any id>` | filters under `carebridge/cmd/` |
//! | `Anonymous` (loopback, or `allow_anonymous`) | anything (as before) | anything (as before) |
//!
//! A subscription is allowed only if **every** topic its filter can match
//! is allowed ([`filter_within`]): `carebridge/cmd/+/#` is refused to a
//! device because it also matches other devices' commands, and `#` is
//! refused to everyone but anonymous. Carebridge itself publishes nothing
//! Home Assistant can command (every entity is a sensor), so the HA account
//! publishes only its own status.

use crate::model::{DeviceId, INGEST_TOPIC_ROOT};

/// The topic root of commands to Wi-Fi devices: a device subscribes to
/// `carebridge/cmd/<its id>/#`.
pub const CMD_TOPIC_ROOT: &str = "carebridge/cmd/";

/// The name of the Home Assistant service account (its MQTT user name).
pub const HOME_ASSISTANT: &str = "homeassistant";

/// Who a connection is, for the permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Device(DeviceId),
    HomeAssistant,
    /// The deprecated single shared `[local_broker] username`.
    Legacy,
    Anonymous,
}

/// The topics the Home Assistant account may read (from `[homeassistant]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaTopics {
    pub discovery_prefix: String,
    pub state_prefix: String,
}

/// The permission table, parametrised by the Home Assistant prefixes
/// (`None`: Home Assistant discovery is off, its account may do nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub ha: Option<HaTopics>,
}

impl Policy {
    pub fn may_publish(&self, who: &Account, topic: &str) -> bool {
        if !valid_topic(topic) {
            return false;
        }
        match who {
            Account::Anonymous => true,
            Account::Device(id) => topic
                .strip_prefix(INGEST_TOPIC_ROOT)
                .is_some_and(|rest| rest == id.as_str()),
            Account::Legacy => topic
                .strip_prefix(INGEST_TOPIC_ROOT)
                .is_some_and(|rest| DeviceId::new(rest).is_ok()),
            Account::HomeAssistant => self
                .ha
                .as_ref()
                .is_some_and(|ha| topic == format!("{}/status", ha.discovery_prefix)),
        }
    }

    pub fn may_subscribe(&self, who: &Account, filter: &str) -> bool {
        if !valid_filter(filter) {
            return false;
        }
        match who {
            Account::Anonymous => true,
            Account::Device(id) => {
                filter_within(filter, &format!("{CMD_TOPIC_ROOT}{}/#", id.as_str()))
            }
            Account::Legacy => filter_within(filter, &format!("{CMD_TOPIC_ROOT}#")),
            Account::HomeAssistant => self.ha.as_ref().is_some_and(|ha| {
                filter_within(filter, &format!("{}/#", ha.discovery_prefix))
                    || filter_within(filter, &format!("{}/#", ha.state_prefix))
            }),
        }
    }
}

/// A topic name a client may publish to: non-empty, no wildcards, no NUL.
pub fn valid_topic(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#', '\0'])
}

/// A well-formed MQTT topic filter: `#` only as the whole last level, `+`
/// only as a whole level, no NUL.
pub fn valid_filter(f: &str) -> bool {
    if f.is_empty() || f.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = f.split('/').collect();
    let last = levels.len() - 1;
    levels
        .iter()
        .enumerate()
        .all(|(i, l)| (*l == "#" && i == last) || *l == "+" || !l.contains(['+', '#']))
}

/// Does every topic that `filter` matches also match `allowed`? Both must
/// be well-formed filters ([`valid_filter`]).
pub fn filter_within(filter: &str, allowed: &str) -> bool {
    let mut f = filter.split('/');
    let mut a = allowed.split('/');
    loop {
        match (a.next(), f.next()) {
            // `#` in the allowed filter takes anything below (and the parent level).
            (Some("#"), _) => return true,
            (Some("+"), Some(fl)) => {
                if fl == "#" {
                    return false;
                }
            }
            (Some(al), Some(fl)) => {
                if fl != al {
                    return false;
                }
            }
            // The filter ended above the allowed level (`a/#` ending at
            // `a` is the `#` arm above).
            (Some(_), None) => return false,
            (None, Some(_)) => return false,
            (None, None) => return true,
        }
    }
}

/// Does `topic` match `filter` (MQTT 3.1.1 §4.7, without the `$` rule)?
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;
