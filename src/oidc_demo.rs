//! The relying party's side of "log in with My Number" for the sandbox's
//! demo bank and `bench oidc`: the authorization code flow with PKCE S256
//! against `verifier serve`, using the JSON form of its login page. (The
//! tests drive the provider with a real client library instead:
//! tests/oidc_client.py, authlib.)

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use shomei_rp_service::oidc::urlencode;
use shomei_rp_service::online::{b64url, sha256};

/// One client of the provider (a `reqwest::Client` that does not follow
/// redirects, so the code can be read from the `location`).
pub(crate) struct CodeFlow<'a> {
    pub http: &'a reqwest::Client,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub redirect: &'a str,
    /// The PKCE code verifier (its S256 challenge goes to /authorize).
    pub verifier: &'a str,
}

impl CodeFlow<'_> {
    /// `/authorize` (JSON): the login URL the phone answers, and what its
    /// keys sign for it: the authentication and the consent login messages
    /// around its single-use challenge (`shomei_verifier::login_message`).
    pub(crate) async fn authorize(
        &self,
        scope: &str,
        state: &str,
        nonce: &str,
    ) -> anyhow::Result<(String, Vec<u8>, Vec<u8>)> {
        let challenge = b64url(&sha256(self.verifier.as_bytes()));
        let auth: Value = self
            .http
            .get(format!(
                "{}/authorize?client_id={}&redirect_uri={}&response_type=code&scope={}&state={}&nonce={}&code_challenge={challenge}&code_challenge_method=S256",
                self.issuer,
                urlencode(self.client_id),
                urlencode(self.redirect),
                urlencode(scope),
                urlencode(state),
                urlencode(nonce),
            ))
            .header("accept", "application/json")
            .send()
            .await?
            .json()
            .await?;
        let login_url = auth["login_url"]
            .as_str()
            .context("no login_url")?
            .to_owned();
        let offer: Value = self.http.get(&login_url).send().await?.json().await?;
        let ch = URL_SAFE_NO_PAD.decode(offer["challenge"].as_str().context("no challenge")?)?;
        let ctx = shomei_verifier::LoginContext {
            issuer: offer["issuer"].as_str().context("no issuer")?,
            client_id: offer["client_id"].as_str().context("no client_id")?,
            challenge: &ch,
        };
        let auth =
            shomei_verifier::login_message(shomei_verifier::LoginPurpose::Authentication, &ctx)?;
        let consent = shomei_verifier::login_message(shomei_verifier::LoginPurpose::Consent, &ctx)?;
        Ok((login_url, auth, consent))
    }

    /// Posts the phone's answer: (certificate, signature) of the
    /// authentication key, and of the signing key when the scopes ask for
    /// the basic four.
    pub(crate) async fn answer(
        &self,
        login_url: &str,
        auth: (&[u8], &[u8]),
        sign: Option<(&[u8], &[u8])>,
    ) -> anyhow::Result<()> {
        let mut body = json!({
            "auth_certificate": STANDARD.encode(auth.0),
            "auth_signature": STANDARD.encode(auth.1),
            "method": "pin",
        });
        if let Some((cert, sig)) = sign {
            body["sign_certificate"] = json!(STANDARD.encode(cert));
            body["sign_signature"] = json!(STANDARD.encode(sig));
        }
        let r = self.http.post(login_url).json(&body).send().await?;
        if !r.status().is_success() {
            bail!("the login was refused: {}", r.text().await?);
        }
        Ok(())
    }

    /// `/continue` → the code in the redirect → `/token` with the PKCE
    /// verifier; returns the ID token's claims (unverified: this client
    /// talks to its own provider over loopback).
    pub(crate) async fn redeem(&self, login_url: &str) -> anyhow::Result<Value> {
        let back = self
            .http
            .get(format!("{login_url}/continue"))
            .send()
            .await?;
        let location = back
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("no redirect after the login")?;
        let code = location
            .split("code=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .context("no code in the redirect")?
            .to_owned();
        let tokens: Value = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", self.client_id),
                ("code", code.as_str()),
                ("redirect_uri", self.redirect),
                ("code_verifier", self.verifier),
            ])
            .send()
            .await?
            .json()
            .await?;
        let id_token = tokens["id_token"]
            .as_str()
            .context("no ID token in the token response")?;
        let payload = id_token.split('.').nth(1).context("not a JWT")?;
        Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
    }
}
