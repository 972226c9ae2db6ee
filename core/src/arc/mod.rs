//! Alarm receiving centre (ARC) output: ANSI/SIA DC-09 over TCP or UDP,
//! carrying Ademco Contact ID or SIA DCS events, optionally AES-encrypted.
//! Pure parts only (the client task is `uplink::arc` in the shell crate):
//!
//! - [`crc`]: CRC-16/ARC as DC-09 uses it;
//! - [`cipher`]: AES-128/192/256-CBC with the zero IV DC-09 prescribes;
//! - [`frame`]: message framing both ways (encode what we send, decode
//!   anything, for replies, tests and the fuzz target);
//! - [`reply`]: ACK / NAK / DUH and the NAK timestamp rule;
//! - [`event`]: alert → event class → Contact ID / SIA DCS code, bodies;
//! - [`status`]: the path's counters for the status document.
//!
//! Facts checked against pysiaalarm 3.2.2 (the receiver Home Assistant's
//! SIA integration uses): CRC over the bytes after the length field, the
//! length as four upper-case hex digits, AES key bytes used as given, the
//! pad-`|` rule, and its lenient replies (`None` for a missing receiver).

pub mod cipher;
pub mod crc;
pub mod event;
pub mod frame;
pub mod reply;
pub mod status;

pub use cipher::Key;
pub use event::{Event, EventClass, Format, classify};
pub use frame::{Ids, Message, MsgType};
pub use reply::{NakAction, Reply, ReplyKind};
pub use status::ArcStatus;
