//! The card face: `card issue`'s face options and personalisation of the
//! other APs, and `card read-face`.
//!
//! The My Number travels from the authority's answer to the card and is
//! shown by `read-face` only with `--show-my-number`; it is never logged,
//! never in an error message and never in `card issue`'s output.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use shomei_card::{FaceRead, JpkiClient, Transport};
use shomei_pki::cardface::{self, FaceFiles};

use crate::card_cmd::{card_error, secret};
use crate::output::{Failure, emit};

/// `card issue`'s card face options.
#[derive(clap::Args, Debug, Default)]
pub struct IssueFaceArgs {
    /// The holder's My Number (12 digits, valid check digit). Default: the
    /// authority draws a valid random one. It goes to the card only.
    #[arg(long, conflicts_with = "my_number_file")]
    pub my_number: Option<String>,
    /// …or from this file (its content; a final newline is dropped), so it
    /// stays out of the process list and the shell history.
    #[arg(long)]
    pub my_number_file: Option<PathBuf>,
    /// Photo for the card face (real cards: greyscale JPEG 2000, here any
    /// bytes up to 24 KiB). Default: a small placeholder PNG.
    #[arg(long)]
    pub portrait: Option<PathBuf>,
    /// The 券面事項入力補助AP's 4-digit PIN. Default: the authentication PIN,
    /// as real cards are issued unless the holder asks otherwise.
    #[arg(long)]
    pub pin_text: Option<String>,
    #[arg(long)]
    pub pin_text_file: Option<PathBuf>,
}

/// The resolved face options.
#[derive(Default)]
pub struct FaceOptions {
    my_number: Option<String>,
    portrait: Option<Vec<u8>>,
    pin_text: Option<String>,
}

impl IssueFaceArgs {
    /// Reads the portrait and checks the formats before anything is made.
    pub fn resolve(self) -> anyhow::Result<FaceOptions> {
        let my_number = match (self.my_number, self.my_number_file.as_deref()) {
            (None, None) => None,
            (n, f) => Some(secret(n, f, "My Number")?),
        };
        let my_number = match my_number {
            Some(n) => {
                shomei_core::MyNumber::parse(&n)
                    .map_err(|e| Failure::input(format!("--my-number: {e}")))?;
                Some(n)
            }
            None => None,
        };
        let portrait = match self.portrait.as_deref() {
            Some(p) => {
                let bytes =
                    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                if bytes.len() > cardface::MAX_PHOTO {
                    return Err(Failure::input(format!(
                        "--portrait: larger than {} bytes",
                        cardface::MAX_PHOTO
                    )));
                }
                Some(bytes)
            }
            None => None,
        };
        let pin_text = match (self.pin_text, self.pin_text_file) {
            (None, None) => None,
            (p, f) => Some(secret(p, f.as_deref(), "text AP PIN")?),
        };
        if let Some(p) = &pin_text
            && !shomei_card::FacePin::Text.is_well_formed(p.as_bytes())
        {
            return Err(card_error(shomei_card::CardError::BadFacePinFormat(
                shomei_card::FacePin::Text,
            )));
        }
        Ok(FaceOptions {
            my_number,
            portrait,
            pin_text,
        })
    }
}

impl FaceOptions {
    /// Adds `my_number` and `portrait` to a `POST /v1/cards` body.
    pub fn add_to_request(&self, body: &mut serde_json::Value) {
        if let Some(n) = &self.my_number {
            body["my_number"] = json!(n.as_str());
        }
        if let Some(p) = &self.portrait {
            body["portrait"] = json!(B64.encode(p));
        }
    }
}

/// Writes the authority's `card_face` to the card's other APs (before
/// ACTIVATE) and sets the text PIN; returns what `card issue` reports
/// (expiry, security code, 製造番号 — never the My Number).
pub fn personalise<T: Transport>(
    client: &mut JpkiClient<T>,
    answer: &serde_json::Value,
    auth_pin: &str,
    face: &FaceOptions,
) -> anyhow::Result<serde_json::Value> {
    let f = &answer["card_face"];
    let field = |a: &str, b: &str| -> anyhow::Result<Vec<u8>> {
        let s = f[a][b]
            .as_str()
            .with_context(|| format!("authority response lacks card_face.{a}.{b}"))?;
        B64.decode(s)
            .with_context(|| format!("card_face.{a}.{b} is not base64"))
    };
    let files = FaceFiles {
        text_my_number: field("text", "my_number")?,
        text_attributes: field("text", "attributes")?,
        text_basic: field("text", "basic")?,
        visual_face: field("visual", "face")?,
        visual_basic: field("visual", "basic")?,
    };
    client.write_face(&files).map_err(card_error)?;
    if let Some(pin) = &face.pin_text {
        // The text PIN was made equal to the auth PIN at manufacture.
        client.change_text_pin(auth_pin, pin).map_err(card_error)?;
    }
    let manufacture_number = client.read_manufacture_number().map_err(card_error)?;
    Ok(json!({
        "expiry": f["expiry"],
        "security_code": f["security_code"],
        "manufacture_number": manufacture_number,
    }))
}

