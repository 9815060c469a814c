//! The phone (スマホ用電子証明書) endpoints: provisioning from the card,
//! device sync, remote wipe, self-retire, notification settings and the
//! holder's event stream. See `openapi.rs` for the wire contract.
//!
//! Phones authenticate with a **device token** handed out once at
//! provisioning (`Authorization: Bearer <device_token>`); the registry keeps
//! only its SHA-256. The token outlives the phone's certificates on purpose:
//! a superseded, lost or retired phone still syncs, learns it must wipe, and
//! confirms it did. Only an *active* phone gets the holder's events.
//!
//! Revocation reasons chosen here:
//! * a newer phone supersedes every earlier phone certificate: `superseded`;
//! * a remote wipe (`POST /v1/devices/{id}/wipe`) revokes the phone's live
//!   certificates — `keyCompromise` when reported lost (the keys are in
//!   unknown hands), `cessationOfOperation` otherwise — so relying parties
//!   stop trusting the phone even if it never comes online to wipe;
//! * a phone retiring itself (sale, trade-in, repair): `cessationOfOperation`;
//! * a phone whose element wiped itself (`POST /v1/devices/{id}/wiped` with
//!   a cause): `keyCompromise` after tampering, `cessationOfOperation` when
//!   it gave up a provisioning after the answer (keys destroyed unused).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use shomei_ca::{IssuedCertificate, MAX_DEVICE_ID_LEN, PhoneRequest};
use shomei_core::{
    CertClass, CertStatus, Credential, Plan, RevocationReason, Root, Serial, Timestamp,
};
use shomei_pki::SystemRandom;
use shomei_registry::{
    Actor, CertRecord, DeviceProvisioning, DeviceRecord, DeviceStatus, Event, HolderContact,
    RegistryError, WipeReason,
};
use shomei_secure_element::{AttestationError, AttestedKey};

use crate::api::{
    ApiJson, Operator, ProofBody, authorise_for_holder, b64_field, bearer, cert_json, event_json,
    is_operator, parse_body, publish_changes, random_id, rfc3339,
};
use crate::{AppState, ServerError};

type Shared = Arc<AppState>;

/// Most certificates accepted in one attestation chain.
const MAX_CHAIN: usize = shomei_secure_element::attestation::MAX_CHAIN_LEN;
/// Events returned by one sync.
pub const SYNC_EVENTS: u32 = 100;
/// Events read per step of an event stream.
const STREAM_BATCH: u32 = 100;

/// The one place the authority verifies a secure element's key attestation:
/// the chain must end at a manufacturer root it trusts and certify
/// `expected_spki` with `expected_challenge` (see
/// [`shomei_secure_element::verify_attestation`]).
pub fn verify_phone_key_attestation(
    chain: &[Vec<u8>],
    manufacturer_roots: &[Vec<u8>],
    expected_spki: &[u8],
    expected_challenge: &[u8],
    now: Timestamp,
) -> Result<AttestedKey, AttestationError> {
    shomei_secure_element::verify_attestation(
        chain,
        manufacturer_roots,
        expected_spki,
        expected_challenge,
        now,
    )
}

// ---------------------------------------------------------------------------
// Device tokens

/// Prefix of device tokens (so a leaked one is recognisable in a scan).
const DEVICE_TOKEN_PREFIX: &str = "sdt_";

fn new_device_token() -> Result<String, ServerError> {
    let mut b = [0u8; 32];
    shomei_core::RandomSource::fill(&mut SystemRandom::new(), &mut b)
        .map_err(|_| ServerError::Internal("randomness failed".into()))?;
    Ok(format!("{DEVICE_TOKEN_PREFIX}{}", B64URL.encode(b)))
}

