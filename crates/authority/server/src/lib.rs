//! The authority's HTTP adapter (axum): trust anchors, CRLs, OCSP, the
//! operator's enrolment and lifecycle API, and the authority folder.
//!
//! All decisions live in `shomei-ca`, `shomei-core` and `shomei-pki`; this
//! crate moves bytes between HTTP, the registry, files and the clock.

#![forbid(unsafe_code)]
#![recursion_limit = "256"] // the OpenAPI document is one large json! literal

pub mod api;
mod error;
pub mod home;
pub mod linkage;
pub mod mdoc;
pub mod notify;
pub mod openapi;
mod phone;
pub mod publish;
pub mod reader_cert;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use error::{ServerError, problem};
pub use notify::{SmtpConfig, SmtpSecurity};
use shomei_ca::{Authority, AuthorityConfig};
use shomei_core::Timestamp;
use shomei_pki::profile::PublicationPoints;
use shomei_registry::Registry;
use tokio::net::TcpListener;

use crate::home::Home;
use crate::publish::{CrlPublisher, OcspService, StatusCache};

/// The clock, injected so tests can replay any date.
pub trait Clock: Send + Sync {
    /// Current time.
    fn now(&self) -> Timestamp;
}

/// The system clock (the one place the authority reads time).
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> Timestamp {
        time::OffsetDateTime::now_utc()
    }
}

/// Everything a request handler needs.
pub struct AppState {
    /// The authority core.
    pub authority: Authority,
    /// The registry.
    pub registry: Arc<dyn Registry>,
    /// Live certificate status (what OCSP answers from).
    pub status: Arc<StatusCache>,
    /// OCSP signing and response cache.
    pub ocsp: OcspService,
    /// CRL shards.
    pub crls: Arc<CrlPublisher>,
    /// Operator bearer token.
    pub operator_token: String,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Trust anchors (DER), for `/ca/*`.
    pub sign_root_der: Vec<u8>,
    /// Authentication root (DER).
    pub auth_root_der: Vec<u8>,
    /// Outstanding single-use challenges for holder proofs.
    pub challenges: api::Challenges,
    /// The mobile-ID IACA.
    pub iaca: Arc<shomei_pki::profile::Iaca>,
    /// The mdoc reader CA (certifies relying parties' readers).
    pub reader_ca: Arc<shomei_pki::profile::ReaderCa>,
    /// The reader CA's CRL (revoked reader certificates).
    pub reader_crl: reader_cert::ReaderCrl,
    /// The mobile-ID document signer (certificate DER, key).
    pub document_signer: (Vec<u8>, Arc<dyn shomei_core::Signer>),
    /// Secure-element manufacturer roots (DER) trusted for phone key
    /// attestation besides those in `manufacturers_dir` (from [`Options`]).
    pub manufacturer_roots: Vec<Vec<u8>>,
    /// `DIR/manufacturers`: read again for each provisioning, so a root
    /// trusted there (`shomei phone manufacturer --trust`) needs no restart.
    pub manufacturers_dir: std::path::PathBuf,
    /// Fans committed events out to event streams and e-mail.
    pub notifier: Arc<notify::Notifier>,
    /// Notes phone-certificate uses seen by OCSP and linkage lookups.
    pub usage: notify::UsageRecorder,
    /// Holder pseudonyms for relying parties (keyed by `DIR/keys/linkage.key`).
    pub pseudonyms: linkage::Pseudonyms,
    /// Signs the card face data written to every card (`DIR/keys/card-face.p8`).
    pub card_face_key: Arc<shomei_pki::EcdsaP256Signer>,
    /// The authority name (issuer of the card face).
    pub name: String,
    /// The public base URL (no trailing slash), e.g. for the status list URI.
    pub base_url: String,
    /// Becomes `true` when the server is stopping: long-lived responses
    /// (event streams) end, so a graceful shutdown does not wait on them.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Every trusted secure-element manufacturer root: the folder's, read
    /// now, then those given in [`Options`].
    pub fn trusted_manufacturer_roots(&self) -> Result<Vec<Vec<u8>>, ServerError> {
        let mut roots = home::load_manufacturer_roots(&self.manufacturers_dir)?;
        roots.extend(self.manufacturer_roots.iter().cloned());
        Ok(roots)
    }
}

