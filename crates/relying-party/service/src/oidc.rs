//! The OpenID Connect provider's protocol state, in the style of the
//! Digital Agency's authentication app: authorization code flow only, PKCE
//! S256 required, `state` and `nonce` required, scopes `openid name address
//! birthdate gender`, ES256 ID tokens, pairwise subjects.
//!
//! A login is a single-use challenge (60 s) that a phone or card answers
//! with its authentication key (and, for basic-four scopes, also with its
//! signing key, which needs the signing password). Codes are single-use
//! (60 s); a replayed code also revokes the access token issued for it
//! (RFC 6749 §4.1.2).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use shomei_core::Timestamp;
use time::Duration;

use crate::ServiceError;
use crate::jwt::JwtSigner;
use crate::online::{b64url, lock, random, sha256};

/// How long a login challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::seconds(60);
/// How long an authorization code may be redeemed.
pub const CODE_TTL: Duration = Duration::seconds(60);
/// How long an answered login waits for the browser to continue.
pub const DONE_TTL: Duration = Duration::minutes(5);
/// Access and ID token lifetime.
pub const TOKEN_TTL: Duration = Duration::minutes(5);
/// The scopes this provider knows.
pub const SCOPES: [&str; 5] = ["openid", "name", "address", "birthdate", "gender"];
/// Most logins, codes and access tokens kept, each (when a map is full,
/// what is over is swept before an insert; if it is still full, the insert
/// is refused).
const MAX_ENTRIES: usize = 100_000;

/// Makes room for one more entry in `map`: when it holds `max`, drops the
/// entries `dead` says are over; refuses if it is still full.
fn make_room<V>(
    map: &mut HashMap<String, V>,
    max: usize,
    dead: impl Fn(&V) -> bool,
    full: &'static str,
) -> Result<(), ServiceError> {
    if map.len() >= max {
        map.retain(|_, v| !dead(v));
        if map.len() >= max {
            return Err(ServiceError::Conflict(full));
        }
    }
    Ok(())
}

/// A registered client (relying party).
#[derive(Clone, Debug)]
pub struct Client {
    /// client_id.
    pub id: String,
    /// SHA-256 of the client secret, for confidential clients.
    secret_sha256: Option<[u8; 32]>,
    /// Registered redirect URIs (exact match; loopback URIs match on any
    /// port, RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
}

impl Client {
    /// Parses `ID=URI[,URI…]` (public client, PKCE only) or
    /// `ID:SECRET=URI[,URI…]` (confidential).
    pub fn parse(spec: &str) -> Result<Self, ServiceError> {
        let bad = |d: &str| ServiceError::bad("bad_client", d.to_owned());
        // Split before the first redirect URI, so a secret may hold `=`
        // (padded base64).
        let at = ["=https://", "=http://"]
            .iter()
            .filter_map(|m| spec.find(m))
            .min()
            .ok_or_else(|| bad("a client is ID=REDIRECT_URI[,…] or ID:SECRET=REDIRECT_URI[,…]"))?;
        let (who, uris) = (&spec[..at], &spec[at + 1..]);
        let (id, secret) = match who.split_once(':') {
            Some((id, s)) if !s.is_empty() => (id, Some(s)),
            Some(_) => return Err(bad("empty client secret")),
            None => (who, None),
        };
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("client_id: 1–64 visible ASCII characters"));
        }
        let redirect_uris: Vec<String> = uris.split(',').map(str::to_owned).collect();
        for u in &redirect_uris {
            if !(u.starts_with("https://") || u.starts_with("http://")) || u.contains('#') {
                return Err(bad(
                    "redirect URIs are absolute http(s) URIs without a fragment",
                ));
            }
        }
        Ok(Self {
            id: id.to_owned(),
            secret_sha256: secret.map(|s| sha256(s.as_bytes())),
            redirect_uris,
        })
    }

    /// Whether the client authenticates with a secret.
    pub fn is_confidential(&self) -> bool {
        self.secret_sha256.is_some()
    }

    fn secret_matches(&self, secret: Option<&str>) -> bool {
        match (&self.secret_sha256, secret) {
            (None, _) => true,
            (Some(h), Some(s)) => constant_eq(h, &sha256(s.as_bytes())),
            (Some(_), None) => false,
        }
    }

    /// Whether `uri` is one of the registered redirect URIs.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        let loopback = loopback_without_port(uri);
        self.redirect_uris.iter().any(|r| {
            r == uri
                || (loopback.is_some() && loopback_without_port(r).as_ref() == loopback.as_ref())
        })
    }
}

