//! The authority's registry: holders, cards, phones, certificates and their
//! status, CRL numbers, and the audit trail, behind one async trait
//! ([`Registry`]) with two back ends: embedded SQLite (the default) and
//! PostgreSQL. [`open`] picks one from a URL.
//!
//! * Every write is one transaction: it all lands, or none of it does.
//! * Status changes are compare-and-set ([`Registry::apply`]): a plan made
//!   from a stale read is refused with [`RegistryError::Conflict`].
//! * [`Registry::enrol`] is group-committed: concurrent enrolments share one
//!   transaction (a savepoint each) and so one durable commit.
//! * Phones ([`DeviceRecord`], [`DeviceStatus`]): at most one active phone per
//!   holder (a partial unique index); provisioning supersedes the earlier one
//!   and queues its wipe in the same transaction as the new certificates
//!   ([`Registry::provision_device`]). A phone is found by the SHA-256 of its
//!   device token; the token itself is never stored.
//! * Relying parties ([`RelyingPartyRecord`]) are found by the SHA-256 of
//!   their bearer token, like phones; a certificate is replaced at most once
//!   ([`Registry::successor`] follows the `replaces` links forward).
//! * Events have growing ids: [`Registry::events_since`] pages a holder's
//!   events by cursor (phone sync, event streams).
//! * The crate never reads the clock: every timestamp is a parameter.
//!   Timestamps are stored in UTC at microsecond precision (finer parts are
//!   dropped), years 1–9999.
//! * Errors never carry personal data (see [`RegistryError`]); nor may audit
//!   events (see [`Event`]).
//!
//! The schema lives in `migrations/{sqlite,postgres}/*.sql`, embedded in the
//! binary and applied by [`open`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod db;
mod error;
mod group;
mod migrate;
mod model;
mod store;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shomei_core::{BasicFour, CertClass, Plan, Serial, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use error::RegistryError;
pub use model::{
    Actor, CardRecord, CertRecord, DeviceProvisioning, DeviceRecord, DeviceStatus, Enrolment,
    Event, GroupCommitStats, HolderContact, HolderRecord, MAX_MDOC_PORTRAIT, MdocRecord,
    MdocStatusRow, ReaderRevocation, RelyingPartyRecord, RevokedEntry, StatusRow, WipeReason,
};

/// The authority's registry.
///
/// Implementations must be used from within the Tokio runtime they were
/// opened in (a background writer task lives there).
#[async_trait]
pub trait Registry: Send + Sync {
    /// Which back end this is: `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Stores a first issuance: the holder, their card, the card's
    /// certificates and the audit events, all or nothing. Group-committed
    /// with concurrent calls, but each call gets its own answer and a
    /// refused enrolment (e.g. [`RegistryError::Duplicate`] for a reused
    /// serial or holder id) leaves nothing behind.
    async fn enrol(&self, e: &Enrolment) -> Result<(), RegistryError>;

    /// Stores many enrolments in one transaction, a savepoint each, so one
    /// bad item does not sink the others. The outer error means the
    /// transaction as a whole failed and nothing was stored.
    async fn enrol_batch(
        &self,
        e: &[Enrolment],
    ) -> Result<Vec<Result<(), RegistryError>>, RegistryError>;

