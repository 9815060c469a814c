//! Telling holders what happened to their certificates.
//!
//! Every event the registry records about a holder reaches the holder three
//! ways, all after the commit and none on the request's path:
//!
//! * **sync**: the phone reads `events_since` with its cursor
//!   (`GET /v1/devices/{id}/sync`);
//! * **stream**: `GET /v1/holders/{id}/events/stream` (server-sent events)
//!   reads the same table; a [`tokio::sync::broadcast`] channel only says
//!   *which holder* has news, so a slow or lagging subscriber re-reads from
//!   its cursor and never misses or duplicates an event;
//! * **e-mail**, if the holder opted in: a notifier task sends one plain-text
//!   message per commit and holder over SMTP (lettre) to the configured
//!   relay — STARTTLS required by default, or implicit TLS, with optional
//!   authentication (see [`SmtpConfig`]) — retrying a few times with
//!   back-off; failures are logged (without the address) and dropped. The message says what
//!   happened, when and to which certificate class — never the basic four,
//!   the My Number or the address itself.
//!
//! "Certificate used" events come from the OCSP responder and from linkage
//! lookups by relying parties: [`UsageRecorder`] notes phone-class serials
//! (at most one per serial and source per [`USAGE_DEBOUNCE`]; a source is
//! OCSP, or the relying party that looked), and a background task writes
//! them in batches with `Registry::add_events`, off the request path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shomei_core::{CertClass, Serial, Timestamp};
use shomei_registry::{Actor, Event, Registry};
use tokio::sync::{broadcast, mpsc};

use crate::error::ServerError;
use crate::publish::StatusCache;

/// How the connection to the SMTP relay is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS is required (RFC 3207): the session turns to TLS before
    /// `MAIL FROM` and before any `AUTH`; a relay that does not offer it gets
    /// no mail. The default, for a submission port such as 587.
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314 implicit TLS, port 465).
    Tls,
    /// No TLS: only for a relay on this machine or on a closed network.
    /// Credentials are refused in this mode (they would travel in clear).
    None,
}