fn token_hash(token: &str) -> Vec<u8> {
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// The phone whose device token the request carries.
async fn device_from_token(s: &AppState, headers: &HeaderMap) -> Result<DeviceRecord, ServerError> {
    let token = bearer(headers)
        .filter(|t| t.starts_with(DEVICE_TOKEN_PREFIX))
        .ok_or(ServerError::UnauthorizedDevice)?;
    s.registry
        .device_by_token_hash(&token_hash(token))
        .await?
        .ok_or(ServerError::UnauthorizedDevice)
}

/// The device token's phone, which must be the one in the path.
pub(crate) async fn this_device(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<DeviceRecord, ServerError> {
    let device = device_from_token(s, headers).await?;
    if device.id != id {
        return Err(ServerError::Forbidden(
            "wrong_device",
            "the device token belongs to another device".into(),
        ));
    }
    Ok(device)
}

/// Who may read or set something of `holder_id`: the operator, or an active
/// phone of that holder (device token).
async fn operator_or_device(
    s: &AppState,
    headers: &HeaderMap,
    holder_id: &str,
) -> Result<(Actor, Option<String>), ServerError> {
    if bearer(headers).is_none() {
        return Err(ServerError::Unauthorized);
    }
    if is_operator(s, headers) {
        return Ok((Actor::Operator("operator".into()), None));
    }
    let device = device_from_token(s, headers)
        .await
        .map_err(|_| ServerError::Unauthorized)?;
    if device.holder_id != holder_id {
        return Err(ServerError::Forbidden(
            "not_your_holder",
            "the device belongs to another holder".into(),
        ));
    }
    if device.status != DeviceStatus::Active {
        return Err(ServerError::Forbidden(
            "device_not_active",
            format!(
                "the device is {}: only the active phone may do this",
                device.status
            ),
        ));
    }
    Ok((Actor::Holder(holder_id.to_owned()), Some(device.id)))
}

pub(crate) fn device_json(d: &DeviceRecord) -> serde_json::Value {
    json!({
        "id": d.id,
        "holder_id": d.holder_id,
        "kind": d.kind,
        "status": d.status.as_str(),
        "wipe": d.status.wipe_queued(),
        "created_at": rfc3339(d.created_at),
        "status_changed_at": d.status_changed_at.map(rfc3339),
        "wipe_requested_at": d.wipe_requested_at.map(rfc3339),
        "wiped_at": d.wiped_at.map(rfc3339),
    })
}

fn short_cert_json(c: &CertRecord, now: Timestamp) -> serde_json::Value {
    json!({
        "serial": c.serial.to_hex(),
        "class": c.class.as_str(),
        "status": c.credential().status_at(now).as_str(),
        "reason": c.reason.map(|r| r.as_str()),
    })
}

fn event_with_id(id: i64, e: &Event) -> serde_json::Value {
    let mut v = event_json(e);
    v["id"] = json!(id);
    v
}

// ---------------------------------------------------------------------------
// Provisioning

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceBody {
    /// The secure element's device id (lower-case hex), if the phone names it.
    id: Option<String>,
    /// `android`, `ios`, …
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PhoneBody {
    device: DeviceBody,
    card_sign_cert: String,
    challenge: String,
    card_signature: String,
    sign_csr: String,
    auth_csr: String,
    sign_attestation: Vec<String>,
    auth_attestation: Vec<String>,
    notify_email: Option<String>,
    /// The mobile-ID device key (P-256 SPKI, base64), optional.
    mdoc_device_key: Option<String>,
    /// Its attestation chain (base64 DER, leaf first); with `mdoc_device_key`.
    mdoc_attestation: Option<Vec<String>>,
    /// The card's face EF (券面AP, base64) as the phone read it, for the
    /// mobile ID's portrait; with `mdoc_device_key`. Personal data.
    card_face: Option<String>,
}

fn check_kind(kind: &str) -> Result<(), ServerError> {
    let ok = (1..=32).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ServerError::BadInput(
            "device.kind must be 1 to 32 of a-z, 0-9, '-' and '_' (e.g. android, ios)".into(),
        ))
    }
}

fn decode_chain(name: &str, chain: &[String]) -> Result<Vec<Vec<u8>>, ServerError> {
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(ServerError::BadInput(format!(
            "{name} must list 1 to {MAX_CHAIN} base64 DER certificates, leaf first"
        )));
    }
    chain.iter().map(|c| b64_field(name, c)).collect()
}

/// Refuses a card certificate that cannot vouch for a new phone now.
fn card_usable(c: &CertRecord, now: Timestamp, which: &str) -> Result<(), ServerError> {
    match c.credential().status_at(now) {
        CertStatus::Active => Ok(()),
        CertStatus::Suspended => Err(ServerError::Forbidden(
            "card_suspended",
            format!("the card's {which} certificate is suspended: resume it before adding a phone"),
        )),
        CertStatus::Revoked => Err(ServerError::Forbidden(
            "card_revoked",
            format!("the card's {which} certificate is revoked: a new card is needed"),
        )),
        CertStatus::Expired => Err(ServerError::Forbidden(
            "card_expired",
            format!("the card's {which} certificate has expired: renew it first"),
        )),
    }
}

