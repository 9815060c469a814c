//! The mobile ID (ISO/IEC 18013-5 mdoc, docType `org.iso.23220.1.jp.mnc`)
//! the authority issues to a provisioned phone, and the Token Status List
//! it publishes for it.
//!
//! * **Device key.** A P-256 key made in the phone's secure element,
//!   attested exactly like the JPKI phone keys (same device, same
//!   provisioning challenge, a trusted manufacturer root), on the auth PIN
//!   gate: [`KeyPolicy::MDOC_PRESENCE`] (auth PIN, a confirmed biometric,
//!   or the holder's presence confirmation in the wallet — a consent
//!   screen, as real wallets present) or, from phones made before
//!   presence existed, the authentication-key policy
//!   [`KeyPolicy::PHONE_AUTH`]. Nothing weaker or other (a
//!   signing-password key, a PIN-only key) is accepted: presenting the
//!   mobile ID is an act of the holder, never silent, and the key never
//!   leaves the secure element.
//! * **Content.** Built from the holder's basic four in the registry. The
//!   registry holds neither the My Number (it lives on the card only) nor
//!   the local government code, so `individual_number_unicode` and
//!   `local_gov_code_unicode` are omitted; every other element of
//!   [`shomei_mdoc::jp`] is written with that module's own encoders.
//! * **Portrait.** The authority keeps no photos of holders. A holder who
//!   wants the portrait on the phone brings it from the card at
//!   provisioning: the phone reads the card face (券面AP, with PIN B or the
//!   text AP's PIN; never the My Number) and sends the face EF as
//!   `card_face`. The authority accepts it only if it verifies under its
//!   own card-face key ([`shomei_pki::cardface::verify_face`], else 403
//!   `bad_card_face`) and is this holder's — birth date, sex and the name
//!   and address texts of the images equal the basic four of the live card
//!   certificates (else 403 `card_face_mismatch`) — and carries a photo;
//!   a refusal changes nothing. The photo is then kept with the phone's
//!   `mdocs` row (`portrait`, at most 24 KiB), written as `portrait` (bstr,
//!   the card's bytes as they are) in `org.iso.23220.1.jp`, and carried by
//!   every refresh; the registry drops it as soon as the phone leaves
//!   Active (superseded, lost, wipe asked or done), since that phone never
//!   shows its mobile ID again. It is personal data: never logged, never
//!   in an error or event.
//! * **Validity.** At most [`MDOC_LIFETIME`] (30 days), never past the next
//!   birthday in Japan (the age elements change), the phone certificates'
//!   notAfter, nor the document signer's. The phone refreshes it at sync
//!   once half of it has passed (`POST /v1/devices/{id}/mdoc`).
//! * **Status.** One index per phone's mobile ID, allocated in the registry
//!   (`mdocs`) at provisioning; a refresh keeps the index and device key.
//!   `GET /status/mdoc` is a 2-bit list: a phone that is no longer active
//!   (superseded by a newer phone, lost, wiped) or has a revoked
//!   certificate → INVALID; a suspended certificate → SUSPENDED. It is
//!   built from one registry query and signed on each request (cheap: one
//!   ECDSA signature), so it is never stale.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ciborium::Value;
use serde_json::json;
use shomei_core::{BasicFour, Timestamp};
use shomei_mdoc::issuer::{DocumentContent, DocumentSigner, issue};
use shomei_mdoc::jp::{self, elements};
use shomei_mdoc::mso::{DeviceKey, StatusRef, ValidityInfo, full_date};
use shomei_mdoc::status::{
    STATUS_INVALID, STATUS_LIST_CWT_TYPE, STATUS_SUSPENDED, STATUS_VALID, StatusList,
    StatusListTokenClaims, sign_status_list_token,
};
use shomei_pki::SystemRandom;
use shomei_registry::{DeviceStatus, Event, MdocStatusRow};
use shomei_secure_element::{KeyKind, KeyPolicy};

use crate::api::rfc3339;
use crate::phone::verify_phone_key_attestation;
use crate::{AppState, ServerError};

