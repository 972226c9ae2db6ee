//! Acknowledgements fired after a commit: how a producer learns that what
//! it submitted is durable without waiting for (or allocating) a flush.
//!
//! A producer submits its writes, then an [`AckTo`] with
//! [`super::Store::submit_ack`]. The writer takes messages in channel
//! order, so the `AckTo` is in the same batch as those writes or a later
//! one; it calls [`AckSink::committed`] once that batch's `COMMIT` returned.
//! A batch that never commits (the process dies, storage keeps failing at
//! shutdown) never fires its acks: an acknowledgement always means durable.
//!
//! Cost per ack: one `Arc` clone (no allocation) and one channel slot; the
//! sink decides what a token means (the front door: an MQTT packet id).

use std::sync::Arc;

/// Whoever waits for commits (e.g. one front-door connection).
pub trait AckSink: Send + Sync + 'static {
    /// The writes submitted before the ack carrying `token` are committed.
    /// Called on the writer thread: must not block.
    fn committed(&self, token: u32);
}

/// One acknowledgement to fire after the commit that holds the writes
/// submitted before it (by the same producer).
#[derive(Clone)]
pub struct AckTo {
    sink: Arc<dyn AckSink>,
    token: u32,
}

impl AckTo {
    pub fn new(sink: Arc<dyn AckSink>, token: u32) -> AckTo {
        AckTo { sink, token }
    }

    /// Fires the acknowledgement (the writer, after `COMMIT`).
    pub(crate) fn fire(self) {
        self.sink.committed(self.token);
    }
}

impl std::fmt::Debug for AckTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckTo").field("token", &self.token).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;
    use crate::model::Kind;
    use crate::store::tests::{db, reading};
    use crate::store::{Store, StoreConfig, Write};

    /// Records, when fired, how many history rows another connection sees.
    struct Seen {
        path: PathBuf,
        fired: Mutex<Vec<(u32, i64)>>,
    }

    impl AckSink for Seen {
        fn committed(&self, token: u32) {
            let c = rusqlite::Connection::open(&self.path).unwrap();
            let n: i64 = c
                .query_row("SELECT count(*) FROM history", [], |r| r.get(0))
                .unwrap();
            self.fired.lock().unwrap().push((token, n));
        }
    }

    #[tokio::test]
    async fn an_ack_fires_after_the_commit_that_holds_the_writes_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = db(&dir);
        let store = Store::open(&path, &StoreConfig::default()).unwrap();
        let seen = Arc::new(Seen {
            path: path.clone(),
            fired: Mutex::default(),
        });
        for i in 0..3 {
            let r = reading("dev", Kind::Temperature, f64::from(i), 1_000);
            store.submit(Write::Reading(r)).await.unwrap();
            store
                .submit_ack(AckTo::new(seen.clone(), i as u32))
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
        let fired = seen.fired.lock().unwrap().clone();
        assert_eq!(fired.len(), 3, "{fired:?}");
        for (token, rows) in fired {
            assert!(
                rows > i64::from(token),
                "ack {token} fired with only {rows} rows committed"
            );
        }
    }
}