/// Where and how to send notification e-mail (`authority.json`'s `smtp`).
///
/// ```json
/// "smtp": {"host": "mail.example.jp", "port": 587, "from": "notice@example.jp",
///          "security": "starttls", "ca_file": "smtp-ca.pem",
///          "username": "shomei", "password_file": "smtp.password"}
/// ```
///
/// The relay's certificate is checked against `ca_file` when given (a relay
/// under a private CA: only those anchors are trusted), else against the
/// system's roots; its name must match `host`. The password lives in its own
/// file (first line), never in `authority.json`. Relative paths are read from
/// the authority folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    /// Relay host name or address (what the relay's certificate must name).
    pub host: String,
    /// Relay port (587 for STARTTLS, 465 for TLS, 25, or a test port).
    pub port: u16,
    /// The `From:` address of notifications.
    pub from: String,
    /// Connection protection; STARTTLS when absent (see [`Self::security`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SmtpSecurity>,
    /// PEM file of the CA certificate(s) that issued the relay's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// User name for SMTP AUTH (PLAIN or LOGIN, only over TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File whose first line is the SMTP AUTH password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl SmtpConfig {
    /// A plain relay with no TLS and no authentication (a local MTA or a test sink).
    pub fn plain(host: impl Into<String>, port: u16, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            from: from.into(),
            security: Some(SmtpSecurity::None),
            ca_file: None,
            username: None,
            password_file: None,
        }
    }

    /// The connection protection in force: STARTTLS unless set.
    pub fn security(&self) -> SmtpSecurity {
        self.security.unwrap_or_default()
    }

    /// Checks the settings and reads their files (relative to `dir`): a
    /// mistake stops the authority at start with one line naming the setting,
    /// rather than losing every notification later. Messages never carry
    /// the password.
    pub fn mailer(&self, dir: &Path) -> Result<Mailer, ServerError> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
        use lettre::{AsyncSmtpTransport, Tokio1Executor};

        let bad = |m: String| ServerError::Config(format!("smtp: {m}"));
        let from: lettre::message::Mailbox = self
            .from
            .parse()
            .map_err(|_| bad("\"from\" is not an e-mail address".into()))?;
        if self.host.trim().is_empty() {
            return Err(bad("\"host\" is empty".into()));
        }
        let credentials = match (&self.username, &self.password_file) {
            (None, None) => None,
            (Some(user), Some(file)) => {
                let path = dir.join(file);
                // Like ssh with a key file: a password others may read is refused.
                let mode = std::fs::metadata(&path)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
                    .unwrap_or(0);
                if mode & 0o077 != 0 {
                    return Err(bad(format!(
                        "password_file {} may be read by others (mode {:o}): chmod 600 it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    bad(format!(
                        "cannot read password_file {}: {}",
                        path.display(),
                        e.kind()
                    ))
                })?;
                let password = text.lines().next().unwrap_or_default().to_owned();
                if password.is_empty() {
                    return Err(bad(format!("password_file {} is empty", path.display())));
                }
                Some(Credentials::new(user.clone(), password))
            }
            (Some(_), None) => return Err(bad("\"username\" needs \"password_file\"".into())),
            (None, Some(_)) => return Err(bad("\"password_file\" needs \"username\"".into())),
        };
        if self.security.is_none() && is_loopback(&self.host) {
            // Before TLS was supported a local relay needed no setting; now
            // it must offer STARTTLS or be marked plain, or mail is dropped.
            tracing::warn!(
                host = %self.host,
                "smtp: no \"security\" set, so STARTTLS is required; a local relay without TLS needs \"security\": \"none\""
            );
        }
        let tls = match self.security() {
            SmtpSecurity::None => {
                if credentials.is_some() {
                    return Err(bad(
                        "credentials need \"security\": \"starttls\" or \"tls\" (they would travel in clear)"
                            .into(),
                    ));
                }
                if !is_loopback(&self.host) {
                    tracing::warn!(
                        host = %self.host,
                        "smtp: notification e-mail goes to the relay without TLS"
                    );
                }
                Tls::None
            }
            SmtpSecurity::Starttls | SmtpSecurity::Tls => {
                let mut params = TlsParameters::builder(self.host.clone());
                if let Some(file) = &self.ca_file {
                    let path = dir.join(file);
                    let pem = std::fs::read(&path).map_err(|e| {
                        bad(format!(
                            "cannot read ca_file {}: {}",
                            path.display(),
                            e.kind()
                        ))
                    })?;
                    let ders = shomei_pki::pem::pem_certificates(&pem);
                    if ders.is_empty() {
                        return Err(bad(format!(
                            "ca_file {} holds no PEM certificate",
                            path.display()
                        )));
                    }
                    params = params.certificate_store(CertificateStore::None);
                    for der in ders {
                        let anchor = Certificate::from_der(der).map_err(|_| {
                            bad(format!(
                                "ca_file {} holds a bad certificate",
                                path.display()
                            ))
                        })?;
                        params = params.add_root_certificate(anchor);
                    }
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| bad(format!("TLS settings: {e}")))?;
                if self.security() == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.as_str())
                .port(self.port)
                .tls(tls)
                .timeout(Some(Duration::from_secs(10)));
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A checked relay: the transport (TLS and credentials set) and the sender.
#[derive(Clone)]
pub struct Mailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Mailer {
    // Only the sender: the transport holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Attempts per message before it is dropped.
pub const MAIL_ATTEMPTS: u32 = 4;
/// Wait before the first retry (doubled after each failure).
pub const MAIL_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Commits whose e-mail may wait for the notifier before new ones are dropped.
const MAIL_QUEUE: usize = 1024;
/// Messages sent at once.
const MAIL_CONCURRENCY: usize = 4;
/// Holder ids a lagging stream subscriber may fall behind by before it re-reads.
const STREAM_QUEUE: usize = 1024;

/// Fans committed events out to streams and e-mail.
pub struct Notifier {
    stream: broadcast::Sender<Arc<str>>,
    mail: Option<mpsc::Sender<Vec<Event>>>,
}

impl Notifier {
    /// A notifier; with a mailer, also starts the mail task (needs a Tokio runtime).
    pub fn start(
        registry: Arc<dyn Registry>,
        status: Arc<StatusCache>,
        mailer: Option<Mailer>,
    ) -> Arc<Self> {
        let (stream, _) = broadcast::channel(STREAM_QUEUE);
        let mail = mailer.map(|mailer| {
            let (tx, rx) = mpsc::channel(MAIL_QUEUE);
            tokio::spawn(mail_task(mailer, registry, status, rx));
            tx
        });
        Arc::new(Self { stream, mail })
    }

    /// Call after a registry commit that recorded `events`.
    pub fn committed(&self, events: &[Event]) {
        let mut holders: Vec<&str> = events
            .iter()
            .filter_map(|e| e.holder_id.as_deref())
            .collect();
        holders.sort_unstable();
        holders.dedup();
        if holders.is_empty() {
            return;
        }
        for h in holders {
            // No subscriber is not an error.
            let _ = self.stream.send(Arc::from(h));
        }
        if let Some(tx) = &self.mail
            && tx.try_send(events.to_vec()).is_err()
        {
            tracing::warn!("notification e-mail queue full or closed: a notification was dropped");
        }
    }

    /// Holder ids with new events, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.stream.subscribe()
    }
}

async fn mail_task(
    mailer: Mailer,
    registry: Arc<dyn Registry>,
    status: Arc<StatusCache>,
    mut rx: mpsc::Receiver<Vec<Event>>,
) {
    let Mailer { transport, from } = mailer;
    let gate = Arc::new(tokio::sync::Semaphore::new(MAIL_CONCURRENCY));
    while let Some(events) = rx.recv().await {
        let mut by_holder: Vec<(String, Vec<Event>)> = Vec::new();
        for e in events {
            let Some(h) = e.holder_id.clone() else {
                continue;
            };
            match by_holder.iter_mut().find(|(id, _)| *id == h) {
                Some((_, list)) => list.push(e),
                None => by_holder.push((h, vec![e])),
            }
        }
        for (holder, list) in by_holder {
            let contact = match registry.contact(&holder).await {
                Ok(Some(c)) if c.notify_email => c,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a holder's contact: notification skipped");
                    continue;
                }
            };
            let Some(to) = contact
                .email
                .as_deref()
                .and_then(|a| a.parse::<lettre::message::Mailbox>().ok())
            else {
                tracing::warn!(holder = %holder, "stored e-mail address is not usable");
                continue;
            };
            let message = match compose(&from, to, &list, &status) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build a notification e-mail");
                    continue;
                }
            };
            let Ok(permit) = gate.clone().acquire_owned().await else {
                return;
            };
            let transport = transport.clone();
            tokio::spawn(async move {
                send_with_retries(&transport, message, &holder).await;
                drop(permit);
            });
        }
    }
}