/// Longest validity of one signed mobile ID.
pub const MDOC_LIFETIME: time::Duration = time::Duration::days(30);
/// Where the status list is published (under the base URL).
pub const STATUS_PATH: &str = "/status/mdoc";
/// Bits per status-list entry (VALID, INVALID, SUSPENDED).
pub const STATUS_BITS: u8 = 2;
/// The status list's length is a multiple of this (the count of issued
/// mobile IDs is not given away exactly).
pub const STATUS_LIST_BLOCK: u64 = 1024;
/// How long a status list token is valid.
pub const STATUS_TOKEN_LIFETIME: time::Duration = time::Duration::hours(1);
/// How long a reader may cache it (seconds).
pub const STATUS_TTL_SECONDS: u64 = 300;

/// The status list's URI (the MSO's `status.status_list.uri`).
pub fn status_uri(s: &AppState) -> String {
    format!("{}{STATUS_PATH}", s.base_url)
}

/// Checks the mobile-ID device key's attestation: P-256, certified by a
/// trusted manufacturer for `challenge`, on the phone `device_id` (the one
/// whose JPKI keys were attested), under [`KeyPolicy::MDOC_PRESENCE`] or
/// [`KeyPolicy::PHONE_AUTH`] (nothing else).
pub(crate) fn check_device_key(
    spki: &[u8],
    chain: &[Vec<u8>],
    roots: &[Vec<u8>],
    challenge: &[u8],
    device_id: &str,
    now: Timestamp,
) -> Result<DeviceKey, ServerError> {
    let key = DeviceKey::from_spki(spki).map_err(|_| {
        ServerError::BadInput("mdoc_device_key must be a P-256 SubjectPublicKeyInfo".into())
    })?;
    let attested =
        verify_phone_key_attestation(chain, roots, spki, challenge, now).map_err(|e| {
            ServerError::Forbidden(
                "bad_mdoc_attestation",
                format!("the mobile-ID device key's attestation is refused: {e}"),
            )
        })?;
    if attested.kind != KeyKind::EcP256 {
        return Err(ServerError::Forbidden(
            "bad_mdoc_attestation",
            "the attested mobile-ID device key is not P-256".into(),
        ));
    }
    if ![KeyPolicy::MDOC_PRESENCE, KeyPolicy::PHONE_AUTH].contains(&attested.policy) {
        return Err(ServerError::Forbidden(
            "bad_mdoc_key_policy",
            "the mobile-ID device key must be gated by the auth PIN (biometric or \
             presence confirmation allowed)"
                .into(),
        ));
    }
    if !attested.device_id.to_hex().eq_ignore_ascii_case(device_id) {
        return Err(ServerError::Forbidden(
            "device_mismatch",
            "the mobile-ID device key lives on another device than the phone keys".into(),
        ));
    }
    Ok(key)
}

/// The document from the basic four (see the module docs for what is left out).
pub fn content(holder: &BasicFour, now: Timestamp) -> Result<DocumentContent, ServerError> {
    content_with_portrait(holder, None, now)
}

/// [`content`], plus the card's photo as `portrait` when the holder brought
/// it (see the module docs).
pub fn content_with_portrait(
    holder: &BasicFour,
    portrait: Option<&[u8]>,
    now: Timestamp,
) -> Result<DocumentContent, ServerError> {
    let birth = holder.birth_date();
    let today = jp::date_in_japan(now);
    if birth.date() > today {
        return Err(ServerError::Internal("holder born after now".into()));
    }
    let age = birth.age_on(today);
    let age_u = u64::try_from(age).map_err(|_| ServerError::Internal("age".into()))?;
    let mut jp_ns = vec![
        (elements::FULL_NAME.to_owned(), Value::from(holder.name())),
        (
            elements::RESIDENT_ADDRESS.to_owned(),
            Value::from(holder.address()),
        ),
        (
            elements::BIRTH_DATE_TEXT.to_owned(),
            Value::from(jp::birth_date_unicode(birth)),
        ),
        (
            elements::SEX_TEXT.to_owned(),
            Value::from(jp::sex_unicode(holder.sex())),
        ),
    ];
    if let Some(photo) = portrait {
        jp_ns.push((elements::PORTRAIT.to_owned(), Value::Bytes(photo.to_vec())));
    }
    let mut iso = vec![
        (elements::BIRTH_DATE.to_owned(), full_date(birth.date())),
        (
            elements::SEX.to_owned(),
            Value::from(jp::sex_iso5218(holder.sex())),
        ),
        (elements::AGE_IN_YEARS.to_owned(), Value::from(age_u)),
    ];
    for nn in jp::AGE_OVER {
        iso.push((
            format!("age_over_{nn:02}"),
            Value::Bool(age >= i32::from(nn)),
        ));
    }
    Ok(DocumentContent {
        doc_type: jp::DOC_TYPE.to_owned(),
        name_spaces: vec![
            (jp::NS_JP.to_owned(), jp_ns),
            (jp::NS_ISO23220.to_owned(), iso),
        ],
    })
}

