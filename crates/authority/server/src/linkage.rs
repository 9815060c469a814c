//! Linkage for relying parties (証明書紐付け情報 / 証明書新旧紐付け情報).
//!
//! The operator registers a relying party (`POST /v1/relying-parties`) and
//! hands it a bearer token, shown once; the registry keeps its SHA-256. With
//! it the relying party may ask about a certificate it was shown
//! (`GET /v1/linkage/{serial}`): its status, the newest certificate that
//! replaced it (following `replaces` through renewals and re-issues after a
//! basic-four change), the holder's current certificates on the same medium,
//! and a pseudonym of the holder:
//!
//! ```text
//! holder = base64url-no-pad(HMAC-SHA256(linkage key, relying-party id ‖ 0x00 ‖ holder id))
//! ```
//!
//! The same for every certificate of a holder (card and phone, across
//! renewal and address change) as seen by one relying party, different
//! between relying parties, and revealing neither the holder id nor any of
//! the basic four. The key is `DIR/keys/linkage.key`.
//!
//! A lookup about a phone certificate is a use the authority sees: it
//! becomes a `used` event (actor: the relying party), through the same
//! debounced writer as OCSP queries. Card certificates record nothing.

use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use shomei_core::{CertClass, CertStatus, Serial};
use shomei_pki::SystemRandom;
use shomei_registry::{Actor, CertRecord, Event, RegistryError, RelyingPartyRecord};

use crate::api::{ApiJson, Operator, bearer, is_operator, parse_serial, random_id};
use crate::home::LinkageKey;
use crate::{AppState, ServerError};

type Shared = Arc<AppState>;

/// Prefix of relying-party tokens (base64url characters, so the whole
/// token is base64url; recognisable in a leak scan).
const TOKEN_PREFIX: &str = "srp_";
/// Random bytes in a relying-party token.
const TOKEN_BYTES: usize = 32;
/// Longest relying-party name.
pub const MAX_NAME: usize = 64;
/// Most `replaces` links followed to the newest successor (a guard: the
/// schema keeps chains linear, and real ones are a few links long).
const MAX_CHAIN: usize = 64;
/// The pseudonym key id used when the operator makes a lookup.
const OPERATOR_KEY_ID: &str = "operator";

/// Makes holder pseudonyms (see the module documentation).
pub struct Pseudonyms(hmac::Key);

impl Pseudonyms {
    /// From the authority's linkage key.
    pub fn new(key: &LinkageKey) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &key.0))
    }

    /// The pseudonym of `holder_id` as relying party `rp_id` sees it.
    pub fn of(&self, rp_id: &str, holder_id: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(rp_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(holder_id.as_bytes());
        B64URL.encode(ctx.sign().as_ref())
    }
}

/// Checks a relying-party name: 1–64 of ASCII letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), ServerError> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ServerError::BadInput(format!(
            "name must be 1 to {MAX_NAME} characters of letters, digits, '-', '_' and '.'"
        )))
    }
}

fn new_token() -> Result<String, ServerError> {
    let mut b = [0u8; TOKEN_BYTES];
    shomei_core::RandomSource::fill(&mut SystemRandom::new(), &mut b)
        .map_err(|_| ServerError::Internal("randomness failed".into()))?;
    Ok(format!("{TOKEN_PREFIX}{}", B64URL.encode(b)))
}

fn token_hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    name: String,
}

/// `POST /v1/relying-parties` (operator): registers a relying party and
/// returns its token, once.
pub(crate) async fn register(
    State(s): State<Shared>,
    _op: Operator,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<Response, ServerError> {
    check_name(&body.name)?;
    let now = s.clock.now();
    let rp = RelyingPartyRecord {
        id: random_id("rp")?,
        name: body.name,
        created_at: now,
    };
    let token = new_token()?;
    let events = [Event {
        at: now,
        actor: Actor::Operator("operator".into()),
        action: "relying_party_registered".into(),
        holder_id: None,
        serial: None,
        detail: json!({"relying_party_id": rp.id, "name": rp.name}),
    }];
    s.registry
        .add_relying_party(&rp, &token_hash(&token), &events)
        .await
        .map_err(|e| match e {
            RegistryError::Duplicate { .. } => ServerError::Conflict(
                "relying_party_exists",
                "a relying party with this name is already registered".into(),
            ),
            e => e.into(),
        })?;
    tracing::info!(relying_party = %rp.id, name = %rp.name, "relying party registered");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": rp.id, "name": rp.name, "token": token})),
    )
        .into_response())
}

/// Who makes a linkage lookup.
enum Caller {
    Operator,
    RelyingParty(RelyingPartyRecord),
}

impl Caller {
    fn key_id(&self) -> &str {
        match self {
            Self::Operator => OPERATOR_KEY_ID,
            Self::RelyingParty(rp) => &rp.id,
        }
    }

    fn actor(&self) -> Actor {
        match self {
            Self::Operator => Actor::Operator("operator".into()),
            Self::RelyingParty(rp) => Actor::RelyingParty(rp.name.clone()),
        }
    }
}

