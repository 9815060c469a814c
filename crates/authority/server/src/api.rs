//! Routes and handlers. See `openapi.rs` for the documented surface.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use shomei_ca::EnrolRequest;
use shomei_core::{Action, BasicFour, CertClass, Plan, RevocationReason, Root, Serial};
use shomei_pki::SystemRandom;
use shomei_registry::{Actor, CertRecord, Enrolment, Event, HolderRecord};

use crate::home::pem;
use crate::{AppState, ServerError};

type Shared = Arc<AppState>;

/// Largest request body accepted (JSON with two CSRs is ~3 KiB).
const MAX_BODY: usize = 64 * 1024;

/// The whole HTTP surface.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/ca/card-face.pem", get(card_face_key))
        .route("/ca/reader-ca.crl", get(crate::reader_cert::crl))
        .route("/ca/{file}", get(trust_anchor))
        .route("/crl/iaca.crl", get(iaca_crl))
        .route("/crl/{class}/{file}", get(crl))
        .route("/ocsp/{root}", post(ocsp_post))
        .route("/ocsp/{root}/{*request}", get(ocsp_get))
        .route("/v1/cards", post(enrol))
        .route("/v1/certificates/{serial}", get(certificate))
        .route("/v1/challenges", post(new_challenge))
        .route("/v1/certificates/{serial}/renew", post(renew))
        .route("/v1/certificates/{serial}/{action}", post(lifecycle))
        .route("/v1/holders/{id}", get(holder).put(change_holder))
        .route("/v1/holders/{id}/events", get(holder_events))
        .route(
            "/v1/holders/{id}/events/stream",
            get(crate::phone::event_stream),
        )
        .route("/v1/holders/{id}/contact", put(crate::phone::set_contact))
        .route("/v1/phones", post(crate::phone::provision))
        .route("/v1/relying-parties", post(crate::linkage::register))
        .route("/v1/linkage/{serial}", get(crate::linkage::lookup))
        .route("/v1/reader-certificates", post(crate::reader_cert::issue))
        .route(
            "/v1/reader-certificates/{serial}/revoke",
            post(crate::reader_cert::revoke),
        )
        .route("/v1/devices/{id}", get(crate::phone::device))
        .route("/v1/devices/{id}/sync", get(crate::phone::sync))
        .route("/v1/devices/{id}/mdoc", post(crate::mdoc::refresh))
        .route(crate::mdoc::STATUS_PATH, get(crate::mdoc::status_list))
        .route("/v1/devices/{id}/wipe", post(crate::phone::wipe))
        .route("/v1/devices/{id}/wiped", post(crate::phone::wiped))
        .route("/v1/devices/{id}/retire", post(crate::phone::retire))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Proof that the request carries the operator's bearer token.
pub struct Operator;

impl FromRequestParts<Shared> for Operator {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        if is_operator(state, &parts.headers) {
            Ok(Operator)
        } else {
            Err(ServerError::Unauthorized)
        }
    }
}

/// The token of an `Authorization: Bearer …` header, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether the request carries the operator's bearer token.
pub(crate) fn is_operator(s: &AppState, headers: &HeaderMap) -> bool {
    bearer(headers).is_some_and(|t| constant_time_eq(t.as_bytes(), s.operator_token.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// JSON body extractor whose rejections are problem+json too.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = ServerError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ServerError::BadInput(format!("cannot read body: {e}")))?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ServerError::BadInput(format!(
                "invalid JSON body: {}",
                json_error_without_input(&e)
            ))
        })
    }
}

/// serde_json errors may quote input; keep only the category and position.
pub(crate) fn json_error_without_input(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "a field is missing or has the wrong type or value",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

fn der_response(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// The card-face public key (SubjectPublicKeyInfo) as PEM `PUBLIC KEY`.
async fn card_face_key(State(s): State<Shared>) -> Response {
    use shomei_core::Signer as _;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        )],
        pem("PUBLIC KEY", s.card_face_key.public_key_spki()),
    )
        .into_response()
}

