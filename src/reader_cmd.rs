//! Reader authentication in the CLI (ISO/IEC 18013-5 §9.1.4):
//! `shomei reader enrol` gets a registered relying party's reader a key and
//! a certificate; `reader request --reader-key --reader-cert` loads them to
//! sign the request; `phone present --trusted-readers` loads the reader CAs
//! the phone trusts.
//!
//! `reader enrol` generates the P-256 key here (it never leaves this
//! machine), sends only its public key to the authority
//! (`POST /v1/reader-certificates`, with the relying party's bearer token)
//! and writes, into `--out` (created if needed; existing files are never
//! overwritten):
//!
//! ```text
//! reader.p8       the key, PKCS#8 DER, mode 0600
//! reader.pem      the reader certificate (CN = the relying party's name)
//! reader-ca.pem   the authority's reader CA
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use serde_json::json;
use shomei_core::Signer;
use shomei_mdoc::reader_auth::{ReaderAuthKey, TrustedReaderCas};
use shomei_pki::EcdsaP256Signer;

use crate::output::{Failure, emit};

/// The key file `reader enrol` writes.
pub const KEY_FILE: &str = "reader.p8";
/// The certificate file `reader enrol` writes.
pub const CERT_FILE: &str = "reader.pem";
/// The reader CA file `reader enrol` writes.
pub const CA_FILE: &str = "reader-ca.pem";

/// A reader's signing key and certificate chain, loaded from files.
pub struct ReaderAuthFiles {
    key: EcdsaP256Signer,
    chain: Vec<Vec<u8>>,
}

impl ReaderAuthFiles {
    /// Loads `key` (PKCS#8, DER or PEM `PRIVATE KEY`, P-256) and `cert`
    /// (PEM, the reader certificate first); they must belong together.
    pub fn load(key: &Path, cert: &Path) -> anyhow::Result<Self> {
        let raw = std::fs::read(key)
            .map_err(|e| Failure::input(format!("cannot read {}: {e}", key.display())))?;
        let der = match std::str::from_utf8(&raw) {
            Ok(text) if text.contains("-----BEGIN PRIVATE KEY-----") => {
                let b64: String = text
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .flat_map(str::split_whitespace)
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|_| {
                        Failure::input(format!("{}: bad PEM private key", key.display()))
                    })?
            }
            _ => raw,
        };
        let key_signer = EcdsaP256Signer::from_pkcs8(&der).map_err(|e| {
            Failure::input(format!(
                "--reader-key {}: not a P-256 PKCS#8 key ({e})",
                key.display()
            ))
        })?;
        let pem = std::fs::read(cert)
            .map_err(|e| Failure::input(format!("cannot read {}: {e}", cert.display())))?;
        let chain = shomei_pki::pem::pem_certificates(&pem);
        let Some(leaf) = chain.first() else {
            return Err(Failure::input(format!(
                "--reader-cert {}: no certificate in it",
                cert.display()
            )));
        };
        let spki = shomei_pki::csr::certificate_spki(leaf)
            .map_err(|e| Failure::input(format!("--reader-cert {}: {e}", cert.display())))?;
        if spki != key_signer.public_key_spki() {
            return Err(Failure::input(
                "--reader-cert is not the certificate of --reader-key",
            ));
        }
        Ok(Self {
            key: key_signer,
            chain,
        })
    }

    /// For the mdoc reader.
    pub fn auth_key(&self) -> ReaderAuthKey<'_> {
        ReaderAuthKey {
            signer: &self.key,
            chain: &self.chain,
        }
    }
}

/// Both or neither of `--reader-key` and `--reader-cert`.
pub fn load_optional(
    key: Option<&Path>,
    cert: Option<&Path>,
) -> anyhow::Result<Option<ReaderAuthFiles>> {
    match (key, cert) {
        (None, None) => Ok(None),
        (Some(k), Some(c)) => ReaderAuthFiles::load(k, c).map(Some),
        _ => Err(Failure::input(
            "--reader-key and --reader-cert go together (see `shomei reader enrol`)",
        )),
    }
}

/// The reader CA certificates in a PEM file (`phone present --trusted-readers`).
pub fn trusted_readers(path: &Path) -> anyhow::Result<TrustedReaderCas> {
    let pem = std::fs::read(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    let certs = shomei_pki::pem::pem_certificates(&pem);
    if certs.is_empty() {
        return Err(Failure::input(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    TrustedReaderCas::new(certs).map_err(|e| Failure::input(format!("--trusted-readers: {e}")))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `shomei reader enrol`.
pub async fn enrol(
    authority: &str,
    rp_token_file: &Path,
    out: &PathBuf,
    json_out: bool,
) -> anyhow::Result<()> {
    let token = std::fs::read_to_string(rp_token_file)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", rp_token_file.display())))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(Failure::input(format!(
            "{} is empty: it should hold the relying party's token",
            rp_token_file.display()
        )));
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let paths = [KEY_FILE, CERT_FILE, CA_FILE].map(|f| out.join(f));
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        return Err(Failure::input(format!(
            "{} already exists: choose another --out",
            p.display()
        )));
    }
    let key = EcdsaP256Signer::generate().context("cannot generate the reader key")?;
    let base = authority.trim_end_matches('/');
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?
        .post(format!("{base}/v1/reader-certificates"))
        .bearer_auth(token)
        .json(&json!({"public_key": pem("PUBLIC KEY", key.public_key_spki())}))
        .send()
        .await
        .with_context(|| format!("cannot reach the authority at {base}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let code = body["code"].as_str().unwrap_or("unknown");
        let detail = body["detail"].as_str().unwrap_or("");
        anyhow::bail!(
            "the authority refused the reader certificate: {detail} ({code}, HTTP {status})"
        );
    }
    let cert_pem = body["certificate"]
        .as_str()
        .context("the authority's answer has no certificate")?;
    let ca_pem = body["reader_ca"]
        .as_str()
        .context("the authority's answer has no reader CA")?;
    let chain = shomei_pki::pem::pem_certificates(cert_pem.as_bytes());
    let leaf = chain
        .first()
        .context("the authority's certificate is not PEM")?;
    if shomei_pki::csr::certificate_spki(leaf)? != key.public_key_spki() {
        anyhow::bail!("the authority's certificate is not for the key sent");
    }
    write_new(&paths[0], &key.to_pkcs8()?, 0o600)?;
    write_new(&paths[1], cert_pem.as_bytes(), 0o644)?;
    write_new(&paths[2], ca_pem.as_bytes(), 0o644)?;
    let name = body["subject"]["common_name"].as_str().unwrap_or_default();
    let not_after = body["not_after"].as_str().unwrap_or_default();
    emit(
        json_out,
        &json!({
            "key": paths[0].display().to_string(),
            "certificate": paths[1].display().to_string(),
            "reader_ca": paths[2].display().to_string(),
            "name": name,
            "serial": body["serial"],
            "not_after": not_after,
        }),
        &format!(
            "reader certificate for {name} (until {not_after})\n  key:         {}\n  certificate: {}\n  reader CA:   {}",
            paths[0].display(),
            paths[1].display(),
            paths[2].display()
        ),
    );
    Ok(())
}