/// `POST /v1/phones`: puts the card holder's certificates on a phone.
pub(crate) async fn provision(
    State(s): State<Shared>,
    ApiJson(body): ApiJson<PhoneBody>,
) -> Result<Response, ServerError> {
    check_kind(&body.device.kind)?;
    if let Some(id) = &body.device.id {
        let ok = (1..=MAX_DEVICE_ID_LEN).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(ServerError::BadInput(
                "device.id must be the secure element's device id in hex".into(),
            ));
        }
    }
    let card_sign_der = b64_field("card_sign_cert", &body.card_sign_cert)?;
    let challenge = b64_field("challenge", &body.challenge)?;
    let card_signature = b64_field("card_signature", &body.card_signature)?;
    let sign_csr = b64_field("sign_csr", &body.sign_csr)?;
    let auth_csr = b64_field("auth_csr", &body.auth_csr)?;
    let sign_attestation = decode_chain("sign_attestation", &body.sign_attestation)?;
    let auth_attestation = decode_chain("auth_attestation", &body.auth_attestation)?;
    let mdoc_key = match (&body.mdoc_device_key, &body.mdoc_attestation) {
        (Some(k), Some(chain)) => Some((
            b64_field("mdoc_device_key", k)?,
            decode_chain("mdoc_attestation", chain)?,
        )),
        (None, None) => None,
        _ => {
            return Err(ServerError::BadInput(
                "mdoc_device_key and mdoc_attestation come together".into(),
            ));
        }
    };
    let card_face = match (&body.card_face, &mdoc_key) {
        (Some(f), Some(_)) => Some(b64_field("card_face", f)?),
        (None, _) => None,
        (Some(_), None) => {
            return Err(ServerError::BadInput(
                "card_face comes with mdoc_device_key (it is the mobile ID's portrait)".into(),
            ));
        }
    };
    let email = body
        .notify_email
        .as_deref()
        .map(crate::notify::check_email)
        .transpose()
        .map_err(|why| ServerError::BadInput(why.into()))?;
    let now = s.clock.now();
    // Spent whatever the outcome: a provisioning can be neither retried nor replayed.
    if !s.challenges.consume(&challenge, now) {
        return Err(ServerError::Forbidden(
            "unknown_challenge",
            "the challenge is unknown, used or expired: ask POST /v1/challenges for a new one"
                .into(),
        ));
    }

    // The card: ours (pure check), then live in the registry, with its pair.
    let card_sign = s
        .authority
        .check_card_certificate(&card_sign_der, Root::Sign)?;
    let sign_rec = s
        .registry
        .certificate(card_sign.serial())
        .await?
        .ok_or_else(|| {
            ServerError::Forbidden(
                "card_not_registered",
                "the card signing certificate is not in the registry".into(),
            )
        })?;
    if sign_rec.class != CertClass::CardSign || sign_rec.der != card_sign_der {
        return Err(ServerError::Forbidden(
            "not_a_card_signing_certificate",
            "card_sign_cert must be the signing certificate of a My Number Card".into(),
        ));
    }
    card_usable(&sign_rec, now, "signing")?;
    let missing_auth = || {
        ServerError::Conflict(
            "card_auth_missing",
            "the card signing certificate has no authentication certificate of the same holder"
                .into(),
        )
    };
    let auth_serial = sign_rec.pair.clone().ok_or_else(missing_auth)?;
    let auth_rec = s
        .registry
        .certificate(&auth_serial)
        .await?
        .ok_or_else(missing_auth)?;
    if auth_rec.class != CertClass::CardAuth || auth_rec.holder_id != sign_rec.holder_id {
        return Err(missing_auth());
    }
    card_usable(&auth_rec, now, "authentication")?;
    let card_auth = s
        .authority
        .check_card_certificate(&auth_rec.der, Root::Auth)?;
    let holder_id = sign_rec.holder_id.clone();
    let holder = s
        .registry
        .holder(&holder_id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;

    // The portrait the holder brought from the card: the authority's face,
    // of this holder (the basic four the live card certificates carry).
    let portrait = card_face
        .map(|ef| {
            crate::mdoc::portrait_from_card_face(
                &ef,
                shomei_core::Signer::public_key_spki(s.card_face_key.as_ref()),
                &holder.basic_four,
            )
        })
        .transpose()?;

    // Everything else is the authority core's to decide.
    let holder_basic = holder.basic_four.clone();
    let state = s.clone();
    let roots = s.trusted_manufacturer_roots()?;
    let mdoc_roots = roots.clone();
    let mdoc_challenge = challenge.clone();
    let claimed = body.device.id.clone();
    let issued = tokio::task::spawn_blocking(move || {
        let req = PhoneRequest {
            holder: &holder.basic_four,
            card_sign: &card_sign,
            card_auth: &card_auth,
            challenge: &challenge,
            device_id: claimed.as_deref(),
            card_signature: &card_signature,
            sign_csr: &sign_csr,
            auth_csr: &auth_csr,
            sign_attestation: &sign_attestation,
            auth_attestation: &auth_attestation,
        };
        state
            .authority
            .provision_phone(&req, now, &mut SystemRandom::new(), |chain, spki, ch| {
                verify_phone_key_attestation(chain, &roots, spki, ch, now)
            })
    })
    .await
    .map_err(|e| ServerError::Internal(e.to_string()))??;
    // The mobile-ID device key: attested like the JPKI keys, on the same device.
    let mdoc_key = mdoc_key
        .map(|(spki, chain)| {
            crate::mdoc::check_device_key(
                &spki,
                &chain,
                &mdoc_roots,
                &mdoc_challenge,
                &issued.device_id,
                now,
            )
            .map(|key| (spki, key))
        })
        .transpose()?;

    // One phone per holder: every earlier phone certificate is superseded
    // and every active phone gets a wipe queued, in the same transaction.
    let device_id = random_id("d")?;
    let token = new_device_token()?;
    let all = s.registry.holder_certificates(&holder_id).await?;
    let creds: Vec<Credential> = all.iter().map(CertRecord::credential).collect();
    let phone_creds: Vec<Credential> = creds
        .iter()
        .filter(|c| c.class.is_phone())
        .cloned()
        .collect();
    let plan = Plan::for_card_revocation(&phone_creds, &creds, RevocationReason::Superseded, now);
    let superseded: Vec<String> = s
        .registry
        .holder_devices(&holder_id)
        .await?
        .into_iter()
        .filter(|d| d.status == DeviceStatus::Active)
        .map(|d| d.id)
        .collect();
    // A relying party keeps its customer across phone changes: each new
    // phone certificate replaces the holder's newest earlier phone
    // certificate of its class that nothing replaces yet, so linkage's
    // `successor` leads from an old phone's serial to this phone's (the
    // registry allows one successor per certificate).
    let replaced: Vec<&Serial> = all.iter().filter_map(|c| c.replaces.as_ref()).collect();
    let predecessor = |class: CertClass| {
        all.iter()
            .filter(|c| c.class == class && !replaced.contains(&&c.serial))
            .max_by_key(|c| c.issued_at)
            .map(|c| c.serial.clone())
    };
    let record = |c: &IssuedCertificate, parent: &Serial, pair: &Serial| CertRecord {
        serial: c.serial.clone(),
        class: c.class,
        holder_id: holder_id.clone(),
        card_id: None,
        device_id: Some(device_id.clone()),
        status: CertStatus::Active,
        reason: None,
        status_changed_at: None,
        not_before: c.not_before,
        not_after: c.not_after,
        shard: c.shard,
        parent: Some(parent.clone()),
        pair: Some(pair.clone()),
        replaces: predecessor(c.class),
        der: c.der.clone(),
        issued_at: now,
    };
    let certs = vec![
        record(&issued.sign, &sign_rec.serial, &issued.auth.serial),
        record(&issued.auth, &auth_rec.serial, &issued.sign.serial),
    ];
    let actor = Actor::Holder(holder_id.clone());
    let event = |action: &str, serial: Option<Serial>, detail: serde_json::Value| Event {
        at: now,
        actor: actor.clone(),
        action: action.into(),
        holder_id: Some(holder_id.clone()),
        serial,
        detail,
    };
    let mut events = vec![event(
        "phone_provisioned",
        None,
        json!({"device_id": device_id, "kind": body.device.kind, "superseded_devices": superseded}),
    )];
    events.extend(certs.iter().map(|c| {
        event(
            "issued",
            Some(c.serial.clone()),
            json!({"class": c.class.as_str(), "device_id": device_id}),
        )
    }));
    events.extend(plan.changes.iter().map(|c| {
        event(
            "revoked",
            Some(c.serial.clone()),
            json!({"from": c.from.as_str(), "to": c.to.as_str(), "reason": "superseded", "replaced_by_device": device_id}),
        )
    }));
    events.extend(superseded.iter().map(|old| {
        event(
            "wipe_requested",
            None,
            json!({"device_id": old, "reason": "superseded"}),
        )
    }));
    let contact = email.map(|email| HolderContact {
        holder_id: holder_id.clone(),
        email: Some(email),
        notify_email: true,
        updated_at: now,
    });
    if contact.is_some() {
        events.push(event(
            "contact_changed",
            None,
            json!({"notify_email": true}),
        ));
    }
    let provisioning = DeviceProvisioning {
        device: DeviceRecord {
            id: device_id.clone(),
            holder_id: holder_id.clone(),
            kind: body.device.kind.clone(),
            status: DeviceStatus::Active,
            created_at: now,
            status_changed_at: None,
            wipe_requested_at: None,
            wiped_at: None,
        },
        token_hash: token_hash(&token),
        certs,
        plan,
        wipe: superseded.clone(),
        contact,
    };
    match s
        .registry
        .provision_device(&provisioning, now, &events)
        .await
    {
        Ok(()) => {}
        Err(RegistryError::Duplicate { .. } | RegistryError::DeviceConflict { .. }) => {
            return Err(ServerError::Conflict(
                "concurrent_change",
                "another phone of this holder was provisioned or changed at the same time: try again"
                    .into(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    for c in &provisioning.certs {
        s.status.insert_active(c.serial.clone(), c.class);
    }
    publish_changes(&s, &provisioning.plan, now).await;
    s.notifier.committed(&events);
    tracing::info!(device_id = %device_id, superseded = superseded.len(), "phone provisioned");
    // The mobile ID, after the commit (its status index belongs to the
    // stored phone). Should it fail, the phone keeps its certificates and
    // the answer simply has no `mdoc`.
    let mdoc = match &mdoc_key {
        Some((spki, key)) => {
            let phone_not_after = issued.sign.not_after.min(issued.auth.not_after);
            let mdoc_event = Event {
                at: now,
                actor: actor.clone(),
                action: "mdoc_issued".into(),
                holder_id: Some(holder_id.clone()),
                serial: None,
                detail: json!({"device_id": device_id}),
            };
            let done = async {
                let rec = s
                    .registry
                    .mdoc_for_device(
                        &device_id,
                        spki,
                        portrait.as_deref(),
                        now,
                        std::slice::from_ref(&mdoc_event),
                    )
                    .await?;
                let issued = crate::mdoc::sign(
                    &s,
                    &holder_basic,
                    rec.portrait.as_deref(),
                    key,
                    rec.idx,
                    phone_not_after,
                    now,
                )?;
                Ok::<_, ServerError>(issued)
            }
            .await;
            match done {
                Ok(m) => {
                    s.notifier.committed(std::slice::from_ref(&mdoc_event));
                    Some(m.json())
                }
                Err(e) => {
                    tracing::warn!(device_id = %device_id, error = %e, "mobile ID not issued");
                    None
                }
            }
        }
        None => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "device_id": device_id,
            "device_token": token,
            "holder_id": holder_id,
            "se_device_id": issued.device_id,
            "sign_cert": B64.encode(&issued.sign.der),
            "auth_cert": B64.encode(&issued.auth.der),
            "sign_serial": issued.sign.serial.to_hex(),
            "auth_serial": issued.auth.serial.to_hex(),
            "not_after": {"sign": rfc3339(issued.sign.not_after), "auth": rfc3339(issued.auth.not_after)},
            "superseded_devices": superseded,
            "revoked": provisioning.plan.changes.iter().map(|c| c.serial.to_hex()).collect::<Vec<_>>(),
            "mdoc": mdoc,
        })),
    )
        .into_response())
}

// ---------------------------------------------------------------------------
// The phone's own calls (device token)

fn query_after(q: Option<&str>) -> Result<i64, ServerError> {
    let Some(q) = q else { return Ok(0) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("after=") {
            return v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ServerError::BadInput("after must be a cursor from an earlier answer".into())
            });
        }
    }
    Ok(0)
}