/// `card read-face`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["pin_text", "pin_text_file", "pin_a", "pin_a_file", "pin_b", "pin_b_file"])))]
pub struct ReadFaceArgs {
    #[arg(long)]
    pub card: PathBuf,
    /// The text AP's 4-digit PIN (opens everything: the My Number is then PIN A).
    #[arg(long)]
    pub pin_text: Option<String>,
    #[arg(long)]
    pub pin_text_file: Option<PathBuf>,
    /// PIN A: the 12-digit My Number.
    #[arg(long)]
    pub pin_a: Option<String>,
    /// …or from this file (its content; a final newline is dropped): keeps
    /// the My Number out of the process list and the shell history.
    #[arg(long)]
    pub pin_a_file: Option<PathBuf>,
    /// PIN B: birth date YYMMDD + card expiry year YYYY + 4-digit security code.
    #[arg(long)]
    pub pin_b: Option<String>,
    /// …or from this file (its content; a final newline is dropped).
    #[arg(long)]
    pub pin_b_file: Option<PathBuf>,
    /// Also print the My Number (not readable with PIN B).
    #[arg(long)]
    pub show_my_number: bool,
    /// Check the face's signer against this authority's published key
    /// (GET /ca/card-face.pem).
    #[arg(long)]
    pub authority: Option<String>,
    /// …or against this public key file (PEM `PUBLIC KEY` or DER).
    #[arg(long, conflicts_with = "authority")]
    pub face_key: Option<PathBuf>,
}

pub async fn read_face(a: ReadFaceArgs, json: bool) -> anyhow::Result<()> {
    let trusted = match (&a.authority, &a.face_key) {
        (Some(url), _) => Some(fetch_face_key(url).await?),
        (None, Some(path)) => Some(spki_from_file(path)?),
        (None, None) => None,
    };
    let pin_text = match (a.pin_text.clone(), a.pin_text_file.as_deref()) {
        (None, None) => None,
        (p, f) => Some(secret(p, f, "text AP PIN")?),
    };
    let pin_a = match (a.pin_a.clone(), a.pin_a_file.as_deref()) {
        (None, None) => None,
        (p, f) => Some(secret(p, f, "PIN A")?),
    };
    let pin_b = match (a.pin_b.clone(), a.pin_b_file.as_deref()) {
        (None, None) => None,
        (p, f) => Some(secret(p, f, "PIN B")?),
    };
    let mut client = crate::card_cmd::open(&a.card)?;
    let with = match (&pin_text, &pin_a, &pin_b) {
        (Some(p), _, _) => FaceRead::TextPin(p),
        (None, Some(n), _) => FaceRead::PinA(n),
        (None, None, Some(b)) => FaceRead::PinB(b),
        (None, None, None) => return Err(Failure::input("give --pin-text, --pin-a or --pin-b")),
    };
    let read = client.read_card_face(with).map_err(card_error)?;
    let face = cardface::parse_face(&read.face).map_err(|e| anyhow::anyhow!("card: {e}"))?;
    // The signature with the key the face carries (integrity), then the
    // signer against the authority's key (origin).
    let integrity = cardface::verify_face(&read.face, &face.public_key);
    let signer = match (&integrity, &trusted) {
        (Err(_), _) => "not_checked",
        (Ok(_), None) => "not_checked",
        (Ok(_), Some(key)) if *key == face.public_key => "authority",
        (Ok(_), Some(_)) => "unknown",
    };
    let attrs = &read.attributes;
    let mut v = json!({
        "name": attrs.name,
        "address": attrs.address,
        "birth": attrs.birth,
        "sex": attrs.sex,
        "expiry": face.expiry,
        "face_name": face.name(),
        "face_address": face.address(),
        "signature": if integrity.is_ok() { "valid" } else { "invalid" },
        "signer": signer,
    });
    if a.show_my_number {
        v["my_number"] = json!(read.my_number.as_ref().map(|n| n.as_str()));
    }
    let consistent = face.birth == attrs.birth
        && face.sex == attrs.sex
        && face.name().as_deref() == Some(attrs.name.as_str())
        && face.address().as_deref() == Some(attrs.address.as_str());
    v["matches_text_ap"] = json!(consistent);
    if integrity.is_err() {
        return Err(anyhow::anyhow!(
            "the card face signature does not verify: the face data was altered"
        ));
    }
    if signer == "unknown" {
        return Err(anyhow::anyhow!(
            "the card face is signed, but not by this authority's card-face key"
        ));
    }
    let mut human = format!(
        "name: {}\naddress: {}\nbirth: {}\nsex: {}\ncard expiry: {}\nface signature: valid ({})",
        attrs.name,
        attrs.address,
        attrs.birth,
        attrs.sex,
        face.expiry,
        if signer == "authority" {
            "signed by the authority's card-face key"
        } else {
            "signer not checked: give --authority or --face-key"
        }
    );
    if a.show_my_number {
        match &read.my_number {
            Some(n) => human.push_str(&format!("\nMy Number: {}", n.as_str())),
            None => human.push_str("\nMy Number: (not readable with PIN B)"),
        }
    }
    emit(json, &v, &human);
    Ok(())
}

pub(crate) async fn fetch_face_key(url: &str) -> anyhow::Result<Vec<u8>> {
    let url = format!("{}/ca/card-face.der", url.trim_end_matches('/'));
    let resp = reqwest::get(&url)
        .await
        .with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        anyhow::bail!("GET {url}: {}", resp.status());
    }
    Ok(resp.bytes().await?.to_vec())
}

fn spki_from_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8_lossy(&raw);
    if let Some(body) = text
        .split("-----BEGIN PUBLIC KEY-----")
        .nth(1)
        .and_then(|r| r.split("-----END PUBLIC KEY-----").next())
    {
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        return B64
            .decode(b64)
            .map_err(|_| Failure::input(format!("{}: bad PEM", path.display())));
    }
    Ok(raw)
}
