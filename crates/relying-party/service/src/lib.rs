//! The relying party's service: online verification against an authority
//! (trust anchors, OCSP with nonce, CRL shards, linkage) and an OpenID
//! Connect provider ("log in with My Number") whose login page a phone or
//! card answers. The checks themselves live in `shomei-verifier`
//! (sans-IO); this crate is the HTTP adapter around them.

#![forbid(unsafe_code)]

pub mod api;
mod error;
pub mod jwt;
pub mod oidc;
pub mod online;

use std::net::SocketAddr;
use std::sync::Arc;

pub use error::ServiceError;
pub use online::{Anchors, Clock, OnlineVerifier, SignatureReport, StatusMode, system_clock};

/// What the service runs with.
pub struct AppState {
    /// Verification against the authority.
    pub verifier: OnlineVerifier,
    /// The OpenID Connect provider.
    pub provider: oidc::Provider,
}

/// `verifier serve` options.
#[derive(Clone, Debug)]
pub struct Config {
    /// The authority's base URL.
    pub authority: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The public issuer URL (default `http://LISTEN`).
    pub issuer: Option<String>,
    /// Registered clients.
    pub clients: Vec<oidc::Client>,
    /// OCSP or CRL.
    pub mode: StatusMode,
    /// The relying-party token for the authority's linkage service.
    pub linkage_token: Option<String>,
    /// Also trust the real JPKI roots.
    pub jpki: bool,
}

/// A running service.
pub struct RunningVerifier {
    /// Bound address.
    pub addr: SocketAddr,
    /// The issuer URL.
    pub issuer: String,
    /// Shared state.
    pub state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningVerifier {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server ends (Ctrl-C).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Connects to the authority (its trust anchors fetched from it) and
/// serves on `config.listen`; the ID-token key is `signer` (P-256),
/// `clock` is injected.
pub async fn start(
    config: Config,
    signer: Arc<dyn shomei_core::Signer>,
    clock: Clock,
) -> Result<RunningVerifier, ServiceError> {
    start_with(config, Anchors::Fetch, signer, clock).await
}

/// As [`start`], with the authority's trust anchors from `anchors`
/// (fetched, or pinned by the operator).
pub async fn start_with(
    config: Config,
    anchors: Anchors,
    signer: Arc<dyn shomei_core::Signer>,
    clock: Clock,
) -> Result<RunningVerifier, ServiceError> {
    let verifier = OnlineVerifier::connect(
        &config.authority,
        config.mode,
        config.linkage_token.clone(),
        config.jpki,
        anchors,
        clock,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServiceError::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let issuer = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let provider = oidc::Provider::new(&issuer, config.clients, jwt::JwtSigner::new(signer)?);
    let state = Arc::new(AppState { verifier, provider });
    let app = api::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            tokio::select! {
                _ = rx => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "verifier server failed");
        }
    });
    Ok(RunningVerifier {
        addr,
        issuer,
        state,
        task,
        shutdown: Some(tx),
    })
}