async fn trust_anchor(
    State(s): State<Shared>,
    Path(file): Path<String>,
) -> Result<Response, ServerError> {
    let (der, as_pem) = match file.as_str() {
        "sign.pem" => (&s.sign_root_der, true),
        "auth.pem" => (&s.auth_root_der, true),
        "sign.der" => (&s.sign_root_der, false),
        "auth.der" => (&s.auth_root_der, false),
        "iaca.pem" => (&s.iaca.cert_der().to_vec(), true),
        "iaca.der" => (&s.iaca.cert_der().to_vec(), false),
        "reader-ca.pem" => (&s.reader_ca.cert_der().to_vec(), true),
        "reader-ca.der" => (&s.reader_ca.cert_der().to_vec(), false),
        "card-face.der" => {
            use shomei_core::Signer as _;
            return Ok(der_response(
                "application/octet-stream",
                s.card_face_key.public_key_spki().to_vec(),
            ));
        }
        _ => return Err(ServerError::NotFound("trust anchor")),
    };
    Ok(if as_pem {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            )],
            pem("CERTIFICATE", der),
        )
            .into_response()
    } else {
        der_response("application/pkix-cert", der.clone())
    })
}

async fn crl(
    State(s): State<Shared>,
    Path((class, file)): Path<(String, String)>,
) -> Result<Response, ServerError> {
    let class: CertClass = class.parse().map_err(|_| ServerError::NotFound("CRL"))?;
    let shard: u32 = file
        .strip_suffix(".crl")
        .and_then(|n| n.parse().ok())
        .ok_or(ServerError::NotFound("CRL"))?;
    if shard >= s.authority.config().crl_shards {
        return Err(ServerError::NotFound("CRL shard"));
    }
    let der = s.crls.get(&s, class, shard).await?;
    Ok(der_response("application/pkix-crl", der.as_ref().clone()))
}

/// The IACA's CRL: revoked document signers (none are revoked yet; signed
/// fresh on each request, P-256 makes that cheap). The CRL number is the
/// Unix time, which only grows.
async fn iaca_crl(State(s): State<Shared>) -> Result<Response, ServerError> {
    let now = s.clock.now();
    let number = u64::try_from(now.unix_timestamp()).unwrap_or(1);
    let der = s.iaca.crl(
        &s.authority.config().points,
        number,
        now,
        now + crate::publish::CRL_VALIDITY,
        &[],
    )?;
    Ok(der_response("application/pkix-crl", der))
}

fn parse_root(root: &str) -> Result<Root, ServerError> {
    match root {
        "sign" => Ok(Root::Sign),
        "auth" => Ok(Root::Auth),
        _ => Err(ServerError::NotFound("OCSP responder")),
    }
}