    /// Stores further certificates of existing holders (phone issuance,
    /// renewal) with their events, atomically. Links (`parent`, `pair`,
    /// `replaces`) may point at certificates stored before or in the same call.
    async fn add_certificates(
        &self,
        certs: &[CertRecord],
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// Stores a further card of an existing holder (re-issue) with its
    /// certificates and events, atomically.
    async fn add_card(
        &self,
        card: &CardRecord,
        certs: &[CertRecord],
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// One holder, if known.
    async fn holder(&self, id: &str) -> Result<Option<HolderRecord>, RegistryError>;

    /// One card, if known.
    async fn card(&self, id: &str) -> Result<Option<CardRecord>, RegistryError>;

    /// A holder's cards, oldest first.
    async fn holder_cards(&self, holder_id: &str) -> Result<Vec<CardRecord>, RegistryError>;

    /// One certificate, if known.
    async fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, RegistryError>;

    /// A holder's certificates, in issuance order.
    async fn holder_certificates(&self, holder_id: &str) -> Result<Vec<CertRecord>, RegistryError>;

    /// Applies a lifecycle plan atomically, with `events`.
    ///
    /// Compare-and-set: each change's `from` must equal the certificate's
    /// status as of `now` — the stored status, except that a stored active
    /// or suspended certificate whose `not_after` is before `now` counts as
    /// expired (as [`shomei_core::Credential::status_at`] sees it). On the
    /// first mismatch nothing is changed and the call fails with
    /// [`RegistryError::Conflict`] ([`RegistryError::NotFound`] for an
    /// unknown serial). Changes that are not lifecycle transitions, or whose
    /// reason does not fit (`Revoked` needs one, other targets none), are
    /// refused as [`RegistryError::Invalid`]. `status_changed_at` becomes `now`.
    async fn apply(
        &self,
        plan: &Plan,
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// Applies `plan` and adds `certs` in one transaction: renewal (the old
    /// certificate superseded, the new one linked to it by `replaces`). (A
    /// new phone replacing an old one is [`Registry::provision_device`].) Fails as [`Registry::apply`]
    /// or [`Registry::add_certificates`] do, changing nothing.
    async fn replace(
        &self,
        plan: &Plan,
        certs: &[CertRecord],
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// Changes a holder's basic four and applies `plan` (normally
    /// [`Plan::for_basic_four_change`]) in one transaction; `updated_at`
    /// becomes `now`. Fails as [`Registry::apply`] does, or with
    /// [`RegistryError::NotFound`] for an unknown holder, changing nothing.
    async fn change_basic_four(
        &self,
        holder_id: &str,
        new: &BasicFour,
        plan: &Plan,
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// The entries of one CRL: certificates of `class` in `shard` that are
    /// revoked (with their reason) or suspended (as `CertificateHold`) and
    /// whose `not_after` is not before `now`. Ordered by serial.
    async fn revoked_entries(
        &self,
        class: CertClass,
        shard: u32,
        now: Timestamp,
    ) -> Result<Vec<RevokedEntry>, RegistryError>;

    /// Atomically takes the next CRL number of `class`/`shard`; the first is 1.
    async fn next_crl_number(&self, class: CertClass, shard: u32) -> Result<u64, RegistryError>;

    /// The audit events about a holder, oldest first (in recording order).
    async fn events_for_holder(&self, holder_id: &str) -> Result<Vec<Event>, RegistryError>;

    /// The audit events about a certificate, oldest first.
    async fn events_for_certificate(&self, serial: &Serial) -> Result<Vec<Event>, RegistryError>;

    /// Every certificate's stored status, for warming an in-memory OCSP cache.
    async fn statuses(&self) -> Result<Vec<StatusRow>, RegistryError>;

    /// Registers a phone (without a device token), with its events.
    async fn add_device(
        &self,
        device: &DeviceRecord,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// One phone, if known.
    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>, RegistryError>;

    /// A holder's phones, oldest first.
    async fn holder_devices(&self, holder_id: &str) -> Result<Vec<DeviceRecord>, RegistryError>;

    /// Provisions a phone in one transaction: applies `p.plan` (compare-and-set,
    /// as [`Registry::apply`]), marks every phone of `p.wipe` `superseded` with
    /// a wipe queued (each must be `active`, else
    /// [`RegistryError::DeviceConflict`]), inserts the new phone with its
    /// token hash, its certificates, the holder's contact if given, and
    /// `events`. At most one phone per holder is active: inserting a second
    /// fails with [`RegistryError::Duplicate`]. Any failure changes nothing.
    async fn provision_device(
        &self,
        p: &DeviceProvisioning,
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// The phone whose device token hashes to `token_hash` (SHA-256), if any.
    async fn device_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<DeviceRecord>, RegistryError>;

    /// Queues a remote wipe of a phone and applies `plan` (normally revoking
    /// its live certificates) in one transaction, with `events`. An active
    /// phone becomes `lost` or `wipe_pending` (by `why`); a phone with a wipe
    /// already queued keeps its status. Returns the status after. A wiped
    /// phone is refused with [`RegistryError::DeviceConflict`], an unknown
    /// one with [`RegistryError::NotFound`]; a stale plan fails as in
    /// [`Registry::apply`]. Any failure changes nothing.
    async fn request_wipe(
        &self,
        device_id: &str,
        why: WipeReason,
        plan: &Plan,
        now: Timestamp,
        events: &[Event],
    ) -> Result<DeviceStatus, RegistryError>;

    /// Records that a phone erased its credentials: a phone with a wipe
    /// queued becomes `wiped` (`wiped_at` = `now`), with `events`. An active
    /// or already wiped phone is refused with [`RegistryError::DeviceConflict`].
    async fn confirm_wiped(
        &self,
        device_id: &str,
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// Sets (replaces) a holder's notification contact, with `events`.
    /// [`RegistryError::NotFound`] for an unknown holder.
    async fn set_contact(
        &self,
        contact: &HolderContact,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// A holder's notification contact, if one was set.
    async fn contact(&self, holder_id: &str) -> Result<Option<HolderContact>, RegistryError>;

    /// The holder's events recorded after the event with id `after` (0: from
    /// the start), oldest first, at most `limit`, each with its id: ids only
    /// grow, so the last id is the cursor to continue from.
    async fn events_since(
        &self,
        holder_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Event)>, RegistryError>;

    /// Records events on their own (e.g. "certificate used"), in one
    /// transaction, batched into multi-row inserts.
    async fn add_events(&self, events: &[Event]) -> Result<(), RegistryError>;

    /// Registers a relying party with the SHA-256 of its bearer token (32
    /// bytes), with `events`, atomically. A name, id or token hash already
    /// taken is refused with [`RegistryError::Duplicate`], changing nothing.
    async fn add_relying_party(
        &self,
        rp: &RelyingPartyRecord,
        token_hash: &[u8],
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// The relying party whose bearer token hashes to `token_hash` (SHA-256), if any.
    async fn relying_party_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<RelyingPartyRecord>, RegistryError>;

    /// The certificate that replaced `serial` (whose `replaces` is `serial`),
    /// if any. A certificate is replaced at most once (the schema enforces it).
    async fn successor(&self, serial: &Serial) -> Result<Option<CertRecord>, RegistryError>;

    /// The mobile ID of phone `device_id`, allocating its status-list index
    /// (the next free one, from 0) on first call with `events`, atomically,
    /// and keeping `portrait` (1 to [`MAX_MDOC_PORTRAIT`] bytes, else
    /// [`RegistryError::Invalid`]) with it. Later calls return the same
    /// record (with the portrait of the first call); a different
    /// `device_key` for the same phone is refused with
    /// [`RegistryError::Invalid`].
    async fn mdoc_for_device(
        &self,
        device_id: &str,
        device_key: &[u8],
        portrait: Option<&[u8]>,
        now: Timestamp,
        events: &[Event],
    ) -> Result<MdocRecord, RegistryError>;

    /// The mobile ID of phone `device_id`, if one was issued.
    async fn mdoc(&self, device_id: &str) -> Result<Option<MdocRecord>, RegistryError>;

    /// Every mobile ID with its phone's status, by index.
    async fn mdoc_statuses(&self) -> Result<Vec<MdocStatusRow>, RegistryError>;

    /// Records the revocation of a reader certificate with `events`,
    /// atomically. A serial already revoked is refused with
    /// [`RegistryError::Duplicate`] (`reader_revocations.serial`),
    /// changing nothing; `not_after` before `revoked_at` is
    /// [`RegistryError::Invalid`].
    async fn revoke_reader_certificate(
        &self,
        revocation: &ReaderRevocation,
        events: &[Event],
    ) -> Result<(), RegistryError>;

    /// The revocation of reader certificate `serial`, if it was revoked.
    async fn reader_revocation(
        &self,
        serial: &Serial,
    ) -> Result<Option<ReaderRevocation>, RegistryError>;

    /// Every revoked reader certificate not yet expired at `now`
    /// (`not_after >= now`), by serial: the reader CA's CRL.
    async fn reader_revocations(
        &self,
        now: Timestamp,
    ) -> Result<Vec<ReaderRevocation>, RegistryError>;

    /// Counters of the group-commit writer behind [`Registry::enrol`].
    fn group_commit_stats(&self) -> GroupCommitStats;

    /// Closes the connections; later calls fail with [`RegistryError::Backend`].
    async fn close(&self);
}

/// Connections kept by the SQLite reader pool.
const SQLITE_READERS: u32 = 4;
/// Connections kept by the PostgreSQL pool.
const POSTGRES_CONNECTIONS: u32 = 8;
/// How long SQLite waits on a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens (creating and migrating if needed) a registry.
///
/// * `postgres://…` or `postgresql://…`: PostgreSQL; the database must exist.
/// * `sqlite:PATH`, `sqlite://PATH` or a plain file path: SQLite, created if
///   missing, in WAL mode with `synchronous=FULL` (every commit durable),
///   foreign keys on and a busy timeout. `sqlite::memory:` gives a private
///   in-memory database (for tests).
///
/// Must be called within a Tokio runtime. Errors never repeat the URL (it
/// may hold a password).
pub async fn open(url: &str) -> Result<Arc<dyn Registry>, RegistryError> {
    let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        open_postgres(url).await?
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| RegistryError::BadUrl("not a valid sqlite: URL".into()))?;
        let memory = url.starts_with("sqlite::memory:") || url.contains("mode=memory");
        open_sqlite(options, memory).await?
    } else if url.is_empty() {
        return Err(RegistryError::BadUrl("empty".into()));
    } else if url.contains("://") {
        return Err(RegistryError::BadUrl(
            "unsupported scheme (use sqlite: or postgres://)".into(),
        ));
    } else {
        open_sqlite(SqliteConnectOptions::new().filename(url), false).await?
    };
    if let Err(e) = migrate::run(&db).await {
        db.close().await;
        return Err(e);
    }
    Ok(Arc::new(store::SqlRegistry::new(db)))
}

async fn open_sqlite(options: SqliteConnectOptions, memory: bool) -> Result<db::Db, RegistryError> {
    const OP: &str = "open sqlite";
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(if memory { 1 } else { 0 })
        .idle_timeout(if memory {
            None
        } else {
            Some(Duration::from_secs(600))
        })
        .max_lifetime(if memory {
            None
        } else {
            Some(Duration::from_secs(1800))
        });
    let write = writer
        .connect_with(options.clone())
        .await
        .map_err(|e| RegistryError::from_sqlx(OP, e))?;
    // An in-memory database lives in one connection: read through it too.
    let read = if memory {
        write.clone()
    } else {
        SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .connect_with(options)
            .await
            .map_err(|e| RegistryError::from_sqlx(OP, e))?
    };
    Ok(db::Db::Sqlite { write, read })
}

async fn open_postgres(url: &str) -> Result<db::Db, RegistryError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| RegistryError::BadUrl("not a valid postgres:// URL".into()))?
        .application_name("shomei-registry");
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|e| RegistryError::from_sqlx("open postgres", e))?;
    Ok(db::Db::Postgres(pool))
}
