//! One receiver connection: send a framed message, read one reply.
//! TCP keeps its connection between messages (reconnecting after any
//! error); UDP sends one datagram and waits for one back.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use carebridge_core::config::ArcTarget;

use super::{Key, frame::FrameError, reply};

pub(super) enum Conn {
    None,
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// How one exchange ended.
pub(super) enum Exchange {
    Reply(reply::Reply),
    /// The receiver answered `LF CR` (it discarded the message).
    Empty,
    Failed(String),
}

pub(super) async fn exchange(
    conn: &mut Conn,
    target: &ArcTarget,
    bytes: &[u8],
    key: Option<&Key>,
    timeout: Duration,
) -> Exchange {
    match tokio::time::timeout(timeout, exchange_inner(conn, target, bytes, key)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            *conn = Conn::None;
            Exchange::Failed(e)
        }
        Err(_) => {
            *conn = Conn::None;
            Exchange::Failed(format!("no answer within {timeout:?}"))
        }
    }
}

async fn exchange_inner(
    conn: &mut Conn,
    target: &ArcTarget,
    bytes: &[u8],
    key: Option<&Key>,
) -> Result<Exchange, String> {
    if matches!(conn, Conn::None) {
        *conn = if target.udp {
            let s = UdpSocket::bind("0.0.0.0:0")
                .await
                .map_err(|e| e.to_string())?;
            s.connect(&target.addr).await.map_err(|e| e.to_string())?;
            Conn::Udp(s)
        } else {
            Conn::Tcp(
                TcpStream::connect(&target.addr)
                    .await
                    .map_err(|e| format!("connect {}: {e}", target.addr))?,
            )
        };
    }
    let mut buf = Vec::with_capacity(256);
    match conn {
        Conn::None => Err("not connected".into()),
        Conn::Udp(s) => {
            s.send(bytes).await.map_err(|e| e.to_string())?;
            let mut d = [0u8; 1500];
            loop {
                let n = s.recv(&mut d).await.map_err(|e| e.to_string())?;
                match reply::decode_reply(&d[..n], key) {
                    Ok((Some(r), _)) => return Ok(Exchange::Reply(r)),
                    Ok((None, _)) => return Ok(Exchange::Empty),
                    // A stray datagram: keep waiting for ours.
                    Err(e) => {
                        tracing::warn!(target: "carebridge::arc", "unreadable reply from {}: {e}", target.addr)
                    }
                }
            }
        }
        Conn::Tcp(s) => {
            s.write_all(bytes).await.map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 512];
            loop {
                match reply::decode_reply(&buf, key) {
                    Ok((Some(r), _)) => return Ok(Exchange::Reply(r)),
                    Ok((None, _)) => return Ok(Exchange::Empty),
                    Err(FrameError::Incomplete) => {}
                    Err(e) => return Err(format!("unreadable reply: {e}")),
                }
                if buf.len() > 4096 {
                    return Err("reply longer than 4 KiB".into());
                }
                let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("the receiver closed the connection".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}