/// The photo of a card face EF the phone read from the holder's card
/// (`card_face`), once the face is shown to be the authority's and this
/// holder's (see the module docs). Errors never carry the face's contents.
pub(crate) fn portrait_from_card_face(
    face_ef: &[u8],
    trusted_spki: &[u8],
    holder: &BasicFour,
) -> Result<Vec<u8>, ServerError> {
    use shomei_pki::cardface;
    if face_ef.len() > cardface::MAX_EF {
        return Err(ServerError::BadInput(
            "card_face is larger than a card EF".into(),
        ));
    }
    let face = cardface::verify_face(face_ef, trusted_spki).map_err(|e| {
        ServerError::Forbidden("bad_card_face", format!("card_face is refused: {e}"))
    })?;
    let d = holder.birth_date().date();
    let birth = format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day());
    let same = face.birth == birth
        && face.sex == holder.sex().code().to_string()
        && face.name().as_deref() == Some(holder.name())
        && face.address().as_deref() == Some(holder.address());
    if !same {
        return Err(ServerError::Forbidden(
            "card_face_mismatch",
            "card_face is not the face of the card certificate's holder (birth date, sex, name or address differ)"
                .into(),
        ));
    }
    if face.photo.is_empty() || face.photo.len() > cardface::MAX_PHOTO {
        return Err(ServerError::Forbidden(
            "bad_card_face",
            format!(
                "card_face must carry a photo of 1 to {} bytes",
                cardface::MAX_PHOTO
            ),
        ));
    }
    Ok(face.photo.clone())
}

/// A signed mobile ID.
pub(crate) struct IssuedMdoc {
    pub issuer_signed: Vec<u8>,
    pub valid_until: Timestamp,
    pub idx: u64,
}

impl IssuedMdoc {
    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "doc_type": jp::DOC_TYPE,
            "issuer_signed": B64.encode(&self.issuer_signed),
            "valid_until": rfc3339(self.valid_until),
            "status_idx": self.idx,
        })
    }
}

fn ds_not_after(cert_der: &[u8]) -> Result<Timestamp, ServerError> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|_| ServerError::Corrupt("the document signer certificate".into()))?;
    let t = cert.tbs_certificate.validity.not_after.to_unix_duration();
    Timestamp::from_unix_timestamp(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
        .map_err(|_| ServerError::Corrupt("the document signer certificate".into()))
}

/// Signs the holder's mobile ID for `key` under status index `idx`, valid
/// until at most `phone_not_after`, with the card's photo if the holder
/// brought it.
pub(crate) fn sign(
    s: &AppState,
    holder: &BasicFour,
    portrait: Option<&[u8]>,
    key: &DeviceKey,
    idx: u64,
    phone_not_after: Timestamp,
    now: Timestamp,
) -> Result<IssuedMdoc, ServerError> {
    let (ds_cert, ds_key) = &s.document_signer;
    let valid_until = jp::validity_until(holder.birth_date(), now, MDOC_LIFETIME)
        .min(phone_not_after)
        .min(ds_not_after(ds_cert)?);
    if valid_until <= now {
        return Err(ServerError::Conflict(
            "mdoc_not_issuable",
            "the phone certificates or the document signer end now: no mobile ID can be issued"
                .into(),
        ));
    }
    let mdoc_err = |e: shomei_mdoc::MdocError| ServerError::Internal(format!("mobile ID: {e}"));
    let ds = DocumentSigner::new(ds_key.as_ref(), ds_cert.clone()).map_err(mdoc_err)?;
    let validity = ValidityInfo {
        signed: now,
        valid_from: now,
        valid_until,
        expected_update: None,
    };
    let status = StatusRef {
        idx,
        uri: status_uri(s),
    };
    let signed = issue(
        &content_with_portrait(holder, portrait, now)?,
        key,
        validity,
        Some(status),
        &ds,
        &mut SystemRandom::new(),
    )
    .map_err(mdoc_err)?;
    Ok(IssuedMdoc {
        issuer_signed: signed.to_cbor().map_err(mdoc_err)?,
        valid_until: shomei_mdoc::mso::whole_seconds(valid_until),
        idx,
    })
}