async fn send_with_retries(
    transport: &lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    message: lettre::Message,
    holder: &str,
) {
    use lettre::AsyncTransport;
    let mut delay = MAIL_RETRY_DELAY;
    for attempt in 1..=MAIL_ATTEMPTS {
        let e = match transport.send(message.clone()).await {
            Ok(_) => {
                tracing::info!(holder = %holder, "notification e-mail sent");
                return;
            }
            Err(e) => e,
        };
        // The relay's reply text may quote the recipient: log only its kind and code.
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        let kind = if e.is_permanent() {
            "permanent"
        } else if e.is_transient() {
            "transient"
        } else if e.is_timeout() {
            "timeout"
        } else if e.is_tls() {
            // e.g. the relay's certificate is not trusted or names another host.
            "tls"
        } else {
            "connection"
        };
        if attempt == MAIL_ATTEMPTS || e.is_permanent() {
            tracing::error!(holder = %holder, attempt, kind, code = %code, "notification e-mail dropped");
            return;
        }
        tracing::warn!(holder = %holder, attempt, kind, code = %code, "notification e-mail failed; retrying");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// What an event means to the holder, in one line (never personal data).
fn describe(e: &Event) -> String {
    let reason = e
        .detail
        .get("reason")
        .and_then(|r| r.as_str())
        .map(|r| format!(" (reason: {r})"))
        .unwrap_or_default();
    match e.action.as_str() {
        "issued" => "a certificate was issued".into(),
        "renewed" => "a certificate was renewed".into(),
        "revoked" => format!("a certificate was revoked{reason}"),
        "suspended" => "a certificate was suspended".into(),
        "resumed" => "a suspended certificate was resumed".into(),
        "expired" => "a certificate expired".into(),
        "used" => match &e.actor {
            Actor::RelyingParty(name) => {
                format!("a phone certificate was used: relying party {name} looked it up")
            }
            _ => "a phone certificate was used (a status check was made for it)".into(),
        },
        "phone_provisioned" => "your certificates were put on a new phone".into(),
        "wipe_requested" => format!("a remote wipe of a phone was requested{reason}"),
        "retired" => "a phone retired its certificates before sale or disposal".into(),
        "wiped" => "a phone confirmed it erased its certificates".into(),
        "basic_four_changed" => {
            "your registered details changed (the details are not repeated here)".into()
        }
        "contact_changed" => "your notification settings changed".into(),
        "enrolled" => "you were enrolled".into(),
        other => format!("{other} (see your phone for details)"),
    }
}

/// The message: plain ASCII text in short lines (sent as 7bit), a few
/// lines per event: when, what, which certificate.
fn compose(
    from: &lettre::message::Mailbox,
    to: lettre::message::Mailbox,
    events: &[Event],
    status: &StatusCache,
) -> Result<lettre::Message, lettre::error::Error> {
    let mut body = String::from(
        "Shomei - notice about your My Number certificates\r\n\
         ==================================================\r\n\r\n",
    );
    for e in events {
        body.push_str(&format!("- {}\r\n  {}\r\n", when(e.at), describe(e)));
        if let Some(serial) = &e.serial {
            match status.class_of(serial) {
                Some(class) => body.push_str(&format!(
                    "  {} certificate, serial {}\r\n",
                    class.as_str(),
                    serial.to_hex()
                )),
                None => body.push_str(&format!("  serial {}\r\n", serial.to_hex())),
            }
        }
        body.push_str("\r\n");
    }
    body.push_str(
        "If this was not you, suspend your certificates at once with your\r\n\
         card, or call the authority's hotline.\r\n\r\n\
         This message never contains your name, address, birth date, sex\r\n\
         or My Number. Do not reply to it.\r\n",
    );
    let subject = match events {
        [one] => format!("Shomei: {}", describe(one)),
        _ => format!("Shomei: {} changes to your certificates", events.len()),
    };
    // 7bit when it fits (it always should): readable as received.
    let body = lettre::message::Body::new_with_encoding(
        body,
        lettre::message::header::ContentTransferEncoding::SevenBit,
    )
    .unwrap_or_else(lettre::message::Body::new);
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(body)
}

/// `2026-11-21 15:18:34 UTC (2026-11-22 00:18 JST)`.
fn when(at: Timestamp) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let jst = utc.to_offset(time::UtcOffset::from_hms(9, 0, 0).unwrap_or(time::UtcOffset::UTC));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC ({:04}-{:02}-{:02} {:02}:{:02} JST)",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        jst.year(),
        u8::from(jst.month()),
        jst.day(),
        jst.hour(),
        jst.minute()
    )
}

