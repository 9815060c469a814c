//! The holder's side of "log in with My Number": read the login URL's
//! challenge, answer it with the authentication key (and, when the relying
//! party asks for the basic four, with the signing key), post the answer.
//! Shared by `phone login` and `card login`.

use anyhow::Context;
use base64::Engine;
use serde_json::{Value, json};

use crate::output::Failure;

/// What the login URL offers.
#[derive(Debug, serde::Deserialize)]
pub struct Offer {
    /// The challenge (base64url).
    pub challenge: String,
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
    Ok((offer, challenge))
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