async fn ocsp_post(
    State(s): State<Shared>,
    Path(root): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ServerError> {
    parse_root(&root)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.is_empty() && !ct.starts_with("application/ocsp-request") {
        return Err(ServerError::BadInput(
            "Content-Type must be application/ocsp-request".into(),
        ));
    }
    Ok(ocsp_answer(&s, &body))
}

async fn ocsp_get(
    State(s): State<Shared>,
    Path((root, request)): Path<(String, String)>,
) -> Result<Response, ServerError> {
    parse_root(&root)?;
    // RFC 6960 Appendix A.1: base64 of the DER, then URL-encoded (axum has
    // already percent-decoded the path).
    let der = match B64.decode(request.trim_start_matches('/')) {
        Ok(d) => d,
        Err(_) => {
            return Ok(der_response(
                "application/ocsp-response",
                shomei_pki::ocsp::error_response(
                    shomei_pki::ocsp::OcspResponseStatus::MalformedRequest,
                ),
            ));
        }
    };
    Ok(ocsp_answer(&s, &der))
}

fn ocsp_answer(s: &AppState, der: &[u8]) -> Response {
    let now = s.clock.now();
    let (body, serials) = s.ocsp.answer_with_serials(der, &s.status, now);
    // A status check is a use the authority sees: noted for phone
    // certificates, written later in batches (never on this path).
    s.usage.note(&serials, &s.status, now);
    der_response("application/ocsp-response", body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolBody {
    holder: BasicFour,
    sign_csr: Option<String>,
    auth_csr: Option<String>,
    /// Written to the card only: never stored, logged or echoed.
    my_number: Option<String>,
    portrait: Option<String>,
}

/// The card face data of a new card (built before anything is committed,
/// so bad input refuses the enrolment as a whole). The My Number goes into
/// the answer for the card and nowhere else.
fn card_face(
    s: &AppState,
    holder: &BasicFour,
    my_number: Option<&str>,
    portrait: Option<&str>,
    now: shomei_core::Timestamp,
) -> Result<serde_json::Value, ServerError> {
    use shomei_pki::cardface;
    let mut rng = SystemRandom::new();
    let my_number = match my_number {
        // The error names the rule broken, never the number.
        Some(n) => shomei_core::MyNumber::parse(n)
            .map_err(|e| ServerError::BadInput(format!("my_number: {e}")))?,
        None => shomei_core::MyNumber::generate(&mut rng)
            .map_err(|_| ServerError::Internal("randomness failed".into()))?,
    };
    let photo = match portrait {
        Some(p) => B64
            .decode(p.trim())
            .map_err(|_| ServerError::BadInput("portrait must be base64".into()))?,
        None => cardface::placeholder_photo().map_err(ServerError::Pki)?,
    };
    if photo.len() > cardface::MAX_PHOTO {
        return Err(ServerError::BadInput(format!(
            "portrait larger than {} bytes",
            cardface::MAX_PHOTO
        )));
    }
    let mut code = [0u8; 2];
    shomei_core::RandomSource::fill(&mut rng, &mut code)
        .map_err(|_| ServerError::Internal("randomness failed".into()))?;
    let security_code = format!("{:04}", u16::from_be_bytes(code) % 10_000);
    // The card is valid until the 10th birthday after issuance (5th under 18).
    let today = now.date();
    let years = if holder.birth_date().age_on(today) >= 18 {
        10
    } else {
        5
    };
    let expiry = holder.birth_date().nth_birthday_after(today, years);
    let files = cardface::build(
        &cardface::FaceInput {
            holder,
            my_number: &my_number,
            expiry,
            security_code: &security_code,
            photo: &photo,
            issuer: &s.name,
        },
        s.card_face_key.as_ref(),
    )
    .map_err(ServerError::Pki)?;
    Ok(json!({
        "text": {
            "my_number": B64.encode(&files.text_my_number),
            "attributes": B64.encode(&files.text_attributes),
            "basic": B64.encode(&files.text_basic),
        },
        "visual": {
            "face": B64.encode(&files.visual_face),
            "basic": B64.encode(&files.visual_basic),
        },
        "expiry": format!("{:04}-{:02}-{:02}", expiry.year(), u8::from(expiry.month()), expiry.day()),
        "security_code": security_code,
    }))
}

pub(crate) fn b64_field(name: &str, v: &str) -> Result<Vec<u8>, ServerError> {
    B64.decode(v.trim())
        .map_err(|_| ServerError::BadInput(format!("{name} must be base64 of DER")))
}

pub(crate) fn random_id(prefix: &str) -> Result<String, ServerError> {
    let mut b = [0u8; 12];
    shomei_core::RandomSource::fill(&mut SystemRandom::new(), &mut b)
        .map_err(|_| ServerError::Internal("randomness failed".into()))?;
    Ok(format!(
        "{prefix}_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

async fn enrol(
    State(s): State<Shared>,
    _op: Operator,
    ApiJson(body): ApiJson<EnrolBody>,
) -> Result<Response, ServerError> {
    let auth_csr = b64_field(
        "auth_csr",
        body.auth_csr
            .as_deref()
            .ok_or(ServerError::Ca(shomei_ca::CaError::MissingAuthCsr))?,
    )?;
    let sign_csr = body
        .sign_csr
        .as_deref()
        .map(|v| b64_field("sign_csr", v))
        .transpose()?;
    let now = s.clock.now();
    let holder = body.holder;
    let face = card_face(
        &s,
        &holder,
        body.my_number.as_deref(),
        body.portrait.as_deref(),
        now,
    )?;
    let state = s.clone();
    let (issued, holder) = tokio::task::spawn_blocking(move || {
        let req = EnrolRequest {
            holder: &holder,
            sign_csr: sign_csr.as_deref(),
            auth_csr: &auth_csr,
        };
        state
            .authority
            .enrol(&req, now, &mut SystemRandom::new())
            .map(|i| (i, holder))
    })
    .await
    .map_err(|e| ServerError::Internal(e.to_string()))??;
    let holder_id = random_id("h")?;
    let card_id = random_id("c")?;
    let mut certs = Vec::new();
    let pair = issued.sign.as_ref().map(|s| s.serial.clone());
    for (c, other) in issued
        .sign
        .iter()
        .map(|c| (c, Some(issued.auth.serial.clone())))
        .chain([(&issued.auth, pair)])
    {
        certs.push(CertRecord {
            serial: c.serial.clone(),
            class: c.class,
            holder_id: holder_id.clone(),
            card_id: Some(card_id.clone()),
            device_id: None,
            status: shomei_core::CertStatus::Active,
            reason: None,
            status_changed_at: None,
            not_before: c.not_before,
            not_after: c.not_after,
            shard: c.shard,
            parent: None,
            pair: other,
            replaces: None,
            der: c.der.clone(),
            issued_at: now,
        });
    }
    let events = certs
        .iter()
        .map(|c| Event {
            at: now,
            actor: Actor::Operator("operator".into()),
            action: "issued".into(),
            holder_id: Some(holder_id.clone()),
            serial: Some(c.serial.clone()),
            detail: json!({"class": c.class.as_str(), "card_id": card_id}),
        })
        .collect();
    let enrolment = Enrolment {
        holder: HolderRecord {
            id: holder_id.clone(),
            basic_four: holder,
            created_at: now,
            updated_at: now,
        },
        card_id: card_id.clone(),
        certificates: certs,
        events,
    };
    s.registry.enrol(&enrolment).await?;
    for c in &enrolment.certificates {
        s.status.insert_active(c.serial.clone(), c.class);
    }
    s.notifier.committed(&enrolment.events);
    tracing::info!(card_id = %card_id, "card enrolled");
    let mut out = json!({
        "card_id": card_id,
        "holder_id": holder_id,
        "auth_cert": B64.encode(&issued.auth.der),
        "auth_serial": issued.auth.serial.to_hex(),
        "card_face": face,
    });
    if let Some(sign) = &issued.sign {
        out["sign_cert"] = json!(B64.encode(&sign.der));
        out["sign_serial"] = json!(sign.serial.to_hex());
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

pub(crate) fn parse_serial(s: &str) -> Result<Serial, ServerError> {
    s.parse()
        .map_err(|e| ServerError::BadInput(format!("serial: {e}")))
}

pub(crate) fn cert_json(c: &CertRecord, now: shomei_core::Timestamp) -> serde_json::Value {
    json!({
        "serial": c.serial.to_hex(),
        "class": c.class.as_str(),
        "status": c.credential().status_at(now).as_str(),
        "reason": c.reason.map(|r| r.as_str()),
        "status_changed_at": c.status_changed_at.map(rfc3339),
        "holder_id": c.holder_id,
        "card_id": c.card_id,
        "device_id": c.device_id,
        "not_before": rfc3339(c.not_before),
        "not_after": rfc3339(c.not_after),
        "shard": c.shard,
        "parent": c.parent.as_ref().map(Serial::to_hex),
        "pair": c.pair.as_ref().map(Serial::to_hex),
        "replaces": c.replaces.as_ref().map(Serial::to_hex),
        "certificate": B64.encode(&c.der),
    })
}

/// RFC 3339 with seconds, UTC.
pub fn rfc3339(t: shomei_core::Timestamp) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn certificate(
    State(s): State<Shared>,
    _op: Operator,
    Path(serial): Path<String>,
) -> Result<Response, ServerError> {
    let serial = parse_serial(&serial)?;
    let c = s
        .registry
        .certificate(&serial)
        .await?
        .ok_or(ServerError::NotFound("certificate"))?;
    Ok(Json(cert_json(&c, s.clock.now())).into_response())
}

/// Single-use challenges for holder proofs, each valid for [`CHALLENGE_TTL`].
#[derive(Default)]
pub struct Challenges {
    map: std::sync::Mutex<std::collections::HashMap<Vec<u8>, shomei_core::Timestamp>>,
}

/// How long a challenge stays usable.
pub const CHALLENGE_TTL: time::Duration = time::Duration::minutes(5);
const MAX_CHALLENGES: usize = 100_000;

impl Challenges {
    fn issue(
        &self,
        now: shomei_core::Timestamp,
    ) -> Result<(Vec<u8>, shomei_core::Timestamp), ServerError> {
        let mut c = vec![0u8; 32];
        shomei_core::RandomSource::fill(&mut SystemRandom::new(), &mut c)
            .map_err(|_| ServerError::Internal("randomness failed".into()))?;
        let until = now + CHALLENGE_TTL;
        let mut map = self
            .map
            .lock()
            .map_err(|_| ServerError::Internal("challenge store poisoned".into()))?;
        map.retain(|_, exp| *exp > now);
        if map.len() >= MAX_CHALLENGES {
            return Err(ServerError::Forbidden(
                "too_many_challenges",
                "too many outstanding challenges; try again shortly".into(),
            ));
        }
        map.insert(c.clone(), until);
        Ok((c, until))
    }

    /// Takes a challenge out (single use): true if it was outstanding and fresh.
    pub(crate) fn consume(&self, challenge: &[u8], now: shomei_core::Timestamp) -> bool {
        self.map
            .lock()
            .ok()
            .and_then(|mut m| m.remove(challenge))
            .is_some_and(|exp| exp > now)
    }
}

async fn new_challenge(State(s): State<Shared>) -> Result<Response, ServerError> {
    let (c, until) = s.challenges.issue(s.clock.now())?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"challenge": B64.encode(c), "expires_at": rfc3339(until)})),
    )
        .into_response())
}

/// A holder's proof, made by the card: its certificate, an authority
/// challenge, and the card's signature over [`shomei_ca::holder_proof_message`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProofBody {
    certificate: String,
    challenge: String,
    signature: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LifecycleBody {
    reason: Option<String>,
    proof: Option<ProofBody>,
}

/// Who asked: the operator (bearer token), or the holder (proof by the card).
async fn authorise(
    s: &AppState,
    headers: &HeaderMap,
    proof: Option<&ProofBody>,
    action: &str,
    target: &CertRecord,
) -> Result<Actor, ServerError> {
    let serial = target.serial.clone();
    authorise_for_holder(s, headers, proof, &target.holder_id, |challenge| {
        shomei_ca::holder_proof_message(action, &serial, challenge)
    })
    .await
}

/// Who asked for a change to something of `holder_id`: the operator (bearer
/// token), or the holder with a proof made by a live card certificate of
/// theirs over `message(challenge)`. The challenge is spent whatever the outcome.
pub(crate) async fn authorise_for_holder(
    s: &AppState,
    headers: &HeaderMap,
    proof: Option<&ProofBody>,
    holder_id: &str,
    message: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Result<Actor, ServerError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return if is_operator(s, headers) {
            Ok(Actor::Operator("operator".into()))
        } else {
            Err(ServerError::Unauthorized)
        };
    }
    let Some(p) = proof else {
        return Err(ServerError::Unauthorized);
    };
    let cert = b64_field("proof.certificate", &p.certificate)?;
    let challenge = b64_field("proof.challenge", &p.challenge)?;
    let signature = b64_field("proof.signature", &p.signature)?;
    let now = s.clock.now();
    // The challenge is spent whatever the outcome, so a proof can be neither retried nor replayed.
    if !s.challenges.consume(&challenge, now) {
        return Err(ServerError::Forbidden(
            "unknown_challenge",
            "the challenge is unknown, used or expired: ask POST /v1/challenges for a new one"
                .into(),
        ));
    }
    let message = message(&challenge);
    let proof = s
        .authority
        .check_holder_proof(&cert, &message, &signature)?;
    let prover = s
        .registry
        .certificate(&proof.prover)
        .await?
        .ok_or(ServerError::Forbidden(
            "bad_holder_proof",
            "the proving certificate is not in the registry".into(),
        ))?;
    if prover.holder_id != holder_id {
        return Err(ServerError::Forbidden(
            "not_your_certificate",
            "the proving card belongs to another holder".into(),
        ));
    }
    if prover.class.is_phone() {
        return Err(ServerError::Forbidden(
            "proof_needs_card",
            "this change needs a proof made by the card, not a phone".into(),
        ));
    }
    if prover.credential().status_at(now).is_final() {
        return Err(ServerError::Forbidden(
            "prover_not_valid",
            "the proving card certificate is revoked or expired".into(),
        ));
    }
    Ok(Actor::Holder(holder_id.to_owned()))
}

pub(crate) fn parse_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ServerError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ServerError::BadInput(format!(
            "invalid JSON body: {}",
            json_error_without_input(&e)
        ))
    })
}