/// Checks an e-mail address given for notifications: 3–254 bytes, one `@`,
/// no spaces or control characters (no header injection), and parseable.
pub fn check_email(raw: &str) -> Result<String, &'static str> {
    let a = raw.trim();
    if !(3..=254).contains(&a.len()) {
        return Err("notify_email must be 3 to 254 characters");
    }
    if a.chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>()[],;:\\\"".contains(c))
        || a.matches('@').count() != 1
    {
        return Err("notify_email is not a plain e-mail address");
    }
    a.parse::<lettre::Address>()
        .map_err(|_| "notify_email is not a valid e-mail address")?;
    Ok(a.to_owned())
}

/// How long after one "used" event of a serial the next may be recorded.
pub const USAGE_DEBOUNCE: time::Duration = time::Duration::minutes(1);
/// How long the usage writer gathers notes into one batch.
const USAGE_BATCH_DELAY: Duration = Duration::from_millis(200);
/// Most notes per batch.
const USAGE_BATCH: usize = 500;
/// Notes that may wait for the writer; more are dropped (never blocking OCSP).
const USAGE_QUEUE: usize = 10_000;
/// Serials remembered for debouncing before old entries are pruned.
const USAGE_REMEMBERED: usize = 100_000;

/// One noted use, waiting for the writer.
struct Use {
    serial: Serial,
    at: Timestamp,
    actor: Actor,
    via: &'static str,
}

/// Debounce key: the serial and who used it (`None`: an OCSP query).
type UseKey = (Serial, Option<String>);

/// Notes uses of phone certificates seen by the OCSP responder and by
/// linkage lookups.
pub struct UsageRecorder {
    last: Mutex<HashMap<UseKey, Timestamp>>,
    tx: mpsc::Sender<Use>,
}

impl UsageRecorder {
    /// A recorder and its writer task (needs a Tokio runtime).
    pub fn start(registry: Arc<dyn Registry>, notifier: Arc<Notifier>) -> Self {
        let (tx, rx) = mpsc::channel(USAGE_QUEUE);
        tokio::spawn(usage_task(registry, notifier, rx));
        Self {
            last: Mutex::new(HashMap::new()),
            tx,
        }
    }

    /// Notes that a status request asked about `serials` at `now`. Only
    /// phone-class serials count, at most once per [`USAGE_DEBOUNCE`] each.
    /// Never waits: a full queue drops the note.
    pub fn note(&self, serials: &[Serial], status: &StatusCache, now: Timestamp) {
        for serial in serials {
            if !status.class_of(serial).is_some_and(CertClass::is_phone) {
                continue;
            }
            self.push(
                Use {
                    serial: serial.clone(),
                    at: now,
                    actor: Actor::System,
                    via: "ocsp",
                },
                None,
            );
        }
    }