/// `GET /v1/devices/{id}/sync`: status, wipe order, certificates, events.
pub(crate) async fn sync(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ServerError> {
    let after = query_after(q.as_deref())?;
    let device = this_device(&s, &headers, &id).await?;
    let now = s.clock.now();
    let certs: Vec<CertRecord> = s
        .registry
        .holder_certificates(&device.holder_id)
        .await?
        .into_iter()
        .filter(|c| c.device_id.as_deref() == Some(id.as_str()))
        .collect();
    // Only the holder's current phone hears about the holder.
    let events = if device.status == DeviceStatus::Active {
        s.registry
            .events_since(&device.holder_id, after, SYNC_EVENTS)
            .await?
    } else {
        Vec::new()
    };
    let cursor = events.last().map_or(after, |(id, _)| *id);
    Ok(Json(json!({
        "device_id": device.id,
        "holder_id": device.holder_id,
        "status": device.status.as_str(),
        "wipe": device.status.wipe_queued(),
        "wipe_requested_at": device.wipe_requested_at.map(rfc3339),
        "certificates": certs.iter().map(|c| short_cert_json(c, now)).collect::<Vec<_>>(),
        "events": events.iter().map(|(id, e)| event_with_id(*id, e)).collect::<Vec<_>>(),
        "cursor": cursor,
        "more": events.len() == SYNC_EVENTS as usize,
    }))
    .into_response())
}

/// The body of `POST /v1/devices/{id}/wiped`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct WipedBody {
    /// `"tampered"` (the secure element wiped itself) or
    /// `"provisioning_failed"` (the phone gave up a provisioning after the
    /// authority's answer): no order was given.
    cause: Option<String>,
}