/// What [`load_with`] takes besides the folder (all optional).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// SMTP relay for holder notifications; overrides `authority.json`'s `smtp`.
    pub smtp: Option<SmtpConfig>,
    /// Further secure-element manufacturer roots (DER) to trust, besides
    /// those in `DIR/manufacturers/`.
    pub manufacturer_roots: Vec<Vec<u8>>,
}

/// A running authority service.
pub struct RunningAuthority {
    /// Bound address.
    pub addr: SocketAddr,
    /// Shared state (tests and the sandbox inspect it).
    pub state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningAuthority {
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

/// Loads the authority in `dir`, opens the registry (`database` or the
/// embedded SQLite file), warms the status cache and builds the state.
/// Same as [`load_with`] with default [`Options`].
pub async fn load(
    dir: &Path,
    database: Option<&str>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<AppState>, ServerError> {
    load_with(dir, database, clock, Options::default()).await
}

/// As [`load`], with options; starts the notifier and certificate-use
/// writer tasks (so it must run within a Tokio runtime).
pub async fn load_with(
    dir: &Path,
    database: Option<&str>,
    clock: Arc<dyn Clock>,
    options: Options,
) -> Result<Arc<AppState>, ServerError> {
    let home = Home::open(dir)?;
    // A relay that cannot be used stops the start, before anything is opened.
    let mailer = match options.smtp.as_ref().or(home.config.smtp.as_ref()) {
        Some(smtp) => Some(smtp.mailer(dir)?),
        None => None,
    };
    // Folders made before the reader CA get one now.
    let reader_ca = Arc::new(home::load_or_create_reader_ca(
        dir,
        &home.config,
        clock.now(),
    )?);
    let url = database
        .map(str::to_owned)
        .unwrap_or_else(|| home.default_database());
    let registry = shomei_registry::open(&url).await?;
    let config = AuthorityConfig {
        points: PublicationPoints::new(&home.config.base_url),
        crl_shards: home.config.crl_shards,
    };
    let authority = Authority::new(config, home.sign_root.clone(), home.auth_root.clone());
    let status = Arc::new(StatusCache::warm(registry.as_ref()).await?);
    let ocsp = OcspService::new(&home)?;
    let crls = Arc::new(CrlPublisher::new(dir.join("crl")));
    let notifier = notify::Notifier::start(registry.clone(), status.clone(), mailer);
    let usage = notify::UsageRecorder::start(registry.clone(), notifier.clone());
    Ok(Arc::new(AppState {
        sign_root_der: home.sign_root.cert_der().to_vec(),
        auth_root_der: home.auth_root.cert_der().to_vec(),
        authority,
        registry,
        status,
        ocsp,
        crls,
        operator_token: home.operator_token,
        clock,
        challenges: api::Challenges::default(),
        iaca: home.iaca.clone(),
        reader_ca,
        reader_crl: reader_cert::ReaderCrl::default(),
        document_signer: home.document_signer.clone(),
        manufacturer_roots: options.manufacturer_roots,
        manufacturers_dir: dir.join(home::MANUFACTURERS_DIR),
        notifier,
        usage,
        pseudonyms: linkage::Pseudonyms::new(&home.linkage_key),
        card_face_key: home.card_face_key.clone(),
        name: home.config.name.clone(),
        base_url: home.config.base_url.trim_end_matches('/').to_owned(),
        shutdown: tokio::sync::watch::Sender::new(false),
    }))
}

/// Serves `state` on `listen` until stopped; also runs the CRL publisher.
pub async fn serve(
    state: Arc<AppState>,
    listen: SocketAddr,
) -> Result<RunningAuthority, ServerError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| ServerError::Io(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Io(e.to_string()))?;
    // Publish every shard once at start, then keep them fresh.
    publish::spawn_crl_loop(state.clone());
    let app = api::router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = state.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            tokio::select! {
                _ = rx => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            // End the event streams, or the graceful shutdown would wait on them forever.
            stopping.shutdown.send_replace(true);
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(RunningAuthority {
        addr,
        state,
        task,
        shutdown: Some(tx),
    })
}
