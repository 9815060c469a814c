//! HTTP routes: the OpenID Connect provider, the login page the phone
//! answers, and the signature verification endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Map, Value, json};
use shomei_verifier::{Medium, Purpose};

use crate::oidc::{AuthRequest, Authenticated, AuthorizeError};
use crate::online::{b64url, sha256};
use crate::{AppState, ServiceError};

/// Largest JSON body accepted (a 1 MiB document base64-encoded, plus its
/// signature).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/login/{id}", get(offer).post(answer))
        .route("/login/{id}/status", get(status))
        .route("/login/{id}/continue", get(continue_login))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .route("/v1/verify/signature", post(verify_signature))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn discovery(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(s.provider.discovery())
}

async fn jwks(State(s): State<Arc<AppState>>) -> Json<Value> {
    Json(s.provider.jwks())
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

async fn authorize(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let req = match crate::oidc::check_authorize(&s.provider.clients, &q) {
        Ok(r) => r,
        Err(e) => {
            return match e.location(&s.provider.issuer) {
                Some(loc) => Redirect::to(&loc).into_response(),
                None => {
                    let AuthorizeError::Fatal { error, description } = e else {
                        return StatusCode::BAD_REQUEST.into_response();
                    };
                    (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": error, "error_description": description})),
                    )
                        .into_response()
                }
            };
        }
    };
    let scopes = req.scopes.clone();
    let client = req.client_id.clone();
    let id = match s.provider.start_login(req, s.verifier.now()) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let login_url = format!("{}/login/{id}", s.provider.issuer);
    if wants_json(&headers) {
        return Json(json!({
            "login_url": login_url,
            "status_url": format!("{login_url}/status"),
            "continue_url": format!("{login_url}/continue"),
            "expires_in": crate::oidc::CHALLENGE_TTL.whole_seconds(),
            "scopes": scopes,
        }))
        .into_response();
    }
    Html(login_page(&client, &scopes, &login_url)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn login_page(client: &str, scopes: &[String], login_url: &str) -> String {
    let url = html_escape(login_url);
    let needs = if scopes.iter().any(|s| s != "openid") {
        " --password YOUR_SIGNING_PASSWORD"
    } else {
        ""
    };
    format!(
        r#"<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>マイナンバーでログイン — Shōmei</title></head>
<body><h1>Log in with your My Number phone or card</h1>
<p><b>{client}</b> asks for: {scopes}. The challenge is valid for 60 seconds.</p>
<p>On your phone: <code>shomei phone login --phone PHONE --pin NNNN{needs} --url {url}</code></p>
<p id="state">Waiting for your phone…</p>
<script>
const poll = async () => {{
  const r = await fetch("{url}/status"); const s = await r.json();
  document.getElementById("state").textContent = s.state;
  if (s.state === "pending") {{ setTimeout(poll, 1000); }}
  else {{ window.location = "{url}/continue"; }}
}};
poll();
</script></body></html>"#,
        client = html_escape(client),
        scopes = html_escape(&scopes.join(" ")),
    )
}

async fn offer(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<crate::oidc::LoginOffer>, ServiceError> {
    Ok(Json(s.provider.offer(&id, s.verifier.now())?))
}

/// A phone's (or card's) answer to a login challenge.
#[derive(serde::Deserialize)]
struct LoginAnswer {
    /// The authentication certificate (base64 DER).
    auth_certificate: String,
    /// RSA SHA-256 signature over the login message (base64):
    /// `shomei_verifier::login_message(Authentication, …)`.
    auth_signature: String,
    /// For basic-four scopes: the signing certificate (base64 DER)…
    sign_certificate: Option<String>,
    /// …and its signature over the consent login message (base64).
    sign_signature: Option<String>,
    /// How the holder unlocked the key: `pin` or `biometric` (informative).
    method: Option<String>,
}

struct DecodedAnswer {
    auth_cert: Vec<u8>,
    auth_sig: Vec<u8>,
    sign: Option<(Vec<u8>, Vec<u8>)>,
    method: Option<String>,
}

fn b64(field: &'static str, s: &str) -> Result<Vec<u8>, ServiceError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim()))
        .map_err(|_| ServiceError::bad("bad_base64", format!("{field} is not base64")))
}

fn decode_answer(a: LoginAnswer) -> Result<DecodedAnswer, ServiceError> {
    let sign = match (a.sign_certificate, a.sign_signature) {
        (Some(c), Some(s)) => Some((b64("sign_certificate", &c)?, b64("sign_signature", &s)?)),
        (None, None) => None,
        _ => {
            return Err(ServiceError::bad(
                "bad_request",
                "sign_certificate and sign_signature go together",
            ));
        }
    };
    Ok(DecodedAnswer {
        auth_cert: b64("auth_certificate", &a.auth_certificate)?,
        auth_sig: b64("auth_signature", &a.auth_signature)?,
        sign,
        method: a.method,
    })
}

async fn answer(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Json<LoginAnswer>, JsonRejection>,
) -> Result<Json<Value>, ServiceError> {
    // A malformed body is refused before the challenge is read.
    let Json(body) = body.map_err(|e| ServiceError::bad("bad_request", e.body_text()))?;
    let ans = decode_answer(body)?;
    let answered_at = s.verifier.now();
    // Nothing is taken yet: only a verified answer uses the login.
    let (req, challenge) = s.provider.pending_answer(&id, answered_at)?;
    match verify_answer(&s, &req, &challenge, &ans).await {
        Ok(a) => {
            let medium = a.claims.get("shomei_medium").cloned();
            s.provider.complete_answer(&id, Ok(a), answered_at)?;
            tracing::info!(client = %req.client_id, "login answered");
            Ok(Json(json!({"state": "done", "medium": medium})))
        }
        Err(AnswerError::Refused(e)) => {
            // The holder's own keys answered, and the answer is refused
            // (e.g. a revoked certificate): that ends the login (unless
            // another verified answer ended it first).
            s.provider
                .complete_answer(&id, Err(e.code()), answered_at)?;
            Err(e)
        }
        // Not verified (garbage, another key, a chain that does not hold)
        // or not checkable now (the authority unreachable): the login stays
        // pending for the holder's answer.
        Err(AnswerError::Rejected(e)) => Err(e),
    }
}

/// Why an answer did not log in.
enum AnswerError {
    /// Not shown to come from the holder's keys (or not checkable now):
    /// the login stays open.
    Rejected(ServiceError),
    /// The holder's keys signed, and the login is refused: it ends.
    Refused(ServiceError),
}

impl<E: Into<ServiceError>> From<E> for AnswerError {
    fn from(e: E) -> Self {
        Self::Rejected(e.into())
    }
}

/// Refused, for a status (revoked, suspended, unknown) or identity check
/// after the signatures verified; an authority that cannot be reached
/// leaves the login open.
fn refused(e: impl Into<ServiceError>) -> AnswerError {
    match e.into() {
        // Not the holder's doing: the login stays open for another answer.
        e @ (ServiceError::Upstream(_)
        | ServiceError::Verify(shomei_verifier::VerifyError::Misuse(_))) => {
            AnswerError::Rejected(e)
        }
        e => AnswerError::Refused(e),
    }
}

async fn verify_answer(
    s: &AppState,
    req: &AuthRequest,
    challenge: &[u8],
    ans: &DecodedAnswer,
) -> Result<Authenticated, AnswerError> {
    let v = &s.verifier;
    // What the holder signed: the domain-separated login message, bound to
    // this provider, the client and the challenge (shomei_verifier::login).
    let ctx = shomei_verifier::LoginContext {
        issuer: &s.provider.issuer,
        client_id: &req.client_id,
        challenge,
    };
    if req.wants_basic_four() && ans.sign.is_none() {
        return Err(AnswerError::Rejected(ServiceError::bad(
            "consent_required",
            "the requested claims need the signing key too (give the signing password)",
        )));
    }

    // 1. Chains and signatures, no IO: whatever fails here was not shown
    //    to be the holder's answer.
    let auth = v.validate_cached(&ans.auth_cert, Purpose::Authentication)?;
    let auth = shomei_verifier::check_login_signature(
        auth,
        shomei_verifier::LoginPurpose::Authentication,
        &ctx,
        &ans.auth_sig,
    )?;
    let sign = match (&ans.sign, req.wants_basic_four()) {
        (Some((cert, sig)), true) => {
            let sign = v.validate_cached(cert, Purpose::Signing)?;
            Some(shomei_verifier::check_login_signature(
                sign,
                shomei_verifier::LoginPurpose::Consent,
                &ctx,
                sig,
            )?)
        }
        _ => None,
    };

    // 2. Statuses (OCSP or CRL) and the holder: a certificate that is not
    //    good, or keys of different media or holders, end the login.
    // A status that cannot be established (responder unreachable, a bad
    // OCSP answer) is not the holder's doing: rejected, the login stays.
    let checked = v.status(auth.cert().clone()).await?;
    let login = shomei_verifier::finish_login(auth, checked).map_err(refused)?;
    let auth = login.cert().cert();
    let medium = auth.medium();
    let consent = match sign {
        Some(signed) => {
            let checked = v.status(signed.cert().clone()).await?;
            let c = shomei_verifier::finish_consent(signed, checked).map_err(refused)?;
            if c.cert().cert().medium() != medium {
                return Err(refused(ServiceError::bad(
                    "different_media",
                    "the signing and authentication keys must be on the same card or phone",
                )));
            }
            Some(c)
        }
        None => None,
    };

    // The holder: the authority's per-relying-party pseudonym, the same
    // for card and phone and across renewals (linkage); without a linkage
    // token, the certificate itself (then not stable across renewals).
    let holder = match v.linkage(&auth.serial().to_hex()).await.map_err(refused)? {
        Some(l) => {
            if let Some(c) = &consent {
                let other = v
                    .linkage(&c.cert().cert().serial().to_hex())
                    .await
                    .map_err(refused)?;
                if other.map(|o| o.holder) != Some(l.holder.clone()) {
                    return Err(refused(ServiceError::bad(
                        "holder_mismatch",
                        "the signing and authentication certificates belong to different holders",
                    )));
                }
            }
            l.holder
        }
        None => format!("certificate:{}", auth.serial().to_hex()),
    };
    let sub = b64url(&sha256(
        format!("shomei-oidc-sub\0{}\0{holder}", req.client_id).as_bytes(),
    ));

    let mut claims = Map::new();
    claims.insert("shomei_medium".into(), json!(medium.as_str()));
    if let Some(b) = consent.as_ref().and_then(|c| c.cert().cert().basic_four()) {
        for scope in &req.scopes {
            match scope.as_str() {
                "name" => {
                    claims.insert("name".into(), json!(b.name()));
                }
                "address" => {
                    claims.insert("address".into(), json!({"formatted": b.address()}));
                }
                "birthdate" => {
                    claims.insert("birthdate".into(), json!(b.birth_date().to_iso()));
                }
                "gender" => {
                    let g = match b.sex().code() {
                        1 => "male",
                        2 => "female",
                        _ => "unknown",
                    };
                    claims.insert("gender".into(), json!(g));
                }
                _ => {}
            }
        }
    }
    let mut amr = vec!["hwk"];
    match ans.method.as_deref() {
        Some("pin") => amr.push("pin"),
        Some("biometric") => amr.push("user"),
        _ => {}
    }
    if medium == Medium::Phone {
        amr.push("mfa");
    }
    Ok(Authenticated {
        sub,
        claims,
        auth_time: v.now(),
        amr,
    })
}

async fn status(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServiceError> {
    let (state, code) = s.provider.status(&id, s.verifier.now())?;
    Ok(Json(json!({"state": state, "code": code})))
}

async fn continue_login(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Redirect, ServiceError> {
    let loc = s.provider.continue_login(&id, s.verifier.now())?;
    Ok(Redirect::to(&loc))
}

/// Whether the request carries HTTP Basic credentials, well-formed or not
/// (the scheme name is case-insensitive, RFC 9110 §11.1).
fn tried_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().get(..6))
        .is_some_and(|s| s.eq_ignore_ascii_case(b"basic "))
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    if !tried_basic(headers) {
        return None;
    }
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let enc = v.get(6..)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(enc.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
    Some((form_decode(id), form_decode(secret)))
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn token(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let no_store = [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    let basic = if tried_basic(&headers) {
        // Basic tried but undecodable: a client authentication failure,
        // never a fall back to the form's client_id.
        match basic_auth(&headers) {
            Some(b) => Some(b),
            None => return invalid_client(no_store, "malformed HTTP Basic credentials"),
        }
    } else {
        None
    };
    match s.provider.token(&form, basic, s.verifier.now()) {
        Ok(t) => (no_store, Json(t)).into_response(),
        Err(e) if e.error == "invalid_client" => invalid_client(no_store, e.description),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            no_store,
            Json(json!({"error": e.error, "error_description": e.description})),
        )
            .into_response(),
    }
}

/// RFC 6749 §5.2: a client authentication failure is 401; a 401 names the
/// scheme to use (RFC 9110 §15.5.2), and must be Basic's when the client
/// tried Basic — the one scheme this endpoint takes in a header.
fn invalid_client(
    no_store: [(header::HeaderName, &'static str); 2],
    description: &str,
) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        no_store,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"shomei\"")],
        Json(json!({"error": "invalid_client", "error_description": description})),
    )
        .into_response()
}

async fn userinfo(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| s.provider.userinfo(t, s.verifier.now())) {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer error=\"invalid_token\"".to_owned(),
            )],
        )
            .into_response(),
    }
}