/// The list value of one mobile ID.
pub fn entry_status(row: &MdocStatusRow) -> u8 {
    if row.device_status != DeviceStatus::Active || row.revoked > 0 {
        STATUS_INVALID
    } else if row.suspended > 0 {
        STATUS_SUSPENDED
    } else {
        STATUS_VALID
    }
}

/// `GET /status/mdoc`: the signed Status List Token (CWT).
pub(crate) async fn status_list(State(s): State<Arc<AppState>>) -> Result<Response, ServerError> {
    let rows = s.registry.mdoc_statuses().await?;
    let now = s.clock.now();
    let needed = rows.iter().map(|r| r.idx + 1).max().unwrap_or(0);
    let entries = needed.div_ceil(STATUS_LIST_BLOCK).max(1) * STATUS_LIST_BLOCK;
    let mdoc_err = |e: shomei_mdoc::MdocError| ServerError::Internal(format!("status list: {e}"));
    let mut list = StatusList::new(STATUS_BITS, entries).map_err(mdoc_err)?;
    for row in &rows {
        list.set(row.idx, entry_status(row)).map_err(mdoc_err)?;
    }
    let claims = StatusListTokenClaims {
        uri: status_uri(&s),
        issued_at: now,
        expires: now + STATUS_TOKEN_LIFETIME,
        ttl_seconds: Some(STATUS_TTL_SECONDS),
    };
    let (ds_cert, ds_key) = &s.document_signer;
    let token = sign_status_list_token(
        &list,
        &claims,
        ds_key.as_ref(),
        std::slice::from_ref(ds_cert),
    )
    .map_err(mdoc_err)?;
    Ok((
        [
            (header::CONTENT_TYPE, STATUS_LIST_CWT_TYPE.to_owned()),
            (
                header::CACHE_CONTROL,
                format!("max-age={STATUS_TTL_SECONDS}"),
            ),
        ],
        token,
    )
        .into_response())
}

/// `POST /v1/devices/{id}/mdoc` (device token): a freshly signed mobile ID
/// for the phone's device key, same status index. Only an active phone
/// whose certificates are live (not suspended) gets one.
pub(crate) async fn refresh(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let device = crate::phone::this_device(&s, &headers, &id).await?;
    if device.status != DeviceStatus::Active {
        return Err(ServerError::Conflict(
            "device_not_active",
            format!("the device is {}: its mobile ID has ended", device.status),
        ));
    }
    let record = s
        .registry
        .mdoc(&id)
        .await?
        .ok_or(ServerError::NotFound("mobile ID"))?;
    let now = s.clock.now();
    let certs: Vec<_> = s
        .registry
        .holder_certificates(&device.holder_id)
        .await?
        .into_iter()
        .filter(|c| c.device_id.as_deref() == Some(id.as_str()))
        .collect();
    let mut not_after: Option<Timestamp> = None;
    for c in &certs {
        match c.credential().status_at(now) {
            shomei_core::CertStatus::Active => {}
            shomei_core::CertStatus::Suspended => {
                return Err(ServerError::Conflict(
                    "device_suspended",
                    "the phone's certificates are suspended: resume them first".into(),
                ));
            }
            _ => {
                return Err(ServerError::Conflict(
                    "device_not_active",
                    "the phone's certificates have ended".into(),
                ));
            }
        }
        not_after = Some(not_after.map_or(c.not_after, |t: Timestamp| t.min(c.not_after)));
    }
    let not_after = not_after.ok_or_else(|| {
        ServerError::Conflict("device_not_active", "the phone has no certificates".into())
    })?;
    let holder = s
        .registry
        .holder(&device.holder_id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let key = DeviceKey::from_spki(&record.device_key)
        .map_err(|_| ServerError::Corrupt("mdocs.device_key".into()))?;
    let issued = sign(
        &s,
        &holder.basic_four,
        record.portrait.as_deref(),
        &key,
        record.idx,
        not_after,
        now,
    )?;
    let events = [Event {
        at: now,
        actor: shomei_registry::Actor::Holder(device.holder_id.clone()),
        action: "mdoc_refreshed".into(),
        holder_id: Some(device.holder_id.clone()),
        serial: None,
        detail: json!({"device_id": id, "status_idx": record.idx}),
    }];
    s.registry.add_events(&events).await?;
    s.notifier.committed(&events);
    Ok(Json(issued.json()).into_response())
}
