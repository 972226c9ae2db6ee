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