/// `http://127.0.0.1:PORT/path` → `Some("http://127.0.0.1/path")`.
fn loopback_without_port(uri: &str) -> Option<String> {
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let Some(rest) = uri.strip_prefix(host) {
            let path = match rest.strip_prefix(':') {
                Some(p) => {
                    let digits = p.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 {
                        return None;
                    }
                    &p[digits..]
                }
                None => rest,
            };
            return Some(format!("{host}{path}"));
        }
    }
    None
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A checked authorization request.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    /// client_id.
    pub client_id: String,
    /// The redirect URI (registered).
    pub redirect_uri: String,
    /// Granted scopes (known ones, `openid` first).
    pub scopes: Vec<String>,
    /// state.
    pub state: String,
    /// nonce.
    pub nonce: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
}

impl AuthRequest {
    /// Whether any basic-four claim is asked for (then the signing key must
    /// answer too).
    pub fn wants_basic_four(&self) -> bool {
        self.scopes.iter().any(|s| s != "openid")
    }
}

/// Why an authorization request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Unknown client or unregistered redirect URI: never redirect
    /// (OpenID Connect Core §3.1.2.6); show the error.
    Fatal {
        /// OAuth error code.
        error: &'static str,
        /// Description.
        description: String,
    },
    /// Anything else: back to the client with `error` and `state`.
    Redirect {
        /// Where.
        redirect_uri: String,
        /// The client's state, if it sent one.
        state: Option<String>,
        /// OAuth error code.
        error: &'static str,
        /// Description.
        description: String,
    },
}

impl AuthorizeError {
    /// The redirect URL (for [`AuthorizeError::Redirect`]).
    pub fn location(&self, issuer: &str) -> Option<String> {
        match self {
            Self::Fatal { .. } => None,
            Self::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                let mut q = vec![
                    ("error", error.to_string()),
                    ("error_description", description.clone()),
                ];
                if let Some(s) = state {
                    q.push(("state", s.clone()));
                }
                q.push(("iss", issuer.to_owned()));
                Some(with_query(redirect_uri, &q))
            }
        }
    }
}

/// `uri` with `params` appended to its query.
pub fn with_query(uri: &str, params: &[(&str, String)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.push_str(k);
        out.push('=');
        out.push_str(&urlencode(v));
        sep = '&';
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// PKCE (RFC 7636): a verifier is 43–128 unreserved characters.
fn valid_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `verifier` answers the S256 `challenge`.
pub fn pkce_s256_matches(challenge: &str, verifier: &str) -> bool {
    valid_pkce_string(verifier)
        && constant_eq(
            b64url(&sha256(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

/// Checks an authorization request's query parameters.
pub fn check_authorize(
    clients: &[Client],
    q: &HashMap<String, String>,
) -> Result<AuthRequest, AuthorizeError> {
    let fatal = |error, d: &str| AuthorizeError::Fatal {
        error,
        description: d.to_owned(),
    };
    let client_id = q
        .get("client_id")
        .ok_or_else(|| fatal("invalid_request", "client_id is missing"))?;
    let client = clients
        .iter()
        .find(|c| &c.id == client_id)
        .ok_or_else(|| fatal("invalid_client", "unknown client_id"))?;
    let redirect_uri = q
        .get("redirect_uri")
        .ok_or_else(|| fatal("invalid_request", "redirect_uri is missing"))?;
    if !client.allows_redirect(redirect_uri) {
        return Err(fatal(
            "invalid_request",
            "redirect_uri is not registered for this client",
        ));
    }
    let state = q.get("state").cloned();
    let back = |error, d: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description: d.to_owned(),
    };
    if q.contains_key("request") || q.contains_key("request_uri") {
        return Err(back(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => return Err(back("unsupported_response_type", "only response_type=code")),
        None => return Err(back("invalid_request", "response_type is missing")),
    }
    if let Some(mode) = q.get("response_mode")
        && mode != "query"
    {
        return Err(back("invalid_request", "only response_mode=query"));
    }
    let asked: Vec<&str> = q
        .get("scope")
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if !asked.contains(&"openid") {
        return Err(back("invalid_scope", "scope must include openid"));
    }
    let scopes: Vec<String> = SCOPES
        .iter()
        .filter(|s| asked.contains(s))
        .map(|s| (*s).to_owned())
        .collect();
    let state = match state.clone().filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => return Err(back("invalid_request", "state is required")),
    };
    let nonce = q
        .get("nonce")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| back("invalid_request", "nonce is required"))?
        .clone();
    if state.len() > 512 || nonce.len() > 512 {
        return Err(back(
            "invalid_request",
            "state and nonce are at most 512 characters",
        ));
    }
    let code_challenge = q.get("code_challenge").ok_or_else(|| {
        back(
            "invalid_request",
            "PKCE is required: code_challenge is missing",
        )
    })?;
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(back(
            "invalid_request",
            "PKCE code_challenge_method must be S256",
        ));
    }
    if code_challenge.len() != 43 || !valid_pkce_string(code_challenge) {
        return Err(back(
            "invalid_request",
            "code_challenge is not a base64url SHA-256",
        ));
    }
    if q.get("prompt")
        .is_some_and(|p| p.split(' ').any(|p| p == "none"))
    {
        return Err(back(
            "login_required",
            "a login always needs the card or phone",
        ));
    }
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.clone(),
        scopes,
        state,
        nonce,
        code_challenge: code_challenge.clone(),
    })
}

/// Who logged in, as the provider will assert it.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Pairwise subject.
    pub sub: String,
    /// Claims for the granted scopes.
    pub claims: Map<String, Value>,
    /// When.
    pub auth_time: Timestamp,
    /// RFC 8176 methods.
    pub amr: Vec<&'static str>,
}

#[derive(Clone, Debug)]
enum LoginState {
    Pending,
    Done(Authenticated),
    Failed(&'static str),
    Redeemed,
}

#[derive(Clone, Debug)]
struct Login {
    req: AuthRequest,
    challenge: [u8; shomei_verifier::LOGIN_CHALLENGE_LEN],
    created: Timestamp,
    answered: Option<Timestamp>,
    state: LoginState,
}

/// What the phone sees when it opens a login URL.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoginOffer {
    /// The challenge (base64url of 32 bytes); the holder signs the
    /// `shomei_verifier::login_message` around it, never the bare bytes.
    pub challenge: String,
    /// This provider's issuer URL, which goes into the signed message (the
    /// holder checks that the login URL is under it).
    pub issuer: String,
    /// Until when (RFC 3339).
    pub expires_at: String,
    /// Who asks.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Whether the signing key must answer too (basic-four scopes).
    pub needs_signing_key: bool,
}

#[derive(Clone, Debug)]
struct CodeGrant {
    login: Authenticated,
    req: AuthRequest,
    expires: Timestamp,
    used: bool,
    access_token: Option<String>,
}

#[derive(Clone, Debug)]
struct AccessGrant {
    sub: String,
    claims: Map<String, Value>,
    expires: Timestamp,
}

/// The token endpoint's answer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenResponse {
    /// Opaque bearer token for `/userinfo`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// The ES256 ID token.
    pub id_token: String,
    /// Granted scopes.
    pub scope: String,
}