    /// Notes that `actor` (a relying party, or the operator) looked up the
    /// phone certificate `serial` at `now` (a linkage lookup): at most once
    /// per serial and actor per [`USAGE_DEBOUNCE`]. Never waits.
    pub fn note_lookup(&self, serial: &Serial, actor: Actor, now: Timestamp) {
        let who = match &actor {
            Actor::RelyingParty(n) => format!("relying_party:{n}"),
            Actor::Operator(o) => format!("operator:{o}"),
            Actor::Holder(h) => format!("holder:{h}"),
            Actor::System => "system".to_owned(),
        };
        self.push(
            Use {
                serial: serial.clone(),
                at: now,
                actor,
                via: "linkage",
            },
            Some(who),
        );
    }

    fn push(&self, u: Use, who: Option<String>) {
        let now = u.at;
        let key = (u.serial.clone(), who);
        let fresh = match self.last.lock() {
            Ok(mut last) => {
                if last.len() >= USAGE_REMEMBERED {
                    last.retain(|_, at| now - *at < USAGE_DEBOUNCE);
                }
                match last.get(&key) {
                    Some(at) if now - *at < USAGE_DEBOUNCE => false,
                    _ => {
                        last.insert(key, now);
                        true
                    }
                }
            }
            Err(_) => false,
        };
        if fresh && self.tx.try_send(u).is_err() {
            tracing::warn!("certificate-use queue full: a use was not recorded");
        }
    }
}

async fn usage_task(
    registry: Arc<dyn Registry>,
    notifier: Arc<Notifier>,
    mut rx: mpsc::Receiver<Use>,
) {
    let mut holders: HashMap<Serial, String> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + USAGE_BATCH_DELAY;
        while batch.len() < USAGE_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            }
        }
        let mut events = Vec::with_capacity(batch.len());
        for u in batch {
            let holder = match holders.get(&u.serial) {
                Some(h) => h.clone(),
                None => match registry.certificate(&u.serial).await {
                    Ok(Some(c)) => {
                        if holders.len() >= USAGE_REMEMBERED {
                            holders.clear();
                        }
                        holders.insert(u.serial.clone(), c.holder_id.clone());
                        c.holder_id
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot record a certificate use");
                        continue;
                    }
                },
            };
            events.push(Event {
                at: u.at,
                actor: u.actor,
                action: "used".into(),
                holder_id: Some(holder),
                serial: Some(u.serial),
                detail: serde_json::json!({"via": u.via}),
            });
        }
        if events.is_empty() {
            continue;
        }
        match registry.add_events(&events).await {
            Ok(()) => notifier.committed(&events),
            Err(e) => {
                tracing::warn!(error = %e, count = events.len(), "certificate uses not recorded")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_settings_default_to_required_starttls() {
        let c: SmtpConfig =
            serde_json::from_str(r#"{"host":"mail.example.jp","port":587,"from":"n@example.jp"}"#)
                .unwrap();
        assert_eq!((c.security, c.security()), (None, SmtpSecurity::Starttls));
        let c: SmtpConfig = serde_json::from_str(
            r#"{"host":"127.0.0.1","port":25,"from":"n@example.jp","security":"none"}"#,
        )
        .unwrap();
        assert_eq!(c, SmtpConfig::plain("127.0.0.1", 25, "n@example.jp"));
        // Written back, the optional files stay out of authority.json.
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            !text.contains("password_file") && !text.contains("ca_file"),
            "{text}"
        );
        assert!(is_loopback("localhost") && is_loopback("::1") && !is_loopback("10.0.0.1"));
    }

    #[test]
    fn e_mail_addresses_are_checked_against_header_injection() {
        assert_eq!(
            check_email(" taro@example.jp ").as_deref(),
            Ok("taro@example.jp")
        );
        for bad in [
            "",
            "a@",
            "no-at.example.jp",
            "a@b@c.jp",
            "taro@example.jp\r\nBcc: x@y.jp",
            "Taro <taro@example.jp>",
            "ta ro@example.jp",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
        assert!(check_email(&format!("{}@example.jp", "a".repeat(250))).is_err());
    }

    #[test]
    fn descriptions_name_no_details() {
        let e = Event {
            at: time::macros::datetime!(2026-11-21 0:00 UTC),
            actor: Actor::System,
            action: "revoked".into(),
            holder_id: Some("h".into()),
            serial: None,
            detail: serde_json::json!({"reason": "superseded", "device_id": "d_1"}),
        };
        assert_eq!(
            describe(&e),
            "a certificate was revoked (reason: superseded)"
        );
    }
}
