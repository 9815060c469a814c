//! The ISO/IEC 18013-5 session transport behind `phone present` and
//! `reader request`.
//!
//! A transport moves whole session messages (SessionEstablishment,
//! SessionData) between the reader and the mdoc, unchanged. BLE would
//! split each message over GATT writes (first byte 0x01 "more", 0x00
//! "last"), NFC over ENVELOPE commands; those belong to a phone app. Here
//! [`Framed`] carries them over any byte stream, loopback TCP in practice,
//! each message framed as a 4-byte big-endian length and that many bytes,
//! the same message boundaries BLE keeps. The session code
//! ([`crate::mdoc_cmd::hold_session`], [`crate::mdoc_cmd::read_answer`])
//! only sees the trait.

use std::future::Future;

use anyhow::Context;
use shomei_mdoc::session::MAX_SESSION_MESSAGE_LEN;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Moves whole session messages.
pub(crate) trait SessionTransport {
    /// Sends one message.
    fn send(&mut self, message: &[u8]) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The next message, or `None` once the peer has closed between
    /// messages (a close inside a message is an error).
    fn receive(&mut self) -> impl Future<Output = anyhow::Result<Option<Vec<u8>>>> + Send;
    /// Closes the sending side (best effort).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Length-prefixed messages over a byte stream.
pub(crate) struct Framed<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> SessionTransport for Framed<S> {
    async fn send(&mut self, message: &[u8]) -> anyhow::Result<()> {
        write_frame(&mut self.0, message).await
    }

    async fn receive(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        match self.0.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e).context("reading a message"),
        }
        let len = usize::try_from(u32::from_be_bytes(len)).context("frame length")?;
        if len > MAX_SESSION_MESSAGE_LEN {
            anyhow::bail!("peer sent a frame of {len} bytes (limit {MAX_SESSION_MESSAGE_LEN})");
        }
        let mut buf = vec![0u8; len];
        self.0
            .read_exact(&mut buf)
            .await
            .context("connection closed inside a message")?;
        Ok(Some(buf))
    }

    async fn close(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

/// Writes one frame: 4-byte big-endian length, then the bytes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> anyhow::Result<()> {
    if bytes.len() > MAX_SESSION_MESSAGE_LEN {
        anyhow::bail!("message too long to send ({} bytes)", bytes.len());
    }
    let len = u32::try_from(bytes.len()).context("message length")?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame (at most [`MAX_SESSION_MESSAGE_LEN`] bytes); a close
/// before it is an error here.
pub async fn read_frame<R: AsyncRead + AsyncWrite + Unpin + Send>(
    r: &mut R,
) -> anyhow::Result<Vec<u8>> {
    Framed(r)
        .receive()
        .await?
        .context("connection closed before a message")
}