/// An OAuth error for the token endpoint (RFC 6749 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    /// Error code.
    pub error: &'static str,
    /// Description.
    pub description: &'static str,
}

fn token_error(error: &'static str, description: &'static str) -> TokenError {
    TokenError { error, description }
}

/// The provider's state.
pub struct Provider {
    /// The issuer URL (no trailing slash).
    pub issuer: String,
    /// Registered clients.
    pub clients: Vec<Client>,
    jwt: JwtSigner,
    /// [`MAX_ENTRIES`]; smaller in tests.
    max_entries: usize,
    logins: Mutex<HashMap<String, Login>>,
    codes: Mutex<HashMap<String, CodeGrant>>,
    tokens: Mutex<HashMap<String, AccessGrant>>,
}

impl Provider {
    /// A provider for `issuer`.
    pub fn new(issuer: &str, clients: Vec<Client>, jwt: JwtSigner) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            clients,
            jwt,
            max_entries: MAX_ENTRIES,
            logins: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwt.jwk()]})
    }

    /// The discovery document.
    pub fn discovery(&self) -> Value {
        let i = &self.issuer;
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "userinfo_endpoint": format!("{i}/userinfo"),
            "jwks_uri": format!("{i}/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": SCOPES,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "name", "address", "birthdate", "gender", "shomei_medium"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        })
    }

    /// Starts a login for a checked request: returns its id.
    pub fn start_login(&self, req: AuthRequest, now: Timestamp) -> Result<String, ServiceError> {
        let id = b64url(&random::<16>()?);
        let challenge = random::<{ shomei_verifier::LOGIN_CHALLENGE_LEN }>()?;
        let mut logins = lock(&self.logins);
        // A login is over DONE_TTL after it began at the latest (answered
        // within CHALLENGE_TTL, continued within DONE_TTL of that).
        make_room(
            &mut logins,
            self.max_entries,
            |l| now - l.created >= CHALLENGE_TTL + DONE_TTL,
            "too_many_logins",
        )?;
        logins.insert(
            id.clone(),
            Login {
                req,
                challenge,
                created: now,
                answered: None,
                state: LoginState::Pending,
            },
        );
        Ok(id)
    }

    /// The offer a phone reads from the login URL.
    pub fn offer(&self, id: &str, now: Timestamp) -> Result<LoginOffer, ServiceError> {
        let logins = lock(&self.logins);
        let l = logins
            .get(id)
            .ok_or(ServiceError::NotFound("unknown_login"))?;
        if !matches!(l.state, LoginState::Pending) {
            return Err(ServiceError::Gone("login_used"));
        }
        let expires = l.created + CHALLENGE_TTL;
        if now >= expires {
            return Err(ServiceError::Gone("challenge_expired"));
        }
        Ok(LoginOffer {
            challenge: b64url(&l.challenge),
            issuer: self.issuer.clone(),
            expires_at: expires
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            client_id: l.req.client_id.clone(),
            scopes: l.req.scopes.clone(),
            needs_signing_key: l.req.wants_basic_four(),
        })
    }

    /// A pending login's request and challenge, for verifying an answer.
    /// Takes nothing: an answer that does not verify leaves the login
    /// pending, so whoever knows the login URL cannot end it with garbage.
    pub fn pending_answer(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<(AuthRequest, [u8; shomei_verifier::LOGIN_CHALLENGE_LEN]), ServiceError> {
        let logins = lock(&self.logins);
        let l = logins
            .get(id)
            .ok_or(ServiceError::NotFound("unknown_login"))?;
        if !matches!(l.state, LoginState::Pending) {
            return Err(ServiceError::Gone("login_used"));
        }
        if now >= l.created + CHALLENGE_TTL {
            return Err(ServiceError::Gone("challenge_expired"));
        }
        Ok((l.req.clone(), l.challenge))
    }

    /// Takes the login's single-use mark for a *verified* answer (the
    /// holder's signatures checked), atomically: the first verified answer
    /// ends the login — done with `Ok`, or failed with the refusal's code
    /// (e.g. a revoked certificate) — and any later one gets `login_used`.
    /// `answered_at` is when the answer arrived (verification may take
    /// the OCSP round trip past the 60 s).
    pub fn complete_answer(
        &self,
        id: &str,
        outcome: Result<Authenticated, &'static str>,
        answered_at: Timestamp,
    ) -> Result<(), ServiceError> {
        let mut logins = lock(&self.logins);
        let l = logins
            .get_mut(id)
            .ok_or(ServiceError::NotFound("unknown_login"))?;
        if !matches!(l.state, LoginState::Pending) {
            return Err(ServiceError::Gone("login_used"));
        }
        if answered_at >= l.created + CHALLENGE_TTL {
            return Err(ServiceError::Gone("challenge_expired"));
        }
        l.answered = Some(answered_at);
        l.state = match outcome {
            Ok(a) => LoginState::Done(a),
            Err(code) => LoginState::Failed(code),
        };
        Ok(())
    }

    /// `pending`, `done`, `failed`, `expired` or `redeemed` (for the page's poll).
    pub fn status(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<(&'static str, Option<&'static str>), ServiceError> {
        let logins = lock(&self.logins);
        let l = logins
            .get(id)
            .ok_or(ServiceError::NotFound("unknown_login"))?;
        Ok(match &l.state {
            LoginState::Pending if now >= l.created + CHALLENGE_TTL => {
                ("expired", Some("challenge_expired"))
            }
            LoginState::Pending => ("pending", None),
            LoginState::Done(_) => ("done", None),
            LoginState::Failed(c) => ("failed", Some(c)),
            LoginState::Redeemed => ("redeemed", None),
        })
    }

    /// The browser continues: a done login becomes a single-use code (the
    /// redirect URL carries it); a failed or expired one becomes an
    /// `access_denied` redirect. A pending one is a conflict.
    pub fn continue_login(&self, id: &str, now: Timestamp) -> Result<String, ServiceError> {
        let mut logins = lock(&self.logins);
        let l = logins
            .get_mut(id)
            .ok_or(ServiceError::NotFound("unknown_login"))?;
        let req = l.req.clone();
        let denied = |why: &str| {
            with_query(
                &req.redirect_uri,
                &[
                    ("error", "access_denied".to_owned()),
                    ("error_description", why.to_owned()),
                    ("state", req.state.clone()),
                    ("iss", self.issuer.clone()),
                ],
            )
        };
        match std::mem::replace(&mut l.state, LoginState::Redeemed) {
            LoginState::Done(a) => {
                if l.answered.is_some_and(|t| now >= t + DONE_TTL) {
                    return Ok(denied("the login was not continued in time"));
                }
                let code = b64url(&random::<32>()?);
                let mut codes = lock(&self.codes);
                // A code is kept past its expiry for as long as the token it
                // gave lives, so that a late replay still revokes it.
                make_room(
                    &mut codes,
                    self.max_entries,
                    |g| now >= g.expires + TOKEN_TTL,
                    "too_many_codes",
                )?;
                codes.insert(
                    code.clone(),
                    CodeGrant {
                        login: a,
                        req: req.clone(),
                        expires: now + CODE_TTL,
                        used: false,
                        access_token: None,
                    },
                );
                Ok(with_query(
                    &req.redirect_uri,
                    &[
                        ("code", code),
                        ("state", req.state.clone()),
                        ("iss", self.issuer.clone()),
                    ],
                ))
            }
            LoginState::Failed(c) => Ok(denied(c)),
            LoginState::Pending if now >= l.created + CHALLENGE_TTL => {
                Ok(denied("challenge_expired"))
            }
            other => {
                l.state = other;
                Err(ServiceError::Conflict("login_not_answered"))
            }
        }
    }

    /// The token endpoint (authorization_code grant).
    pub fn token(
        &self,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        now: Timestamp,
    ) -> Result<TokenResponse, TokenError> {
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return Err(token_error(
                "unsupported_grant_type",
                "only authorization_code",
            ));
        }
        let (client_id, secret) = match &basic {
            Some((id, s)) => (id.clone(), Some(s.clone())),
            None => (
                form.get("client_id").cloned().unwrap_or_default(),
                form.get("client_secret").cloned(),
            ),
        };
        let client = self
            .clients
            .iter()
            .find(|c| c.id == client_id)
            .filter(|c| c.secret_matches(secret.as_deref()))
            .ok_or_else(|| token_error("invalid_client", "unknown client or wrong secret"))?;
        let code = form
            .get("code")
            .ok_or_else(|| token_error("invalid_request", "code is missing"))?;
        let mut codes = lock(&self.codes);
        let grant = codes
            .get_mut(code)
            .ok_or_else(|| token_error("invalid_grant", "unknown code"))?;
        if grant.used {
            // A replayed code: revoke what it gave (RFC 6749 §4.1.2).
            if let Some(t) = grant.access_token.take() {
                lock(&self.tokens).remove(&t);
            }
            return Err(token_error("invalid_grant", "the code was already used"));
        }
        if now >= grant.expires {
            return Err(token_error("invalid_grant", "the code expired"));
        }
        // A code shown by another client is refused but not burnt: the
        // client it was issued to can still redeem it (a public client
        // authenticates with nothing, so burning here would let anyone who
        // saw a code end the login). Only a redemption uses a code; a
        // second one revokes what the first gave (above).
        if grant.req.client_id != client.id {
            return Err(token_error(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if form.get("redirect_uri") != Some(&grant.req.redirect_uri) {
            return Err(token_error(
                "invalid_grant",
                "redirect_uri does not match the authorization request",
            ));
        }
        let verifier = form
            .get("code_verifier")
            .ok_or_else(|| token_error("invalid_grant", "PKCE code_verifier is missing"))?;
        if !pkce_s256_matches(&grant.req.code_challenge, verifier) {
            return Err(token_error(
                "invalid_grant",
                "PKCE code_verifier does not match",
            ));
        }
        // Room for the token before the code is used (locks: codes, then
        // tokens, as for a replay above).
        let mut tokens = lock(&self.tokens);
        make_room(
            &mut tokens,
            self.max_entries,
            |g| now >= g.expires,
            "too_many_tokens",
        )
        .map_err(|_| token_error("temporarily_unavailable", "too many live tokens"))?;
        grant.used = true;
        let a = grant.login.clone();
        let req = grant.req.clone();
        let iat = now.unix_timestamp();
        let mut claims = json!({
            "iss": self.issuer,
            "sub": a.sub,
            "aud": req.client_id,
            "iat": iat,
            "exp": iat + TOKEN_TTL.whole_seconds(),
            "auth_time": a.auth_time.unix_timestamp(),
            "nonce": req.nonce,
            "amr": a.amr,
        });
        if let Some(obj) = claims.as_object_mut() {
            for (k, v) in &a.claims {
                obj.insert(k.clone(), v.clone());
            }
        }
        let id_token = self
            .jwt
            .sign(&claims)
            .map_err(|_| token_error("server_error", "cannot sign the ID token"))?;
        let access_token = random::<32>()
            .map(|b| b64url(&b))
            .map_err(|_| token_error("server_error", "randomness failed"))?;
        grant.access_token = Some(access_token.clone());
        tokens.insert(
            access_token.clone(),
            AccessGrant {
                sub: a.sub.clone(),
                claims: a.claims.clone(),
                expires: now + TOKEN_TTL,
            },
        );
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: TOKEN_TTL.whole_seconds(),
            id_token,
            scope: req.scopes.join(" "),
        })
    }

    /// The UserInfo response for an access token.
    pub fn userinfo(&self, token: &str, now: Timestamp) -> Option<Value> {
        let tokens = lock(&self.tokens);
        let g = tokens.get(token).filter(|g| now < g.expires)?;
        let mut out = Map::new();
        out.insert("sub".into(), Value::String(g.sub.clone()));
        out.extend(g.claims.clone());
        Some(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn clients() -> Vec<Client> {
        vec![
            Client::parse("bank=https://bank.example/cb").unwrap(),
            Client::parse("app=http://127.0.0.1/callback").unwrap(),
            Client::parse("office:s3cret=https://office.example/cb").unwrap(),
        ]
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("client_id", "bank"),
            ("redirect_uri", "https://bank.example/cb"),
            ("response_type", "code"),
            ("scope", "openid name birthdate"),
            ("state", "s1"),
            ("nonce", "n1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    fn without(key: &str) -> HashMap<String, String> {
        q(&good()
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect::<Vec<_>>())
    }

    fn with(key: &str, value: &'static str) -> HashMap<String, String> {
        let mut m = q(&good());
        m.insert(key.into(), value.into());
        m
    }

    fn error_of(r: Result<AuthRequest, AuthorizeError>) -> &'static str {
        match r.unwrap_err() {
            AuthorizeError::Fatal { error, .. } | AuthorizeError::Redirect { error, .. } => error,
        }
    }

    #[test]
    fn client_secrets_may_hold_equals_signs() {
        let c = Client::parse("office:c2VjcmV0==https://office.example/cb").unwrap();
        assert_eq!(c.id, "office");
        assert!(c.secret_matches(Some("c2VjcmV0=")));
        assert!(!c.secret_matches(Some("c2VjcmV0")));
        assert_eq!(c.redirect_uris, ["https://office.example/cb"]);
        assert!(Client::parse("nouri").is_err());
        assert!(Client::parse("x=ftp://a").is_err());
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert!(pkce_s256_matches(CHALLENGE, VERIFIER));
        assert!(!pkce_s256_matches(CHALLENGE, &VERIFIER.replace('d', "e")));
        assert!(!pkce_s256_matches(CHALLENGE, "short"));
    }

    #[test]
    fn good_request_keeps_known_scopes() {
        let r = check_authorize(&clients(), &q(&good())).unwrap();
        assert_eq!(r.scopes, ["openid", "name", "birthdate"]);
        assert!(r.wants_basic_four());
    }

    #[test]
    fn bad_client_or_redirect_never_redirects() {
        let r = check_authorize(&clients(), &with("redirect_uri", "https://evil.example/cb"));
        assert!(matches!(r, Err(AuthorizeError::Fatal { .. })));
        let r = check_authorize(&clients(), &with("client_id", "nobody"));
        assert!(matches!(
            r,
            Err(AuthorizeError::Fatal {
                error: "invalid_client",
                ..
            })
        ));
        // Loopback redirect URIs match on any port, never another host.
        let mut m = with("client_id", "app");
        m.insert(
            "redirect_uri".into(),
            "http://127.0.0.1:51234/callback".into(),
        );
        assert!(check_authorize(&clients(), &m).is_ok());
        m.insert("redirect_uri".into(), "http://127.0.0.1:51234/other".into());
        assert!(matches!(
            check_authorize(&clients(), &m),
            Err(AuthorizeError::Fatal { .. })
        ));
        m.insert(
            "redirect_uri".into(),
            "http://127.0.0.2:51234/callback".into(),
        );
        assert!(matches!(
            check_authorize(&clients(), &m),
            Err(AuthorizeError::Fatal { .. })
        ));
    }

    #[test]
    fn each_missing_piece_is_named() {
        assert_eq!(
            error_of(check_authorize(&clients(), &without("code_challenge"))),
            "invalid_request"
        );
        assert_eq!(
            error_of(check_authorize(
                &clients(),
                &with("code_challenge_method", "plain")
            )),
            "invalid_request"
        );
        assert_eq!(
            error_of(check_authorize(
                &clients(),
                &without("code_challenge_method")
            )),
            "invalid_request"
        );
        assert_eq!(
            error_of(check_authorize(&clients(), &without("state"))),
            "invalid_request"
        );
        assert_eq!(
            error_of(check_authorize(&clients(), &without("nonce"))),
            "invalid_request"
        );
        assert_eq!(
            error_of(check_authorize(&clients(), &with("scope", "name"))),
            "invalid_scope"
        );
        assert_eq!(
            error_of(check_authorize(&clients(), &with("response_type", "token"))),
            "unsupported_response_type"
        );
        assert_eq!(
            error_of(check_authorize(&clients(), &with("prompt", "none"))),
            "login_required"
        );
        assert_eq!(
            error_of(check_authorize(&clients(), &with("request", "eyJ"))),
            "request_not_supported"
        );
        let e = check_authorize(&clients(), &without("nonce")).unwrap_err();
        let loc = e.location("http://op").unwrap();
        assert!(
            loc.starts_with("https://bank.example/cb?error=invalid_request"),
            "{loc}"
        );
        assert!(loc.contains("state=s1"), "{loc}");
    }

    fn provider() -> Provider {
        let jwt = JwtSigner::new(std::sync::Arc::new(
            shomei_pki::EcdsaP256Signer::generate().unwrap(),
        ))
        .unwrap();
        Provider::new("http://op", clients(), jwt)
    }

    const T0: Timestamp = time::macros::datetime!(2026-11-21 04:00:00 UTC);

    fn done(p: &Provider) -> String {
        done_for(p, "bank", "https://bank.example/cb")
    }

    /// A login for `client` answered and continued: its code.
    fn done_for(p: &Provider, client: &str, redirect: &str) -> String {
        done_at(p, client, redirect, T0).unwrap()
    }

    fn authenticated(at: Timestamp) -> Authenticated {
        let mut claims = Map::new();
        claims.insert("name".into(), json!("山田\u{3000}花子"));
        Authenticated {
            sub: "abc".into(),
            claims,
            auth_time: at,
            amr: vec!["hwk", "pin"],
        }
    }

    /// A whole login at `at`: started, answered (verified), continued.
    fn done_at(
        p: &Provider,
        client: &str,
        redirect: &str,
        at: Timestamp,
    ) -> Result<String, ServiceError> {
        let mut params = q(&good());
        params.insert("client_id".into(), client.into());
        params.insert("redirect_uri".into(), redirect.into());
        let req = check_authorize(&clients(), &params).unwrap();
        let id = p.start_login(req, at)?;
        p.pending_answer(&id, at)?;
        p.complete_answer(&id, Ok(authenticated(at)), at)?;
        let loc = p.continue_login(&id, at)?;
        Ok(loc
            .split("code=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned())
    }

    fn token_form(code: &str, verifier: &str) -> HashMap<String, String> {
        q(&[
            ("grant_type", "authorization_code"),
            ("client_id", "bank"),
            ("redirect_uri", "https://bank.example/cb"),
            ("code", code),
            ("code_verifier", verifier),
        ])
    }

    #[test]
    fn code_is_single_use_and_a_replay_revokes_the_token() {
        let p = provider();
        let code = done(&p);
        let t = p.token(&token_form(&code, VERIFIER), None, T0).unwrap();
        assert!(p.userinfo(&t.access_token, T0).is_some());
        let e = p.token(&token_form(&code, VERIFIER), None, T0).unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        assert!(
            p.userinfo(&t.access_token, T0).is_none(),
            "revoked on replay"
        );
    }

    #[test]
    fn wrong_verifier_redirect_or_late_code_is_refused() {
        let p = provider();
        let code = done(&p);
        let wrong = "x".repeat(43);
        assert_eq!(
            p.token(&token_form(&code, &wrong), None, T0)
                .unwrap_err()
                .error,
            "invalid_grant"
        );
        let mut f = token_form(&code, VERIFIER);
        f.insert("redirect_uri".into(), "https://bank.example/other".into());
        assert_eq!(p.token(&f, None, T0).unwrap_err().error, "invalid_grant");
        assert_eq!(
            p.token(&token_form(&code, VERIFIER), None, T0 + CODE_TTL)
                .unwrap_err()
                .error,
            "invalid_grant"
        );
        // None of the failures consumed the code.
        assert!(p.token(&token_form(&code, VERIFIER), None, T0).is_ok());
    }

    #[test]
    fn challenge_is_single_use_and_expires() {
        let p = provider();
        let req = check_authorize(&clients(), &q(&good())).unwrap();
        let id = p.start_login(req.clone(), T0).unwrap();
        // Reading the challenge to verify an answer takes nothing (an
        // answer that does not verify leaves the login pending).
        p.pending_answer(&id, T0).unwrap();
        p.pending_answer(&id, T0).unwrap();
        assert_eq!(p.status(&id, T0).unwrap(), ("pending", None));
        // The first verified answer takes it, refused or not; then no more.
        p.complete_answer(&id, Err("revoked"), T0).unwrap();
        assert_eq!(p.pending_answer(&id, T0).unwrap_err().code(), "login_used");
        assert_eq!(
            p.complete_answer(&id, Ok(authenticated(T0)), T0)
                .unwrap_err()
                .code(),
            "login_used"
        );
        assert_eq!(p.status(&id, T0).unwrap(), ("failed", Some("revoked")));
        let loc = p.continue_login(&id, T0).unwrap();
        assert!(loc.contains("error=access_denied"), "{loc}");
        assert!(!loc.contains("code="), "{loc}");

        // Too late: neither read nor taken; the browser is sent back.
        let late = p.start_login(req.clone(), T0).unwrap();
        assert_eq!(
            p.pending_answer(&late, T0 + CHALLENGE_TTL)
                .unwrap_err()
                .code(),
            "challenge_expired"
        );
        assert_eq!(
            p.complete_answer(&late, Ok(authenticated(T0)), T0 + CHALLENGE_TTL)
                .unwrap_err()
                .code(),
            "challenge_expired"
        );
        let loc = p.continue_login(&late, T0 + CHALLENGE_TTL).unwrap();
        assert!(loc.contains("error=access_denied"), "{loc}");

        // An answer that arrived in time counts even if its verification
        // (the OCSP round trip) ends after the 60 s.
        let slow = p.start_login(req, T0).unwrap();
        let arrived = T0 + CHALLENGE_TTL - Duration::seconds(1);
        p.pending_answer(&slow, arrived).unwrap();
        p.complete_answer(&slow, Ok(authenticated(arrived)), arrived)
            .unwrap();
        let loc = p
            .continue_login(&slow, T0 + CHALLENGE_TTL + Duration::seconds(5))
            .unwrap();
        assert!(loc.contains("code="), "{loc}");
    }

    #[test]
    fn logins_codes_and_tokens_are_swept_when_full() {
        let mut p = provider();
        p.max_entries = 2;
        let bank = |p: &Provider, at| done_at(p, "bank", "https://bank.example/cb", at);
        for _ in 0..2 {
            let code = bank(&p, T0).unwrap();
            p.token(&token_form(&code, VERIFIER), None, T0).unwrap();
        }
        // Full of live logins: the cap holds.
        assert_eq!(
            bank(&p, T0).unwrap_err().code(),
            "too_many_logins",
            "the cap holds while all are live"
        );
        assert_eq!(lock(&p.codes).len(), 2);
        assert_eq!(lock(&p.tokens).len(), 2);
        // Once logins, codes (kept while the token they gave lives, so a
        // late replay still revokes it) and tokens are over, inserts sweep
        // them.
        let later = T0 + CHALLENGE_TTL + DONE_TTL;
        let code = bank(&p, later).unwrap();
        assert_eq!(lock(&p.logins).len(), 1, "old logins swept");
        assert_eq!(lock(&p.codes).len(), 1, "old codes swept");
        let t = p.token(&token_form(&code, VERIFIER), None, later).unwrap();
        assert_eq!(lock(&p.tokens).len(), 1, "old tokens swept");
        assert!(p.userinfo(&t.access_token, later).is_some());
    }

    #[test]
    fn a_code_shown_by_another_client_is_invalid_grant_and_not_burnt() {
        let p = provider();
        let code = done(&p);
        let mut f = token_form(&code, VERIFIER);
        f.insert("client_id".into(), "app".into());
        assert_eq!(
            p.token(&f, None, T0).unwrap_err(),
            token_error("invalid_grant", "the code was issued to another client")
        );
        // As another confidential client, with that client's secret: the same.
        f.insert("client_id".into(), "office".into());
        f.insert("client_secret".into(), "s3cret".into());
        assert_eq!(p.token(&f, None, T0).unwrap_err().error, "invalid_grant");
        // Not burnt (RFC 6749 §4.1.2 asks only that a *used* code be
        // refused): the client it was issued to redeems it once…
        let t = p.token(&token_form(&code, VERIFIER), None, T0).unwrap();
        assert!(p.userinfo(&t.access_token, T0).is_some());
        // …and after that, any replay (by anyone) is refused and revokes.
        assert_eq!(p.token(&f, None, T0).unwrap_err().error, "invalid_grant");
        assert!(p.userinfo(&t.access_token, T0).is_none());
    }

    #[test]
    fn a_confidential_client_needs_its_secret() {
        let p = provider();
        let code = done_for(&p, "office", "https://office.example/cb");
        let form = |secret: Option<&str>| {
            let mut f = token_form(&code, VERIFIER);
            f.insert("client_id".into(), "office".into());
            f.insert("redirect_uri".into(), "https://office.example/cb".into());
            if let Some(s) = secret {
                f.insert("client_secret".into(), s.into());
            }
            f
        };
        let invalid_client = token_error("invalid_client", "unknown client or wrong secret");
        // Missing, wrong (in the form or by Basic), or the public client's
        // way (no secret at all): invalid_client.
        assert_eq!(p.token(&form(None), None, T0).unwrap_err(), invalid_client);
        assert_eq!(
            p.token(&form(Some("S3CRET")), None, T0).unwrap_err(),
            invalid_client
        );
        assert_eq!(
            p.token(&form(Some("")), None, T0).unwrap_err(),
            invalid_client
        );
        let basic = |s: &str| Some(("office".to_owned(), s.to_owned()));
        assert_eq!(
            p.token(&form(None), basic("wrong"), T0).unwrap_err(),
            invalid_client
        );
        // Basic wins over a right secret in the form.
        assert_eq!(
            p.token(&form(Some("s3cret")), basic("wrong"), T0)
                .unwrap_err(),
            invalid_client
        );
        // An unknown client id: the same answer (no oracle).
        let mut f = form(Some("s3cret"));
        f.insert("client_id".into(), "nobody".into());
        assert_eq!(p.token(&f, None, T0).unwrap_err(), invalid_client);
        // None of that consumed the code: the right secret by Basic redeems it.
        assert!(p.token(&form(None), basic("s3cret"), T0).is_ok());
    }
}
