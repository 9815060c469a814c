//! `shomei authority …`

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
    }
}