async fn lifecycle(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path((serial, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ServerError> {
    let body: LifecycleBody = parse_body(&body)?;
    // Refuse the unauthenticated before looking anything up.
    if !headers.contains_key(header::AUTHORIZATION) && body.proof.is_none() {
        return Err(ServerError::Unauthorized);
    }
    let serial = parse_serial(&serial)?;
    let (action, verb) = match action.as_str() {
        "suspend" => (Action::Suspend, "suspend"),
        "resume" => (Action::Resume, "resume"),
        "revoke" => {
            let reason = match body.reason.as_deref() {
                None => RevocationReason::Unspecified,
                Some(r) => r.parse::<RevocationReason>()?,
            };
            (Action::Revoke(reason), "revoke")
        }
        _ => {
            return Err(ServerError::NotFound(
                "lifecycle action (suspend, resume, revoke)",
            ));
        }
    };
    let target = s
        .registry
        .certificate(&serial)
        .await?
        .ok_or(ServerError::NotFound("certificate"))?;
    let actor = authorise(&s, &headers, body.proof.as_ref(), verb, &target).await?;
    let all: Vec<_> = s.registry.holder_certificates(&target.holder_id).await?;
    let now = s.clock.now();
    let creds: Vec<_> = all.iter().map(CertRecord::credential).collect();
    let plan = Plan::for_action(&creds, &serial, action, now)?;
    commit_plan(
        &s,
        &plan,
        &target.holder_id,
        actor,
        action_name(action),
        now,
    )
    .await?;
    let after = s
        .registry
        .certificate(&serial)
        .await?
        .ok_or(ServerError::NotFound("certificate"))?;
    Ok(Json(json!({
        "serial": serial.to_hex(),
        "status": after.status.as_str(),
        "reason": after.reason.map(|r| r.as_str()),
        "changed": plan.changes.iter().map(|c| json!({
            "serial": c.serial.to_hex(), "from": c.from.as_str(), "to": c.to.as_str(), "reason": c.reason.map(|r| r.as_str())
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RenewBody {
    csr: String,
}

/// Renewal: a new certificate of the same class for a fresh key; the old one
/// and everything derived from it are revoked as `superseded`, and the new
/// one records which it replaces — all in one registry transaction.
async fn renew(
    State(s): State<Shared>,
    _op: Operator,
    Path(serial): Path<String>,
    ApiJson(body): ApiJson<RenewBody>,
) -> Result<Response, ServerError> {
    let serial = parse_serial(&serial)?;
    let csr = b64_field("csr", &body.csr)?;
    let old = s
        .registry
        .certificate(&serial)
        .await?
        .ok_or(ServerError::NotFound("certificate"))?;
    if old.class.is_phone() {
        return Err(ServerError::BadInput(
            "phone certificates are renewed by provisioning the phone again".into(),
        ));
    }
    let holder = s
        .registry
        .holder(&old.holder_id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let now = s.clock.now();
    let reissue = is_reissue_after_basic_four_change(&old, now);
    let plan = if reissue {
        // Already revoked (affiliationChanged) with what derived from it:
        // nothing to revoke, only a successor to link, once.
        if s.registry.successor(&serial).await?.is_some() {
            return Err(already_replaced());
        }
        Plan::default()
    } else {
        let all = s.registry.holder_certificates(&old.holder_id).await?;
        let creds: Vec<_> = all.iter().map(CertRecord::credential).collect();
        Plan::for_renewal(&creds, &serial, now)?
    };
    let state = s.clone();
    let class = old.class;
    let basic_four = holder.basic_four.clone();
    let issued = tokio::task::spawn_blocking(move || {
        state
            .authority
            .renew(class, &csr, &basic_four, now, &mut SystemRandom::new())
    })
    .await
    .map_err(|e| ServerError::Internal(e.to_string()))??;
    let record = CertRecord {
        serial: issued.serial.clone(),
        class,
        holder_id: old.holder_id.clone(),
        card_id: old.card_id.clone(),
        device_id: None,
        status: shomei_core::CertStatus::Active,
        reason: None,
        status_changed_at: None,
        not_before: issued.not_before,
        not_after: issued.not_after,
        shard: issued.shard,
        parent: None,
        pair: old.pair.clone(),
        replaces: Some(serial.clone()),
        der: issued.der.clone(),
        issued_at: now,
    };
    let mut events = vec![Event {
        at: now,
        actor: Actor::Operator("operator".into()),
        action: "renewed".into(),
        holder_id: Some(old.holder_id.clone()),
        serial: Some(issued.serial.clone()),
        detail: if reissue {
            json!({"replaces": serial.to_hex(), "class": class.as_str(), "after": "basic_four_changed"})
        } else {
            json!({"replaces": serial.to_hex(), "class": class.as_str()})
        },
    }];
    events.extend(plan.changes.iter().map(|c| Event {
        at: now,
        actor: Actor::Operator("operator".into()),
        action: "revoked".into(),
        holder_id: Some(old.holder_id.clone()),
        serial: Some(c.serial.clone()),
        detail: json!({"reason": "superseded", "replaced_by": issued.serial.to_hex()}),
    }));
    s.registry
        .replace(&plan, std::slice::from_ref(&record), now, &events)
        .await
        .map_err(|e| match e {
            // Someone renewed or re-issued it concurrently (one successor per certificate).
            shomei_registry::RegistryError::Duplicate { what } if what.contains("replaces") => {
                already_replaced()
            }
            e => e.into(),
        })?;
    s.status.insert_active(issued.serial.clone(), class);
    publish_changes(&s, &plan, now).await;
    s.notifier.committed(&events);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "serial": issued.serial.to_hex(),
            "certificate": B64.encode(&issued.der),
            "replaces": serial.to_hex(),
            "revoked": plan.changes.iter().map(|c| c.serial.to_hex()).collect::<Vec<_>>(),
        })),
    )
        .into_response())
}

/// A signing certificate revoked because the basic four changed (and not
/// yet past its validity) may be renewed once more: the new certificate,
/// issued for the new basic four, records it as the one it replaces (the
/// old-to-new linkage relying parties follow).
fn is_reissue_after_basic_four_change(old: &CertRecord, now: shomei_core::Timestamp) -> bool {
    old.class == CertClass::CardSign
        && old.status == shomei_core::CertStatus::Revoked
        && old.reason == Some(RevocationReason::AffiliationChanged)
        && old.not_after >= now
}

fn already_replaced() -> ServerError {
    ServerError::Conflict(
        "already_replaced",
        "this certificate was already renewed or re-issued".into(),
    )
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Suspend => "suspended",
        Action::Resume => "resumed",
        Action::Revoke(_) => "revoked",
        Action::Expire => "expired",
    }
}

/// Commits a plan, then publishes it: status cache, OCSP cache, CRL shards.
async fn commit_plan(
    s: &AppState,
    plan: &Plan,
    holder_id: &str,
    actor: Actor,
    action: &str,
    now: shomei_core::Timestamp,
) -> Result<(), ServerError> {
    if plan.changes.is_empty() {
        return Ok(());
    }
    let events: Vec<Event> = plan
        .changes
        .iter()
        .map(|c| Event {
            at: now,
            actor: actor.clone(),
            action: action.to_owned(),
            holder_id: Some(holder_id.to_owned()),
            serial: Some(c.serial.clone()),
            detail: json!({"from": c.from.as_str(), "to": c.to.as_str(), "reason": c.reason.map(|r| r.as_str())}),
        })
        .collect();
    s.registry.apply(plan, now, &events).await?;
    publish_changes(s, plan, now).await;
    s.notifier.committed(&events);
    Ok(())
}

/// After a commit: the status cache, the OCSP cache and the CRL shards
/// touched by `plan`.
pub(crate) async fn publish_changes(s: &AppState, plan: &Plan, now: shomei_core::Timestamp) {
    s.status.apply(&plan.changes, now);
    s.ocsp.invalidate();
    let shards = s.authority.config().crl_shards;
    let touched: Vec<_> = plan
        .changes
        .iter()
        .filter_map(|c| {
            s.status
                .class_of(&c.serial)
                .map(|class| (class, c.serial.shard(shards)))
        })
        .collect();
    s.crls.mark_dirty(touched);
}

async fn holder(
    State(s): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    let h = s
        .registry
        .holder(&id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let now = s.clock.now();
    let certs = s.registry.holder_certificates(&id).await?;
    let devices = s.registry.holder_devices(&id).await?;
    Ok(Json(json!({
        "id": h.id,
        "holder": h.basic_four,
        "created_at": rfc3339(h.created_at),
        "updated_at": rfc3339(h.updated_at),
        "certificates": certs.iter().map(|c| cert_json(c, now)).collect::<Vec<_>>(),
        "devices": devices.iter().map(crate::phone::device_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeHolderBody {
    holder: BasicFour,
}

/// A change of the basic four (move, marriage…): the holder record is
/// updated and every signing certificate is revoked (affiliationChanged) in
/// one transaction; authentication certificates stay.
async fn change_holder(
    State(s): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChangeHolderBody>,
) -> Result<Response, ServerError> {
    s.registry
        .holder(&id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let now = s.clock.now();
    let certs = s.registry.holder_certificates(&id).await?;
    let creds: Vec<_> = certs.iter().map(CertRecord::credential).collect();
    let plan = Plan::for_basic_four_change(&creds, now);
    let mut events = vec![Event {
        at: now,
        actor: Actor::Operator("operator".into()),
        action: "basic_four_changed".into(),
        holder_id: Some(id.clone()),
        serial: None,
        detail: json!({}),
    }];
    events.extend(plan.changes.iter().map(|c| Event {
        at: now,
        actor: Actor::Operator("operator".into()),
        action: "revoked".into(),
        holder_id: Some(id.clone()),
        serial: Some(c.serial.clone()),
        detail: json!({"reason": "affiliationChanged"}),
    }));
    s.registry
        .change_basic_four(&id, &body.holder, &plan, now, &events)
        .await?;
    publish_changes(&s, &plan, now).await;
    s.notifier.committed(&events);
    Ok(Json(json!({
        "id": id,
        "revoked": plan.changes.iter().map(|c| c.serial.to_hex()).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn holder_events(
    State(s): State<Shared>,
    _op: Operator,
    Path(id): Path<String>,
) -> Result<Response, ServerError> {
    s.registry
        .holder(&id)
        .await?
        .ok_or(ServerError::NotFound("holder"))?;
    let events = s.registry.events_for_holder(&id).await?;
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// An audit event as the API shows it (never personal data: events hold none).
pub(crate) fn event_json(e: &Event) -> serde_json::Value {
    json!({
        "at": rfc3339(e.at),
        "actor": match &e.actor { Actor::Operator(o) => format!("operator:{o}"), Actor::Holder(h) => format!("holder:{h}"), Actor::System => "system".to_owned(), Actor::RelyingParty(n) => format!("relying_party:{n}") },
        "action": e.action,
        "serial": e.serial.as_ref().map(Serial::to_hex),
        "detail": e.detail,
    })
}
