//! A [`Transport`] over PC/SC (`libpcsclite` through the `pcsc` crate), so
//! the card client works with a card on any reader, real or virtual (the
//! emulated card served by `shomei card serve-vpcd`).
//!
//! A My Number Card is found by **selecting the JPKI application**, never by
//! its ATR: contactless ATRs are synthesised by the reader and differ
//! between readers (reference/jpki.md §1.1).

use std::ffi::CString;

use pcsc::{Context, Protocols, Scope, ShareMode};

use crate::CardError;
use crate::apdu::{self, JPKI_AID, ins};
use crate::client::Transport;

/// Largest response (a short APDU's 256 bytes + SW, with room for extended).
const MAX_RESPONSE: usize = pcsc::MAX_BUFFER_SIZE_EXTENDED;

/// A card in a PC/SC reader, held in exclusive mode for the session (so no
/// other application interleaves APDUs between our VERIFY and signature).
pub struct PcscTransport {
    card: pcsc::Card,
    reader: String,
}

impl std::fmt::Debug for PcscTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscTransport")
            .field("reader", &self.reader)
            .finish()
    }
}

fn pcsc_error(what: &str, e: pcsc::Error) -> CardError {
    match e {
        pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard => {
            CardError::Transport(format!("{what}: the card was removed"))
        }
        pcsc::Error::ResetCard => CardError::Transport(format!(
            "{what}: the card was reset by another application (verified PINs are lost)"
        )),
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => {
            CardError::Transport(format!("{what}: the PC/SC service (pcscd) is not running"))
        }
        pcsc::Error::NoReadersAvailable => {
            CardError::Transport(format!("{what}: no smart-card reader is connected"))
        }
        other => CardError::Transport(format!("{what}: {other}")),
    }
}

/// The names of the readers PC/SC knows.
pub fn list_readers() -> Result<Vec<String>, CardError> {
    let ctx = Context::establish(Scope::User).map_err(|e| pcsc_error("PC/SC", e))?;
    readers(&ctx)
}

fn readers(ctx: &Context) -> Result<Vec<String>, CardError> {
    let mut buf = vec![
        0u8;
        ctx.list_readers_len()
            .map_err(|e| pcsc_error("list readers", e))?
    ];
    let names = match ctx.list_readers(&mut buf) {
        Ok(names) => names,
        Err(pcsc::Error::NoReadersAvailable) => return Ok(Vec::new()),
        Err(e) => return Err(pcsc_error("list readers", e)),
    };
    Ok(names.map(|n| n.to_string_lossy().into_owned()).collect())
}

impl PcscTransport {
    /// Connects to the card in `reader` (by name), or — with `None` — to
    /// the first reader whose card answers `SELECT` of the JPKI AP with
    /// `90 00`. The JPKI AP is left selected.
    pub fn connect(reader: Option<&str>) -> Result<Self, CardError> {
        let ctx = Context::establish(Scope::User).map_err(|e| pcsc_error("PC/SC", e))?;
        let names = match reader {
            Some(r) => vec![r.to_owned()],
            None => readers(&ctx)?,
        };
        if names.is_empty() {
            return Err(CardError::Transport(
                "no smart-card reader is connected".into(),
            ));
        }
        let mut last = None;
        for name in names {
            match Self::try_reader(&ctx, &name) {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(match (reader, last) {
            (Some(_), Some(e)) => e,
            _ => CardError::Transport("no reader holds a card with the JPKI application".into()),
        })
    }

    fn try_reader(ctx: &Context, name: &str) -> Result<Self, CardError> {
        let cname = CString::new(name)
            .map_err(|_| CardError::Transport("a reader name holds a NUL byte".into()))?;
        let card = ctx
            .connect(&cname, ShareMode::Exclusive, Protocols::ANY)
            .map_err(|e| pcsc_error(name, e))?;
        let mut t = Self {
            card,
            reader: name.to_owned(),
        };
        let select = apdu::build(0, ins::SELECT, 0x04, 0x0C, &JPKI_AID, None);
        let resp = t.transmit(&select)?;
        match resp.as_slice() {
            [.., 0x90, 0x00] => Ok(t),
            _ => Err(CardError::FileNotFound),
        }
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// The card's ATR as the reader reports it (informative only).
    pub fn atr(&self) -> Result<Vec<u8>, CardError> {
        let mut names = [0u8; 2048];
        let mut atr = [0u8; pcsc::MAX_ATR_SIZE];
        let status = self
            .card
            .status2(&mut names, &mut atr)
            .map_err(|e| pcsc_error(&self.reader, e))?;
        Ok(status.atr().to_vec())
    }
}

impl Transport for PcscTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, CardError> {
        let mut buf = vec![0u8; MAX_RESPONSE];
        let resp = self
            .card
            .transmit(command, &mut buf)
            .map_err(|e| pcsc_error(&self.reader, e))?;
        if resp.len() < 2 {
            return Err(CardError::Transport(format!(
                "{}: a response without a status word",
                self.reader
            )));
        }
        Ok(resp.to_vec())
    }
}