async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Caller, ServerError> {
    let token = bearer(headers)
        .filter(|t| !t.is_empty())
        .ok_or(ServerError::UnauthorizedRelyingParty)?;
    if is_operator(s, headers) {
        return Ok(Caller::Operator);
    }
    s.registry
        .relying_party_by_token_hash(&token_hash(token))
        .await?
        .map(Caller::RelyingParty)
        .ok_or(ServerError::UnauthorizedRelyingParty)
}

/// The registered relying party whose bearer token the request carries
/// (the operator's token is not one).
pub(crate) async fn relying_party(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<RelyingPartyRecord, ServerError> {
    let token = bearer(headers)
        .filter(|t| !t.is_empty())
        .ok_or(ServerError::UnauthorizedRelyingParty)?;
    s.registry
        .relying_party_by_token_hash(&token_hash(token))
        .await?
        .ok_or(ServerError::UnauthorizedRelyingParty)
}

/// `card_sign`, `phone_auth`…
fn class_name(c: CertClass) -> &'static str {
    match c {
        CertClass::CardSign => "card_sign",
        CertClass::CardAuth => "card_auth",
        CertClass::PhoneSign => "phone_sign",
        CertClass::PhoneAuth => "phone_auth",
    }
}

/// The status as a relying party reads it (OCSP's words where they exist).
fn status_name(s: CertStatus) -> &'static str {
    match s {
        CertStatus::Active => "good",
        CertStatus::Suspended => "suspended",
        CertStatus::Revoked => "revoked",
        CertStatus::Expired => "expired",
    }
}

/// The holder's newest good certificate of `class`, if any.
fn current(all: &[CertRecord], class: CertClass, now: shomei_core::Timestamp) -> Option<String> {
    all.iter()
        .rev()
        .find(|c| c.class == class && c.credential().status_at(now) == CertStatus::Active)
        .map(|c| c.serial.to_hex())
}

/// `GET /v1/linkage/{serial}` (relying party or operator).
pub(crate) async fn lookup(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Result<Response, ServerError> {
    let caller = caller(&s, &headers).await?;
    let serial = parse_serial(&serial)?;
    let cert = s
        .registry
        .certificate(&serial)
        .await?
        .ok_or(ServerError::NotFound("certificate"))?;
    let now = s.clock.now();
    let mut successor: Option<Serial> = None;
    let mut at = cert.serial.clone();
    for _ in 0..MAX_CHAIN {
        match s.registry.successor(&at).await? {
            Some(next) => {
                at = next.serial.clone();
                successor = Some(next.serial);
            }
            None => break,
        }
    }
    let all = s.registry.holder_certificates(&cert.holder_id).await?;
    let phone = cert.class.is_phone();
    let (sign, auth) = if phone {
        (CertClass::PhoneSign, CertClass::PhoneAuth)
    } else {
        (CertClass::CardSign, CertClass::CardAuth)
    };
    let status = cert.credential().status_at(now);
    let body = json!({
        "serial": cert.serial.to_hex(),
        "class": class_name(cert.class),
        "medium": if phone { "phone" } else { "card" },
        "status": status_name(status),
        "revocation_reason": cert.reason.filter(|_| status == CertStatus::Revoked).map(|r| r.as_str()),
        "successor": successor.as_ref().map(Serial::to_hex),
        "current": {"sign": current(&all, sign, now), "auth": current(&all, auth, now)},
        "holder": s.pseudonyms.of(caller.key_id(), &cert.holder_id),
    });
    if phone {
        // A use of the phone certificate the authority sees (written later, off this path).
        s.usage.note_lookup(&cert.serial, caller.actor(), now);
    }
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_per_relying_party_and_hide_the_holder() {
        let p = Pseudonyms::new(&LinkageKey([7u8; 32]));
        let a = p.of("rp_1", "h_0123");
        assert_eq!(a, p.of("rp_1", "h_0123"), "stable");
        assert_eq!(a.len(), 43, "32 bytes, base64url without padding");
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, p.of("rp_2", "h_0123"), "per relying party");
        assert_ne!(a, p.of("rp_1", "h_0124"), "per holder");
        assert!(!a.contains("0123"));
        // The separator keeps (rp, holder) pairs apart.
        assert_ne!(p.of("rp_1", "0h"), p.of("rp_10", "h"));
        // Another key, another pseudonym.
        assert_ne!(
            a,
            Pseudonyms::new(&LinkageKey([8u8; 32])).of("rp_1", "h_0123")
        );
        // HMAC-SHA256 as RFC 4231 defines it (test case 2: key "Jefe").
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"));
        ctx.update(b"what do ya want for nothing?");
        assert_eq!(
            ctx.sign()
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "example-bank", "shop_1.jp", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "銀行", "a/b", "a\n", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_base64url_and_long_enough() {
        let t = new_token().unwrap();
        let body = t.strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(B64URL.decode(body).unwrap().len(), TOKEN_BYTES);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, new_token().unwrap());
        assert_eq!(token_hash(&t).len(), 32);
    }
}
