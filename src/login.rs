//! The holder's side of "log in with My Number": read the login URL's
//! challenge, answer it with the authentication key (and, when the relying
//! party asks for the basic four, with the signing key), post the answer.
//! Shared by `phone login` and `card login`.
//!
//! The keys never sign the page's challenge as it is: they sign
//! [`shomei_verifier::login_message`] (`"shomei-login-v1"` 0x00 purpose 0x00
//! issuer 0x00 client_id 0x00 challenge), so a hostile login page cannot
//! make the holder sign CMS signed attributes or an authority holder proof.
//! An offer whose challenge is not 32 bytes, or whose issuer is not the
//! login URL's, is refused before any key is unlocked.

use anyhow::Context;
use base64::Engine;
use serde_json::{Value, json};

use crate::output::Failure;

/// What the login URL offers.
#[derive(Debug, serde::Deserialize)]
pub struct Offer {
    /// The challenge (base64url).
    pub challenge: String,
    /// The provider's issuer URL (the login URL must be under it).
    pub issuer: String,
    /// Who asks.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Whether the signing key must answer too.
    pub needs_signing_key: bool,
}

/// Reads the offer at `url` (blocking).
pub fn fetch_offer(
    http: &reqwest::blocking::Client,
    url: &str,
) -> anyhow::Result<(Offer, Vec<u8>)> {
    let resp = http
        .get(url)
        .header("accept", "application/json")
        .send()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(Failure::input(format!(
            "the login at {url} cannot be answered: {} ({})",
            body["detail"].as_str().unwrap_or("refused"),
            body["code"].as_str().unwrap_or("error")
        )));
    }
    let offer: Offer = serde_json::from_value(body).context("not a login offer")?;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&offer.challenge)
        .context("the challenge is not base64url")?;
    check_offer(url, &offer, &challenge)?;
    Ok((offer, challenge))
}

/// Refuses an offer this holder will not sign for: the login URL must be
/// `ISSUER/login/ID` for the issuer the offer names (that issuer goes into
/// the signed message), and the challenge must be what a provider issues
/// (32 bytes), never a document or a proof passed off as one.
pub fn check_offer(url: &str, offer: &Offer, challenge: &[u8]) -> anyhow::Result<()> {
    let id = url
        .strip_prefix(offer.issuer.as_str())
        .and_then(|rest| rest.strip_prefix("/login/"))
        .filter(|id| !id.is_empty() && !id.contains(['/', '?', '#']));
    if offer.issuer.is_empty() || id.is_none() {
        return Err(Failure::input(format!(
            "the login page at {url} names another issuer ({}); nothing was signed",
            offer.issuer
        )));
    }
    // The message builder refuses a challenge of the wrong size (and NULs).
    shomei_verifier::login_message(
        shomei_verifier::LoginPurpose::Authentication,
        &context(offer, challenge),
    )
    .map_err(|e| {
        Failure::input(format!(
            "the login page at {url} is not a login: {e}; nothing was signed"
        ))
    })?;
    Ok(())
}

fn context<'a>(offer: &'a Offer, challenge: &'a [u8]) -> shomei_verifier::LoginContext<'a> {
    shomei_verifier::LoginContext {
        issuer: &offer.issuer,
        client_id: &offer.client_id,
        challenge,
    }
}

/// The bytes the authentication key signs for this offer.
pub fn auth_message(offer: &Offer, challenge: &[u8]) -> anyhow::Result<Vec<u8>> {
    shomei_verifier::login_message(
        shomei_verifier::LoginPurpose::Authentication,
        &context(offer, challenge),
    )
    .map_err(|e| Failure::input(format!("not a login: {e}")))
}

/// The bytes the signing key signs to release the basic four.
pub fn consent_message(offer: &Offer, challenge: &[u8]) -> anyhow::Result<Vec<u8>> {
    shomei_verifier::login_message(
        shomei_verifier::LoginPurpose::Consent,
        &context(offer, challenge),
    )
    .map_err(|e| Failure::input(format!("not a login: {e}")))
}

/// Posts the answer; returns the provider's JSON.
pub fn post_answer(
    http: &reqwest::blocking::Client,
    url: &str,
    auth: (Vec<u8>, Vec<u8>),
    sign: Option<(Vec<u8>, Vec<u8>)>,
    method: &str,
) -> anyhow::Result<Value> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut body = json!({
        "auth_certificate": b64(&auth.0),
        "auth_signature": b64(&auth.1),
        "method": method,
    });
    if let Some((cert, sig)) = sign {
        body["sign_certificate"] = json!(b64(&cert));
        body["sign_signature"] = json!(b64(&sig));
    }
    let resp = http
        .post(url)
        .json(&body)
        .send()
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(anyhow::anyhow!(
            "the relying party refused the login: {} ({})",
            v["detail"].as_str().unwrap_or("refused"),
            v["code"].as_str().unwrap_or("error")
        ));
    }
    Ok(v)
}

/// A blocking HTTP client for logins.
pub fn client() -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot start the HTTP client")
}
