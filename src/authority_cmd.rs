//! `shomei authority …`

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use shomei_authority_server::home::{Home, InitOptions};
use shomei_authority_server::{Clock, ServerError, SystemClock};

use crate::cli::AuthorityCmd;
use crate::output::{Failure, emit};

/// The file name under `DIR/manufacturers/` of the development root.
const DEVELOPMENT_MANUFACTURER: &str = "development-simulator";

pub async fn run(cmd: AuthorityCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        AuthorityCmd::Init {
            data,
            crl_shards,
            base_url,
            name,
            no_development_manufacturer,
        } => {
            let mut manufacturer_roots = Vec::new();
            if !no_development_manufacturer {
                manufacturer_roots.push((
                    DEVELOPMENT_MANUFACTURER.to_owned(),
                    shomei_se_sim::SimManufacturer::development_root_der().to_vec(),
                ));
            }
            let opts = InitOptions {
                name,
                base_url,
                crl_shards,
                manufacturer_roots,
            };
            match Home::init(&data, &opts, SystemClock.now()) {
                Ok(()) => {}
                Err(e @ (ServerError::AlreadyInitialised(_) | ServerError::BadInput(_))) => {
                    return Err(Failure::input(e.to_string()));
                }
                Err(e) => return Err(e).context("authority init failed"),
            }
            let dir = data.display().to_string();
            emit(
                json,
                &json!({"data": dir, "operator_token_file": data.join("operator.token"), "sign_root": data.join("ca/sign.pem"), "auth_root": data.join("ca/auth.pem"), "crl_shards": crl_shards, "trusts_development_manufacturer": !no_development_manufacturer}),
                &format!(
                    "authority created in {dir}\n  trust anchors: {dir}/ca/sign.pem, {dir}/ca/auth.pem\n  operator token: {dir}/operator.token\n{}next: shomei authority serve --data {dir}",
                    if no_development_manufacturer {
                        ""
                    } else {
                        "  WARNING: trusts the development secure-element manufacturer (public key; testing only; --no-development-manufacturer to refuse it)\n"
                    }
                ),
            );
            Ok(())
        }
        AuthorityCmd::Serve {
            data,
            listen,
            database,
        } => {
            let state = match shomei_authority_server::load(
                &data,
                database.as_deref(),
                Arc::new(SystemClock),
            )
            .await
            {
                Ok(s) => s,
                Err(e @ ServerError::NotInitialised(_)) => {
                    return Err(Failure::input(e.to_string()));
                }
                Err(e) => return Err(e).context("cannot load the authority"),
            };
            let running = shomei_authority_server::serve(state, listen).await?;
            emit(
                json,
                &json!({"listen": running.addr.to_string(), "url": format!("http://{}", running.addr)}),
                &format!(
                    "authority listening on http://{} (Ctrl-C to stop)",
                    running.addr
                ),
            );
            running.wait().await;
            Ok(())
        }
        AuthorityCmd::RegisterRp {
            authority,
            operator_token_file,
            name,
            out,
        } => register_rp(&authority, &operator_token_file, &name, &out, json).await,
    }
}

/// `authority register-rp`: POST /v1/relying-parties, token to `out` (0600).
async fn register_rp(
    authority: &str,
    operator_token_file: &Path,
    name: &str,
    out: &Path,
    json: bool,
) -> anyhow::Result<()> {
    shomei_authority_server::linkage::check_name(name)
        .map_err(|e| Failure::input(format!("--name: {e}")))?;
    if out.exists() {
        return Err(Failure::input(format!(
            "{} already exists: choose another --out",
            out.display()
        )));
    }
    let token = std::fs::read_to_string(operator_token_file).map_err(|e| {
        Failure::input(format!(
            "cannot read {}: {e}",
            operator_token_file.display()
        ))
    })?;
    let base = authority.trim_end_matches('/');
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/relying-parties"))
        .bearer_auth(token.trim())
        .json(&json!({"name": name}))
        .send()
        .await
        .with_context(|| format!("cannot reach the authority at {base}"))?;
    let status = resp.status();
    let v: serde_json::Value = resp
        .json()
        .await
        .context("the authority answered with something other than JSON")?;
    if !status.is_success() {
        let msg = format!(
            "the authority refused ({}): {}",
            v["code"].as_str().unwrap_or("unknown"),
            v["detail"].as_str().unwrap_or("no detail")
        );
        return Err(if status.is_client_error() {
            Failure::input(msg)
        } else {
            anyhow::anyhow!(msg)
        });
    }
    let (Some(id), Some(rp_token)) = (v["id"].as_str(), v["token"].as_str()) else {
        anyhow::bail!("the authority's answer lacks id or token");
    };
    write_secret(out, rp_token)
        .with_context(|| format!("registered {id}, but cannot write {}", out.display()))?;
    emit(
        json,
        &json!({"id": id, "name": name, "token_file": out}),
        &format!(
            "relying party {name} registered as {id}\n  token: {} (keep it secret; it is not shown again)",
            out.display()
        ),
    );
    Ok(())
}

/// Writes `text` to a new file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}