/// `POST /v1/devices/{id}/wiped`: the phone erased its credentials.
///
/// Usually the answer to a wipe order (without one: 409). With a `cause`,
/// a phone still active wiped itself on its own, and its certificates are
/// revoked (the mobile ID's status turns invalid) before the wipe is
/// recorded:
/// * `"tampered"`: its secure element found its storage tampered with; the
///   keys are gone and may have been attacked: `keyCompromise`;
/// * `"provisioning_failed"`: the phone could not take the certificates
///   this authority had just issued (an answer it could not check, or its
///   wallet could not be written) and destroyed the new keys unused; no
///   key is in anyone's hands, the certificates are simply not needed:
///   `cessationOfOperation`.
///
/// Only the device token can say so (the keys that could prove more no
/// longer exist); a stolen token can thus end the phone, which the holder
/// undoes from the card (a new provisioning).
pub(crate) async fn wiped(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WipedBody>,
) -> Result<Response, ServerError> {
    let device = this_device(&s, &headers, &id).await?;
    let now = s.clock.now();
    let self_wiped = match body.cause.as_deref() {
        None => None,
        Some(cause @ "tampered") => Some((cause, RevocationReason::KeyCompromise)),
        Some(cause @ "provisioning_failed") => {
            Some((cause, RevocationReason::CessationOfOperation))
        }
        Some(_) => {
            return Err(ServerError::BadInput(
                "cause: only \"tampered\" (the secure element wiped itself) or \
                 \"provisioning_failed\" (the phone gave up a provisioning after the answer)"
                    .into(),
            ));
        }
    };
    if let (Some((cause, reason)), DeviceStatus::Active) = (self_wiped, device.status) {
        let all = s.registry.holder_certificates(&device.holder_id).await?;
        let plan = device_plan(&all, &id, reason, now);
        let actor = Actor::Holder(device.holder_id.clone());
        let mut events = vec![Event {
            at: now,
            actor: actor.clone(),
            action: "self_wiped".into(),
            holder_id: Some(device.holder_id.clone()),
            serial: None,
            detail: json!({"device_id": id, "cause": cause}),
        }];
        events.extend(revocation_events(&plan, &actor, &device, now));
        s.registry
            .request_wipe(&id, WipeReason::Requested, &plan, now, &events)
            .await?;
        publish_changes(&s, &plan, now).await;
        s.notifier.committed(&events);
    }
    if device.status != DeviceStatus::Wiped {
        let events = [Event {
            at: now,
            actor: Actor::Holder(device.holder_id.clone()),
            action: "wiped".into(),
            holder_id: Some(device.holder_id.clone()),
            serial: None,
            detail: json!({"device_id": id}),
        }];
        s.registry.confirm_wiped(&id, now, &events).await?;
        s.notifier.committed(&events);
    }
    let after = s
        .registry
        .device(&id)
        .await?
        .ok_or(ServerError::NotFound("device"))?;
    Ok(Json(device_json(&after)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetireBody {
    challenge: String,
    signature: String,
}

/// `POST /v1/devices/{id}/retire`: the phone ends its own certificates
/// (before sale, trade-in, repair), proving possession of its auth key.
pub(crate) async fn retire(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RetireBody>,
) -> Result<Response, ServerError> {
    let device = this_device(&s, &headers, &id).await?;
    let challenge = b64_field("challenge", &body.challenge)?;
    let signature = b64_field("signature", &body.signature)?;
    let now = s.clock.now();
    if !s.challenges.consume(&challenge, now) {
        return Err(ServerError::Forbidden(
            "unknown_challenge",
            "the challenge is unknown, used or expired: ask POST /v1/challenges for a new one"
                .into(),
        ));
    }
    let not_active = || {
        ServerError::Conflict(
            "device_not_active",
            "the phone's certificates have already ended: sync, wipe and confirm instead".into(),
        )
    };
    if device.status != DeviceStatus::Active {
        return Err(not_active());
    }
    let all = s.registry.holder_certificates(&device.holder_id).await?;
    let auth = all
        .iter()
        .find(|c| {
            c.class == CertClass::PhoneAuth
                && c.device_id.as_deref() == Some(id.as_str())
                && !c.credential().status_at(now).is_final()
        })
        .ok_or_else(not_active)?;
    let spki = shomei_pki::csr::certificate_spki(&auth.der)?;
    let message = shomei_ca::device_proof_message("retire", &id, &challenge);
    shomei_pki::csr::verify_rsa_sha256(&spki, &message, &signature).map_err(|_| {
        ServerError::Forbidden(
            "bad_device_proof",
            "the signature is not the phone authentication key's over the retire message".into(),
        )
    })?;
    let plan = device_plan(&all, &id, RevocationReason::CessationOfOperation, now);
    let actor = Actor::Holder(device.holder_id.clone());
    let mut events = vec![Event {
        at: now,
        actor: actor.clone(),
        action: "retired".into(),
        holder_id: Some(device.holder_id.clone()),
        serial: None,
        detail: json!({"device_id": id}),
    }];
    events.extend(revocation_events(&plan, &actor, &device, now));
    let status = s
        .registry
        .request_wipe(&id, WipeReason::Requested, &plan, now, &events)
        .await?;
    publish_changes(&s, &plan, now).await;
    s.notifier.committed(&events);
    Ok(wipe_answer(&id, status, &plan))
}

// ---------------------------------------------------------------------------
// Operator or holder (card proof)

/// Every live certificate of phone `id`, revoked with `reason`.
fn device_plan(all: &[CertRecord], id: &str, reason: RevocationReason, now: Timestamp) -> Plan {
    let creds: Vec<Credential> = all.iter().map(CertRecord::credential).collect();
    let mine: Vec<Credential> = all
        .iter()
        .filter(|c| c.device_id.as_deref() == Some(id))
        .map(CertRecord::credential)
        .collect();
    Plan::for_card_revocation(&mine, &creds, reason, now)
}

fn revocation_events<'a>(
    plan: &'a Plan,
    actor: &'a Actor,
    device: &'a DeviceRecord,
    now: Timestamp,
) -> impl Iterator<Item = Event> + 'a {
    plan.changes.iter().map(move |c| Event {
        at: now,
        actor: actor.clone(),
        action: "revoked".into(),
        holder_id: Some(device.holder_id.clone()),
        serial: Some(c.serial.clone()),
        detail: json!({"from": c.from.as_str(), "to": c.to.as_str(), "reason": c.reason.map(|r| r.as_str()), "device_id": device.id}),
    })
}

fn wipe_answer(id: &str, status: DeviceStatus, plan: &Plan) -> Response {
    Json(json!({
        "device_id": id,
        "status": status.as_str(),
        "wipe": status.wipe_queued(),
        "revoked": plan.changes.iter().map(|c| c.serial.to_hex()).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// A holder id no holder has (ids are `random_id` strings, never empty):
/// what a proof is checked against when the device id is unknown.
const NO_HOLDER: &str = "";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WipeBody {
    lost: Option<bool>,
    proof: Option<ProofBody>,
}

/// `POST /v1/devices/{id}/wipe`: queue a remote wipe and end the phone's
/// certificates (operator, or the holder with a proof by the card over
/// `device_proof_message("wipe", id, challenge)`).
pub(crate) async fn wipe(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ServerError> {
    let body: WipeBody = parse_body(&body)?;
    if !headers.contains_key(header::AUTHORIZATION) && body.proof.is_none() {
        return Err(ServerError::Unauthorized);
    }
    // Authorise before saying whether the phone exists: an unknown id is
    // checked like a phone of another holder (the proof is verified and its
    // challenge spent, then `not_your_certificate`), so nobody can probe
    // which device ids exist. Only the operator learns `404`.
    let known = s.registry.device(&id).await?;
    let holder_id = known.as_ref().map_or(NO_HOLDER, |d| d.holder_id.as_str());
    let actor = authorise_for_holder(&s, &headers, body.proof.as_ref(), holder_id, |c| {
        shomei_ca::device_proof_message("wipe", &id, c)
    })
    .await?;
    let device = known.ok_or(ServerError::NotFound("device"))?;
    if device.status == DeviceStatus::Wiped {
        return Err(ServerError::Conflict(
            "device_wiped",
            "the phone has already confirmed its wipe".into(),
        ));
    }
    let now = s.clock.now();
    let lost = body.lost.unwrap_or(false);
    let (why, reason) = if lost {
        (WipeReason::Lost, RevocationReason::KeyCompromise)
    } else {
        (
            WipeReason::Requested,
            RevocationReason::CessationOfOperation,
        )
    };
    let all = s.registry.holder_certificates(&device.holder_id).await?;
    let plan = device_plan(&all, &id, reason, now);
    let mut events = vec![Event {
        at: now,
        actor: actor.clone(),
        action: "wipe_requested".into(),
        holder_id: Some(device.holder_id.clone()),
        serial: None,
        detail: json!({"device_id": id, "reason": if lost { "lost" } else { "requested" }}),
    }];
    events.extend(revocation_events(&plan, &actor, &device, now));
    let status = s
        .registry
        .request_wipe(&id, why, &plan, now, &events)
        .await?;
    publish_changes(&s, &plan, now).await;
    s.notifier.committed(&events);
    Ok(wipe_answer(&id, status, &plan))
}

/// `GET /v1/devices/{id}` (operator): the phone and its certificates.
pub(crate) async fn device(
    State(s): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let d = s
        .registry
        .device(&id)
        .await?
        .ok_or(ServerError::NotFound("device"))?;
    let now = s.clock.now();
    let certs: Vec<_> = s
        .registry
        .holder_certificates(&d.holder_id)
        .await?
        .into_iter()
        .filter(|c| c.device_id.as_deref() == Some(id.as_str()))
        .map(|c| cert_json(&c, now))
        .collect();
    let mut v = device_json(&d);
    v["certificates"] = json!(certs);
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactBody {
    email: Option<String>,
    notify_email: bool,
}

/// `PUT /v1/holders/{id}/contact` (operator, or the holder's active phone).
pub(crate) async fn set_contact(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ContactBody>,
) -> Result<Response, ServerError> {
    let (actor, _) = operator_or_device(&s, &headers, &id).await?;
    let email = body
        .email
        .as_deref()
        .map(crate::notify::check_email)
        .transpose()
        .map_err(|why| ServerError::BadInput(why.into()))?;
    if body.notify_email && email.is_none() {
        return Err(ServerError::BadInput(
            "notify_email needs an email address".into(),
        ));
    }
    s.registry
        .holder(&id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let now = s.clock.now();
    let events = [Event {
        at: now,
        actor,
        action: "contact_changed".into(),
        holder_id: Some(id.clone()),
        serial: None,
        detail: json!({"notify_email": body.notify_email}),
    }];
    let email_set = email.is_some();
    s.registry
        .set_contact(
            &HolderContact {
                holder_id: id.clone(),
                email,
                notify_email: body.notify_email,
                updated_at: now,
            },
            &events,
        )
        .await?;
    s.notifier.committed(&events);
    Ok(
        Json(json!({"holder_id": id, "notify_email": body.notify_email, "email_set": email_set}))
            .into_response(),
    )
}

// ---------------------------------------------------------------------------
// Server-sent events

struct Feed {
    s: Shared,
    holder: String,
    device: Option<String>,
    cursor: i64,
    pending: VecDeque<(i64, Event)>,
    news: tokio::sync::broadcast::Receiver<Arc<str>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

async fn next_event(mut f: Feed) -> Option<(Result<SseEvent, Infallible>, Feed)> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        if *f.stop.borrow() {
            return None;
        }
        if let Some((id, e)) = f.pending.pop_front() {
            let ev = SseEvent::default()
                .id(id.to_string())
                .event(e.action.as_str())
                .data(event_with_id(id, &e).to_string());
            return Some((Ok(ev), f));
        }
        // A phone hears about the holder only while it is the active one.
        if let Some(d) = &f.device {
            match f.s.registry.device(d).await {
                Ok(Some(d)) if d.status == DeviceStatus::Active => {}
                _ => return None,
            }
        }
        match f
            .s
            .registry
            .events_since(&f.holder, f.cursor, STREAM_BATCH)
            .await
        {
            Ok(batch) if !batch.is_empty() => {
                f.cursor = batch.last().map_or(f.cursor, |(id, _)| *id);
                f.pending.extend(batch);
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "event stream ended: registry read failed");
                return None;
            }
        }
        loop {
            tokio::select! {
                news = f.news.recv() => match news {
                    Ok(h) if *h == *f.holder => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return None,
                },
                _ = f.stop.changed() => return None,
            }
        }
    }
}

/// `GET /v1/holders/{id}/events/stream`: the holder's events as server-sent
/// events (`id` = the event id, `event` = the action, `data` = the event as
/// JSON), from `Last-Event-ID` or `?after=` (default: from the start), then
/// live. Operator token, or the device token of the holder's active phone.
pub(crate) async fn event_stream(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ServerError> {
    let (_, device) = operator_or_device(&s, &headers, &id).await?;
    s.registry
        .holder(&id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let after = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ServerError::BadInput("Last-Event-ID must be an event id".into()))?,
        None => query_after(q.as_deref())?,
    };
    // Subscribe before the first read, so nothing committed in between is missed.
    let feed = Feed {
        news: s.notifier.subscribe(),
        stop: s.shutdown.subscribe(),
        s: s.clone(),
        holder: id,
        device,
        cursor: after,
        pending: VecDeque::new(),
    };
    let stream = futures_util::stream::unfold(feed, next_event);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