/// Body of `POST /v1/verify/signature`.
#[derive(serde::Deserialize)]
struct VerifyBody {
    /// The signed document (base64).
    content: String,
    /// The detached CMS SignedData (base64 DER).
    signature: String,
}

/// `POST /v1/verify/signature`: 200 with the contract's report when the
/// input is a signature (`valid` says whether it verifies, `error.code`
/// why not: `content_mismatch`, `bad_signature`, `wrong_purpose`,
/// `unknown_root`, `expired`, `revoked`, `suspended`…; `status` is
/// `good`, `revoked`, `suspended` or `unknown`, `status_source` `ocsp`,
/// `crl` or `none`, and for `unknown`, `status_detail` says why:
/// `not_checked` for a real JPKI root verified offline); 400
/// `application/problem+json` when it is not one at all (`bad_request`,
/// `bad_base64`, `malformed`, `unsupported`).
async fn verify_signature(
    State(s): State<Arc<AppState>>,
    body: Result<Json<VerifyBody>, JsonRejection>,
) -> Result<Json<crate::online::SignatureReport>, ServiceError> {
    let Json(body) = body.map_err(|e| ServiceError::bad("bad_request", e.body_text()))?;
    let content = b64("content", &body.content)?;
    let p7s = b64("signature", &body.signature)?;
    let report = s.verifier.verify_signature(&p7s, &content).await;
    if let Some(e) = report.bad_input() {
        return Err(ServiceError::bad(e.code, e.message.clone()));
    }
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use shomei_core::{BasicFour, BirthDate, CertClass, Root, Serial, Sex, Timestamp};
    use shomei_pki::crl::build_crl;
    use shomei_pki::profile::{
        EndEntityRequest, PublicationPoints, RootCa, card_not_after, issue_end_entity,
    };
    use shomei_pki::{EcdsaP256Signer, RsaSigner};
    use shomei_verifier::{RootSource, TrustStore, VerifiedCrl};
    use time::macros::datetime;

    use super::*;
    use crate::StatusMode;
    use crate::online::OnlineVerifier;

    const NOW: Timestamp = datetime!(2026-11-21 04:00:00 UTC);
    const BASE: &str = "http://127.0.0.1:9";

    fn holder() -> BasicFour {
        BasicFour::new(
            "山田 花子",
            "東京都千代田区霞が関1-1",
            BirthDate::from_jpki_encoding("419900401").unwrap(),
            Sex::Female,
        )
        .unwrap()
    }

    /// A signing root and a detached signature by a card signing
    /// certificate under it.
    fn signed(root: &RootCa, doc: &[u8]) -> Vec<u8> {
        let key = RsaSigner::generate().unwrap();
        let csr =
            shomei_pki::csr::check_csr(&shomei_pki::csr::build_csr(&key, "x").unwrap()).unwrap();
        let h = holder();
        let cert = issue_end_entity(
            root,
            &PublicationPoints::new(BASE),
            &EndEntityRequest {
                class: CertClass::CardSign,
                csr: &csr,
                holder: &h,
                serial: &Serial::from_be_bytes(&[0x40, 1]).unwrap(),
                now: NOW,
                not_after: card_not_after(&h, NOW),
                shard: 1,
            },
        )
        .unwrap();
        shomei_pki::cms::sign_detached(doc, &cert, &[], &key, NOW).unwrap()
    }

    fn root(name: &str) -> RootCa {
        let key = Arc::new(RsaSigner::generate().unwrap());
        RootCa::create(
            Root::Sign,
            name,
            key,
            &Serial::from_be_bytes(&[1]).unwrap(),
            NOW,
        )
        .unwrap()
    }

    /// The service on a loopback port, its clock at `at` (settable), the
    /// CRL shard warm so a good signer needs no authority.
    async fn serve(root: &RootCa, at: Arc<Mutex<Timestamp>>) -> String {
        let base = serve_with(root, at, vec![]).await;
        format!("{base}/v1/verify/signature")
    }

    async fn serve_with(
        root: &RootCa,
        at: Arc<Mutex<Timestamp>>,
        clients: Vec<crate::oidc::Client>,
    ) -> String {
        serve_as(root, RootSource::Shomei, at, clients).await
    }

    /// As [`serve_with`], the root trusted as run by `source`.
    async fn serve_as(
        root: &RootCa,
        source: RootSource,
        at: Arc<Mutex<Timestamp>>,
        clients: Vec<crate::oidc::Client>,
    ) -> String {
        let mut store = TrustStore::new();
        store
            .add(Purpose::Signing, root.cert_der(), source)
            .unwrap();
        let clock: crate::Clock = Arc::new(move || *at.lock().unwrap());
        let verifier = OnlineVerifier::with_store(BASE, store, StatusMode::Crl, clock).unwrap();
        let crl = build_crl(
            root,
            &PublicationPoints::new(BASE),
            CertClass::CardSign,
            1,
            1,
            NOW,
            NOW + time::Duration::hours(24),
            &[],
        )
        .unwrap();
        verifier
            .insert_crl(VerifiedCrl::parse(&crl, root.cert_der()).unwrap())
            .unwrap();
        let jwt =
            crate::jwt::JwtSigner::new(Arc::new(EcdsaP256Signer::generate().unwrap())).unwrap();
        let provider = crate::oidc::Provider::new("http://op", clients, jwt);
        let app = router(Arc::new(AppState { verifier, provider }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn post(url: &str, body: Value) -> (u16, String, Value) {
        let resp = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, resp.json().await.unwrap())
    }

    fn b64e(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[tokio::test]
    async fn verify_signature_endpoint_answers_400_for_non_signatures_and_names_failures() {
        let doc = b"application";
        let ours = root("Test Authority");
        let p7s = signed(&ours, doc);
        let at = Arc::new(Mutex::new(NOW));
        let url = serve(&ours, at.clone()).await;

        // Good: 200 valid, from the (warm) CRL shard, no detail.
        let (s, _, r) = post(&url, json!({"content": b64e(doc), "signature": b64e(&p7s)})).await;
        assert_eq!(
            (s, &r["valid"], &r["status"], &r["status_source"]),
            (200, &json!(true), &json!("good"), &json!("crl")),
            "{r}"
        );
        assert!(r.get("status_detail").is_none(), "{r}");

        // Not CMS: 400 problem+json, code malformed (no report).
        for garbage in [
            &b"\x30\x03\x02\x01\x00 not CMS"[..],
            b"",
            &p7s[..p7s.len() / 2],
        ] {
            let (s, ct, r) = post(
                &url,
                json!({"content": b64e(doc), "signature": b64e(garbage)}),
            )
            .await;
            assert_eq!(s, 400, "{r}");
            assert_eq!(ct, "application/problem+json");
            assert_eq!(r["code"], "malformed", "{r}");
            assert_eq!(r["status"], 400);
            assert!(r.get("valid").is_none(), "{r}");
        }
        // Not base64, not the JSON shape: 400 with their own codes.
        let (s, ct, r) = post(&url, json!({"content": "!!!", "signature": b64e(&p7s)})).await;
        assert_eq!(
            (s, ct.as_str(), &r["code"]),
            (400, "application/problem+json", &json!("bad_base64"))
        );
        let (s, _, r) = post(&url, json!({"content": b64e(doc)})).await;
        assert_eq!((s, &r["code"]), (400, &json!("bad_request")), "{r}");

        // Well-formed but signed under another root: 200, unknown_root.
        let theirs = signed(&root("Another Authority"), doc);
        let (s, _, r) = post(
            &url,
            json!({"content": b64e(doc), "signature": b64e(&theirs)}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            (&r["valid"], &r["error"]["code"]),
            (&json!(false), &json!("unknown_root"))
        );
        // Other content: 200, content_mismatch.
        let (s, _, r) = post(
            &url,
            json!({"content": b64e(b"other"), "signature": b64e(&p7s)}),
        )
        .await;
        assert_eq!(
            (s, &r["error"]["code"]),
            (200, &json!("content_mismatch")),
            "{r}"
        );

        // The clock past the certificate's notAfter: 200, expired.
        *at.lock().unwrap() = card_not_after(&holder(), NOW) + time::Duration::days(1);
        let (s, _, r) = post(&url, json!({"content": b64e(doc), "signature": b64e(&p7s)})).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            (&r["valid"], &r["error"]["code"]),
            (&json!(false), &json!("expired")),
            "{r}"
        );
    }

    #[tokio::test]
    async fn jpki_rooted_signature_reports_unknown_status_not_checked() {
        // A card signing certificate under a root trusted as a real JPKI
        // root: verified offline, so the contract's status is `unknown`,
        // with why (`not_checked`) and no source consulted; still valid.
        let doc = b"application";
        let jlis = root("JPKI-shaped Root");
        let p7s = signed(&jlis, doc);
        let base = serve_as(&jlis, RootSource::Jpki, Arc::new(Mutex::new(NOW)), vec![]).await;
        let url = format!("{base}/v1/verify/signature");
        let (s, _, r) = post(&url, json!({"content": b64e(doc), "signature": b64e(&p7s)})).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            (
                &r["valid"],
                &r["status"],
                &r["status_detail"],
                &r["status_source"],
                &r["source"],
                &r["kind"],
            ),
            (
                &json!(true),
                &json!("unknown"),
                &json!("not_checked"),
                &json!("none"),
                &json!("jpki"),
                &json!("card"),
            ),
            "{r}"
        );
        assert!(r.get("error").is_none(), "{r}");
        // Never the old out-of-contract value.
        assert!(!r.to_string().contains("\"status\":\"not_checked\""), "{r}");

        // A signature under an unknown root: unknown, not checked either.
        let theirs = signed(&root("Another Authority"), doc);
        let (s, _, r) = post(
            &url,
            json!({"content": b64e(doc), "signature": b64e(&theirs)}),
        )
        .await;
        assert_eq!(
            (s, &r["status"], &r["status_detail"], &r["status_source"]),
            (
                200,
                &json!("unknown"),
                &json!("not_checked"),
                &json!("none")
            ),
            "{r}"
        );
        assert_eq!(r["error"]["code"], "unknown_root", "{r}");
    }

    #[tokio::test]
    async fn token_endpoint_refuses_client_authentication_with_401_basic() {
        let clients = vec![
            crate::oidc::Client::parse("office:s3cret=https://office.example/cb").unwrap(),
            crate::oidc::Client::parse("demo=http://127.0.0.1/cb").unwrap(),
        ];
        let base = serve_with(&root("Test Authority"), Arc::new(Mutex::new(NOW)), clients).await;
        let http = reqwest::Client::new();
        let form = |client: &str, secret: Option<&str>| {
            let mut f = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("client_id", client.to_owned()),
                ("code", "no-such-code".to_owned()),
                ("redirect_uri", "https://office.example/cb".to_owned()),
                ("code_verifier", "v".repeat(43)),
            ];
            if let Some(s) = secret {
                f.push(("client_secret", s.to_owned()));
            }
            f
        };
        let send = |auth: Option<String>, f: Vec<(&'static str, String)>| {
            let mut r = http.post(format!("{base}/token")).form(&f);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            async move {
                let resp = r.send().await.unwrap();
                let status = resp.status().as_u16();
                let www = resp
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.to_str().unwrap().to_owned());
                let store = resp.headers()[header::CACHE_CONTROL]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let body: Value = resp.json().await.unwrap();
                (
                    status,
                    www,
                    store,
                    body["error"].as_str().unwrap_or("").to_owned(),
                )
            }
        };
        let basic = |creds: &str| Some(format!("Basic {}", b64e(creds.as_bytes())));
        for (auth, f, why) in [
            (
                basic("office:wrong"),
                form("office", None),
                "wrong secret by Basic",
            ),
            (
                Some("basic !!!".to_owned()),
                form("office", Some("s3cret")),
                "undecodable Basic",
            ),
            (
                basic("nobody:x"),
                form("office", None),
                "unknown client by Basic",
            ),
            (
                None,
                form("office", Some("wrong")),
                "wrong secret in the form",
            ),
            (None, form("office", None), "no secret"),
        ] {
            let (status, www, store, error) = send(auth, f).await;
            assert_eq!(status, 401, "{why}");
            assert_eq!(error, "invalid_client", "{why}");
            let www = www.unwrap_or_default();
            assert!(www.starts_with("Basic "), "{why}: {www:?}");
            assert_eq!(store, "no-store", "{why}");
        }
        // Authenticated (Basic, right secret; or a public client): the code
        // is the problem, 400 invalid_grant, no challenge.
        let (status, www, _, error) = send(basic("office:s3cret"), form("office", None)).await;
        assert_eq!((status, www, error.as_str()), (400, None, "invalid_grant"));
        let (status, www, _, error) = send(None, form("demo", None)).await;
        assert_eq!((status, www, error.as_str()), (400, None, "invalid_grant"));
    }
}
