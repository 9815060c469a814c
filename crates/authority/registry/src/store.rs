//! The SQL implementation of [`Registry`], shared by both back ends.

use std::collections::HashSet;

use async_trait::async_trait;
use shomei_core::{
    BasicFour, BirthDate, CertClass, CertStatus, Plan, RevocationReason, Serial, Sex, StatusChange,
    Timestamp,
};

use crate::db::{Arg, Conn, Db, Row};
use crate::group::GroupCommit;
use crate::model::{
    Actor, CardRecord, CertRecord, DeviceProvisioning, DeviceRecord, DeviceStatus, Enrolment,
    Event, GroupCommitStats, HolderContact, HolderRecord, MAX_MDOC_PORTRAIT, MdocRecord,
    MdocStatusRow, ReaderRevocation, RelyingPartyRecord, RevokedEntry, StatusRow, WipeReason,
};
use crate::{Registry, RegistryError};

type Result<T> = core::result::Result<T, RegistryError>;

/// The registry over an SQL database (either back end).
pub(crate) struct SqlRegistry {
    db: Db,
    group: GroupCommit,
}

impl SqlRegistry {
    /// Wraps migrated pools and starts the group-commit writer (needs a Tokio runtime).
    pub(crate) fn new(db: Db) -> Self {
        let group = GroupCommit::start(db.clone());
        Self { db, group }
    }
}

// ---------------------------------------------------------------------------
// SQL

const CERT_COLS: &str = "serial, class, holder_id, card_id, device_id, status, reason, \
    status_changed_at, not_before, not_after, shard, parent_serial, pair_serial, \
    replaces_serial, der, issued_at";

const INSERT_CERT: &str = "INSERT INTO certificates (serial, class, holder_id, card_id, \
    device_id, status, reason, status_changed_at, not_before, not_after, shard, \
    parent_serial, pair_serial, replaces_serial, der, issued_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

const LINK_CERT: &str = "UPDATE certificates SET parent_serial = $2, pair_serial = $3, \
    replaces_serial = $4 WHERE serial = $1";

const INSERT_EVENTS: &str = "INSERT INTO events (at, actor_kind, actor_id, action, holder_id, \
    serial, detail) VALUES ";

/// Events written per INSERT statement (7 parameters each).
const EVENTS_PER_INSERT: usize = 100;

const EVENT_COLS: &str = "id, at, actor_kind, actor_id, action, holder_id, serial, detail";

const DEVICE_COLS: &str =
    "id, holder_id, kind, status, created_at, status_changed_at, wipe_requested_at, wiped_at";

const HOLDER_COLS: &str = "id, name, address, birth_date, sex, created_at, updated_at";

/// Compare-and-set on the status *as of now*: a stored active/suspended
/// certificate past its notAfter counts as `expired`, exactly as
/// `Credential::status_at` (and so the planner) sees it.
const CAS_STATUS: &str = "UPDATE certificates SET status = $1, reason = $2, \
    status_changed_at = $3 WHERE serial = $4 AND (CASE WHEN status IN ('active', 'suspended') \
    AND not_after < $3 THEN 'expired' ELSE status END) = $5";

// ---------------------------------------------------------------------------
// Writing

fn holder_args(h: &HolderRecord) -> Result<Vec<Arg>> {
    let b = &h.basic_four;
    Ok(vec![
        Arg::text(h.id.as_str()),
        Arg::text(b.name()),
        Arg::text(b.address()),
        Arg::text(b.birth_date().to_iso()),
        Arg::Int(Some(i64::from(b.sex().code()))),
        Arg::ts(h.created_at)?,
        Arg::ts(h.updated_at)?,
    ])
}

fn check_cert(c: &CertRecord) -> Result<()> {
    match (c.status, c.reason) {
        (CertStatus::Revoked, None) => Err(RegistryError::Invalid(format!(
            "certificate {} is revoked without a reason",
            c.serial
        ))),
        (CertStatus::Revoked, Some(RevocationReason::CertificateHold)) => {
            Err(RegistryError::Invalid(format!(
                "certificate {}: certificateHold is not a revocation reason",
                c.serial
            )))
        }
        (CertStatus::Revoked, Some(_)) | (_, None) => Ok(()),
        (_, Some(_)) => Err(RegistryError::Invalid(format!(
            "certificate {} has a reason but is not revoked",
            c.serial
        ))),
    }
}

/// The 16 values of one `certificates` row, in [`CERT_COLS`] order; each
/// link is written as `link` maps it (`None` leaves it for a second pass).
fn cert_args(
    cert: &CertRecord,
    link: impl Fn(&Option<Serial>) -> Option<String>,
) -> Result<Vec<Arg>> {
    check_cert(cert)?;
    Ok(vec![
        Arg::text(cert.serial.to_hex()),
        Arg::text(cert.class.as_str()),
        Arg::text(cert.holder_id.as_str()),
        Arg::opt_text(cert.card_id.as_deref()),
        Arg::opt_text(cert.device_id.as_deref()),
        Arg::text(cert.status.as_str()),
        Arg::Int(cert.reason.map(|r| i64::from(r.code()))),
        Arg::opt_ts(cert.status_changed_at)?,
        Arg::ts(cert.not_before)?,
        Arg::ts(cert.not_after)?,
        Arg::Int(Some(i64::from(cert.shard))),
        Arg::opt_text(link(&cert.parent)),
        Arg::opt_text(link(&cert.pair)),
        Arg::opt_text(link(&cert.replaces)),
        Arg::Bytes(cert.der.clone()),
        Arg::ts(cert.issued_at)?,
    ])
}

/// The 7 values of one `events` row.
fn event_args(e: &Event) -> Result<[Arg; 7]> {
    let detail = serde_json::to_string(&e.detail)
        .map_err(|_| RegistryError::Invalid("event detail is not serialisable".into()))?;
    Ok([
        Arg::ts(e.at)?,
        Arg::text(e.actor.kind()),
        Arg::opt_text(e.actor.id()),
        Arg::text(e.action.as_str()),
        Arg::opt_text(e.holder_id.as_deref()),
        Arg::opt_text(e.serial.as_ref().map(Serial::to_hex)),
        Arg::text(detail),
    ])
}

/// Inserts certificates. Links (`parent`, `pair`, `replaces`) that point into
/// the same batch are written in a second pass, so the foreign keys can stay
/// immediate (a deferred check would only fire at COMMIT, after the savepoint
/// that should have caught it).
async fn insert_certs(c: &mut Conn<'_>, op: &'static str, certs: &[CertRecord]) -> Result<()> {
    let in_batch: HashSet<&Serial> = certs.iter().map(|c| &c.serial).collect();
    let outside = |s: &Option<Serial>| -> Option<String> {
        s.as_ref()
            .filter(|s| !in_batch.contains(s))
            .map(Serial::to_hex)
    };
    for cert in certs {
        let args = cert_args(cert, |s| outside(s))?;
        c.execute(op, INSERT_CERT, &args).await?;
    }
    for cert in certs {
        let links = [&cert.parent, &cert.pair, &cert.replaces];
        if links
            .iter()
            .any(|l| l.as_ref().is_some_and(|s| in_batch.contains(s)))
        {
            let args = [
                Arg::text(cert.serial.to_hex()),
                Arg::opt_text(cert.parent.as_ref().map(Serial::to_hex)),
                Arg::opt_text(cert.pair.as_ref().map(Serial::to_hex)),
                Arg::opt_text(cert.replaces.as_ref().map(Serial::to_hex)),
            ];
            c.execute(op, LINK_CERT, &args).await?;
        }
    }
    Ok(())
}

/// Inserts events in order, as multi-row INSERTs of up to [`EVENTS_PER_INSERT`].
async fn insert_events(c: &mut Conn<'_>, op: &'static str, events: &[Event]) -> Result<()> {
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let mut sql = String::from(INSERT_EVENTS);
        let mut args = Vec::with_capacity(chunk.len() * 7);
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_placeholders(&mut sql, '$', i * 7, 7);
            args.extend(event_args(e)?);
        }
        c.execute(op, &sql, &args).await?;
    }
    Ok(())
}

/// Writes one enrolment on `c` (inside a transaction or savepoint).
pub(crate) async fn insert_enrolment(c: &mut Conn<'_>, e: &Enrolment) -> Result<()> {
    const OP: &str = "enrol";
    if let Some(bad) = e.certificates.iter().find(|c| c.holder_id != e.holder.id) {
        return Err(RegistryError::Invalid(format!(
            "certificate {} names another holder than the enrolment",
            bad.serial
        )));
    }
    c.execute(
        OP,
        &format!("INSERT INTO holders ({HOLDER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &holder_args(&e.holder)?,
    )
    .await?;
    c.execute(
        OP,
        "INSERT INTO cards (id, holder_id, created_at) VALUES ($1, $2, $3)",
        &[
            Arg::text(e.card_id.as_str()),
            Arg::text(e.holder.id.as_str()),
            Arg::ts(e.holder.created_at)?,
        ],
    )
    .await?;
    insert_certs(c, OP, &e.certificates).await?;
    insert_events(c, OP, &e.events).await
}

/// Appends `($b+1, …, $b+n)` to `sql`, or `(?, …, ?)` when `mark` is `?`.
fn push_placeholders(sql: &mut String, mark: char, b: usize, n: usize) {
    sql.push('(');
    for k in 1..=n {
        if k > 1 {
            sql.push_str(", ");
        }
        sql.push(mark);
        if mark == '$' {
            sql.push_str(&(b + k).to_string());
        }
    }
    sql.push(')');
}

/// Most parameters one statement may bind: SQLite's limit (32 766 since
/// 3.32) and PostgreSQL's (65 535, the wire protocol's 16-bit count).
fn max_params(c: &Conn<'_>) -> usize {
    if c.is_postgres() { 65_535 } else { 32_766 }
}

/// The placeholder mark for statements with many parameters: `$` (`$NNN`)
/// on PostgreSQL, a bare `?` on SQLite. SQLite keeps numbered and named
/// parameters in a list it searches one by one, on parsing and again when
/// sqlx asks each parameter's name to bind it, so the cost grows with the
/// square of the count (seconds for thousands); bare `?` are bound in order.
fn mark(c: &Conn<'_>) -> char {
    if c.is_postgres() { '$' } else { '?' }
}

/// One enrolment's rows, ready to bind, for the batched path.
struct Rows {
    holder: Vec<Arg>,
    card: [Arg; 3],
    /// 16 values per certificate; links into the same enrolment are NULL.
    certs: Vec<Vec<Arg>>,
    /// `[serial, parent, pair, replaces]` of each certificate that links
    /// into its own enrolment (set after the INSERT, see [`link_many`]).
    links: Vec<[Arg; 4]>,
    events: Vec<[Arg; 7]>,
}

/// Builds the rows of every enrolment of a batch, or `None` when the batch
/// cannot be written in bulk with exactly the per-enrolment outcome: an
/// enrolment that fails its own checks, or a certificate that links to one
/// of another enrolment of the same batch. The caller then takes the
/// per-enrolment path, which gives each its own answer.
fn batch_rows(items: &[&Enrolment]) -> Option<Vec<Rows>> {
    let all: HashSet<&Serial> = items
        .iter()
        .flat_map(|e| e.certificates.iter().map(|c| &c.serial))
        .collect();
    let mut out = Vec::with_capacity(items.len());
    for e in items {
        if e.certificates.iter().any(|c| c.holder_id != e.holder.id) {
            return None;
        }
        let own: HashSet<&Serial> = e.certificates.iter().map(|c| &c.serial).collect();
        let mut certs = Vec::with_capacity(e.certificates.len());
        let mut links = Vec::new();
        for cert in &e.certificates {
            let ls = [&cert.parent, &cert.pair, &cert.replaces];
            if ls
                .iter()
                .flat_map(|l| l.as_ref())
                .any(|s| all.contains(s) && !own.contains(s))
            {
                return None;
            }
            let outside = |s: &Option<Serial>| -> Option<String> {
                s.as_ref().filter(|s| !own.contains(s)).map(Serial::to_hex)
            };
            certs.push(cert_args(cert, outside).ok()?);
            if ls
                .iter()
                .any(|l| l.as_ref().is_some_and(|s| own.contains(s)))
            {
                links.push([
                    Arg::text(cert.serial.to_hex()),
                    Arg::opt_text(cert.parent.as_ref().map(Serial::to_hex)),
                    Arg::opt_text(cert.pair.as_ref().map(Serial::to_hex)),
                    Arg::opt_text(cert.replaces.as_ref().map(Serial::to_hex)),
                ]);
            }
        }
        let events = e
            .events
            .iter()
            .map(event_args)
            .collect::<Result<Vec<_>>>()
            .ok()?;
        out.push(Rows {
            holder: holder_args(&e.holder).ok()?,
            card: [
                Arg::text(e.card_id.as_str()),
                Arg::text(e.holder.id.as_str()),
                Arg::ts(e.holder.created_at).ok()?,
            ],
            certs,
            links,
            events,
        });
    }
    Some(out)
}

/// Inserts rows of `width` values each with as few multi-row INSERTs as the
/// back end's parameter limit allows, in order.
async fn insert_rows(
    c: &mut Conn<'_>,
    op: &'static str,
    head: &str,
    width: usize,
    rows: &[&[Arg]],
) -> Result<()> {
    let per_statement = max_params(c) / width;
    for chunk in rows.chunks(per_statement) {
        let mut sql = String::with_capacity(head.len() + chunk.len() * width * 6);
        sql.push_str(head);
        let mut args = Vec::with_capacity(chunk.len() * width);
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_placeholders(&mut sql, mark(c), i * width, width);
            args.extend_from_slice(row);
        }
        c.execute(op, &sql, &args).await?;
    }
    Ok(())
}

/// Sets the links of certificates inserted with them NULL, in one
/// `UPDATE certificates … FROM (VALUES (serial, parent, pair, replaces), …)`
/// per chunk (both back ends name the columns of a VALUES list `column1`…).
/// A join rather than `SET x = CASE serial WHEN … END`, whose cost grows
/// with the square of the batch (every row walks the WHEN list).
/// Writing the links in the INSERT instead, pointing at rows later in the
/// same statement, makes SQLite count pending foreign-key violations and
/// scan the table for every following row (see BENCHMARKS.md).
async fn link_many(c: &mut Conn<'_>, op: &'static str, links: &[&[Arg; 4]]) -> Result<()> {
    let per_statement = max_params(c) / 4;
    for chunk in links.chunks(per_statement) {
        let mut sql = String::from(
            "UPDATE certificates SET parent_serial = v.column2, pair_serial = v.column3, \
             replaces_serial = v.column4 FROM (VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            push_placeholders(&mut sql, mark(c), 4 * i, 4);
        }
        sql.push_str(") AS v WHERE certificates.serial = v.column1");
        let args: Vec<Arg> = chunk.iter().flat_map(|l| l.iter().cloned()).collect();
        let n = c.execute(op, &sql, &args).await?;
        if n != chunk.len() as u64 {
            return Err(RegistryError::Backend(format!(
                "{op}: {n} of {} certificate links were set",
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// Writes a whole batch in bulk: one multi-row INSERT each for holders,
/// cards, certificates and events (more only past the parameter limit),
/// then one UPDATE for the links inside enrolments.
async fn insert_batch(c: &mut Conn<'_>, rows: &[Rows]) -> Result<()> {
    const OP: &str = "enrol";
    let holders: Vec<&[Arg]> = rows.iter().map(|r| r.holder.as_slice()).collect();
    let head = format!("INSERT INTO holders ({HOLDER_COLS}) VALUES ");
    insert_rows(c, OP, &head, 7, &holders).await?;
    let cards: Vec<&[Arg]> = rows.iter().map(|r| r.card.as_slice()).collect();
    let head = "INSERT INTO cards (id, holder_id, created_at) VALUES ";
    insert_rows(c, OP, head, 3, &cards).await?;
    let certs: Vec<&[Arg]> = rows
        .iter()
        .flat_map(|r| r.certs.iter().map(Vec::as_slice))
        .collect();
    let head = format!("INSERT INTO certificates ({CERT_COLS}) VALUES ");
    insert_rows(c, OP, &head, 16, &certs).await?;
    let links: Vec<&[Arg; 4]> = rows.iter().flat_map(|r| r.links.iter()).collect();
    link_many(c, OP, &links).await?;
    let events: Vec<&[Arg]> = rows
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.as_slice()))
        .collect();
    insert_rows(c, OP, INSERT_EVENTS, 7, &events).await
}

/// Writes many enrolments in one transaction and commits. The outer error
/// means the transaction itself failed (nothing of it is stored); inner
/// errors are per enrolment.
///
/// A batch of two or more is first written in bulk ([`insert_batch`])
/// inside `SAVEPOINT batch`. If any of that fails (a duplicate, a
/// constraint), it is rolled back to the savepoint and written again one
/// enrolment at a time, a savepoint each, so that only the bad enrolment
/// fails, with the same error as on its own.
pub(crate) async fn enrol_many(db: &Db, items: &[&Enrolment]) -> Result<Vec<Result<()>>> {
    const OP: &str = "enrol";
    let mut tx = db.begin_write(OP).await?;
    let mut results = Vec::with_capacity(items.len());
    if let [only] = items {
        // One item: the transaction is its savepoint.
        match insert_enrolment(&mut tx.conn(), only).await {
            Ok(()) => {
                tx.commit(OP).await?;
                results.push(Ok(()));
            }
            Err(e) => {
                tx.rollback().await;
                results.push(Err(e));
            }
        }
        return Ok(results);
    }
    if let Some(rows) = batch_rows(items) {
        let mut c = tx.conn();
        if let Err(e) = c.raw(OP, "SAVEPOINT batch").await {
            tx.rollback().await;
            return Err(e);
        }
        let end = match insert_batch(&mut c, &rows).await {
            Ok(()) => match c.raw(OP, "RELEASE SAVEPOINT batch").await {
                Ok(()) => {
                    tx.commit(OP).await?;
                    return Ok(items.iter().map(|_| Ok(())).collect());
                }
                Err(e) => Err(e),
            },
            // Fall back to one savepoint per enrolment below.
            Err(_) => match c.raw(OP, "ROLLBACK TO SAVEPOINT batch").await {
                Ok(()) => c.raw(OP, "RELEASE SAVEPOINT batch").await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = end {
            tx.rollback().await;
            return Err(e);
        }
    }
    for item in items {
        let mut c = tx.conn();
        if let Err(e) = c.raw(OP, "SAVEPOINT enrolment").await {
            tx.rollback().await;
            return Err(e);
        }
        let r = insert_enrolment(&mut c, item).await;
        let end = if r.is_ok() {
            c.raw(OP, "RELEASE SAVEPOINT enrolment").await
        } else {
            match c.raw(OP, "ROLLBACK TO SAVEPOINT enrolment").await {
                Ok(()) => c.raw(OP, "RELEASE SAVEPOINT enrolment").await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = end {
            tx.rollback().await;
            return Err(e);
        }
        results.push(r);
    }
    tx.commit(OP).await?;
    Ok(results)
}

fn check_change(ch: &StatusChange) -> Result<()> {
    use CertStatus::*;
    let legal = matches!(
        (ch.from, ch.to),
        (Active, Suspended) | (Suspended, Active) | (Active | Suspended, Revoked | Expired)
    );
    if !legal {
        return Err(RegistryError::Invalid(format!(
            "certificate {}: {} to {} is not a lifecycle transition",
            ch.serial,
            ch.from.as_str(),
            ch.to.as_str()
        )));
    }
    match (ch.to, ch.reason) {
        (Revoked, Some(r)) if r != RevocationReason::CertificateHold => Ok(()),
        (Revoked, _) => Err(RegistryError::Invalid(format!(
            "certificate {}: revocation needs a reason other than certificateHold",
            ch.serial
        ))),
        (_, None) => Ok(()),
        (_, Some(_)) => Err(RegistryError::Invalid(format!(
            "certificate {}: only a revocation carries a reason",
            ch.serial
        ))),
    }
}

/// Applies every change of `plan` by compare-and-set; the first mismatch
/// fails the whole call (the caller rolls back).
async fn apply_plan(c: &mut Conn<'_>, op: &'static str, plan: &Plan, now: Timestamp) -> Result<()> {
    for ch in &plan.changes {
        check_change(ch)?;
        let args = [
            Arg::text(ch.to.as_str()),
            Arg::Int(ch.reason.map(|r| i64::from(r.code()))),
            Arg::ts(now)?,
            Arg::text(ch.serial.to_hex()),
            Arg::text(ch.from.as_str()),
        ];
        if c.execute(op, CAS_STATUS, &args).await? != 1 {
            let exists = c
                .fetch_optional(
                    op,
                    "SELECT serial FROM certificates WHERE serial = $1",
                    &[Arg::text(ch.serial.to_hex())],
                )
                .await?
                .is_some();
            return Err(if exists {
                RegistryError::Conflict {
                    serial: ch.serial.clone(),
                }
            } else {
                RegistryError::NotFound {
                    what: format!("certificate {}", ch.serial),
                }
            });
        }
    }
    Ok(())
}

/// Inserts or replaces a holder's contact.
async fn upsert_contact(c: &mut Conn<'_>, op: &'static str, k: &HolderContact) -> Result<()> {
    if k.notify_email && k.email.is_none() {
        return Err(RegistryError::Invalid(
            "e-mail notifications need an e-mail address".into(),
        ));
    }
    c.execute(
        op,
        "INSERT INTO holder_contacts (holder_id, email, notify_email, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (holder_id) DO UPDATE SET \
         email = excluded.email, notify_email = excluded.notify_email, \
         updated_at = excluded.updated_at",
        &[
            Arg::text(k.holder_id.as_str()),
            Arg::opt_text(k.email.as_deref()),
            Arg::Bool(Some(k.notify_email)),
            Arg::ts(k.updated_at)?,
        ],
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading

fn parse_serial(r: &Row, col: &'static str) -> Result<Serial> {
    r.text(col)?
        .parse()
        .map_err(|_| RegistryError::Corrupt(col.into()))
}

fn parse_opt_serial(r: &Row, col: &'static str) -> Result<Option<Serial>> {
    r.opt_text(col)?
        .map(|s| s.parse().map_err(|_| RegistryError::Corrupt(col.into())))
        .transpose()
}

fn parse_class(r: &Row, col: &'static str) -> Result<CertClass> {
    r.text(col)?
        .parse()
        .map_err(|_| RegistryError::Corrupt(col.into()))
}

fn parse_status(r: &Row, col: &'static str) -> Result<CertStatus> {
    r.text(col)?
        .parse()
        .map_err(|_| RegistryError::Corrupt(col.into()))
}

fn parse_reason(r: &Row, col: &'static str) -> Result<Option<RevocationReason>> {
    r.opt_int(col)?
        .map(|code| {
            u8::try_from(code)
                .ok()
                .and_then(RevocationReason::from_code)
                .ok_or_else(|| RegistryError::Corrupt(col.into()))
        })
        .transpose()
}

fn reader_revocation_from_row(r: &Row) -> Result<ReaderRevocation> {
    Ok(ReaderRevocation {
        serial: parse_serial(r, "serial")?,
        relying_party_id: r.text("relying_party_id")?,
        reason: parse_reason(r, "reason")?
            .ok_or_else(|| RegistryError::Corrupt("reader_revocations.reason".into()))?,
        revoked_at: r.ts("revoked_at")?,
        not_after: r.ts("not_after")?,
    })
}

const READER_REVOCATION_COLS: &str = "serial, relying_party_id, reason, revoked_at, not_after";

fn holder_from_row(r: &Row) -> Result<HolderRecord> {
    let corrupt = |col: &str| RegistryError::Corrupt(format!("holders.{col}"));
    let birth: BirthDate = r
        .text("birth_date")?
        .parse()
        .map_err(|_| corrupt("birth_date"))?;
    let sex = u8::try_from(r.int("sex")?)
        .ok()
        .and_then(|c| Sex::from_code(c).ok())
        .ok_or_else(|| corrupt("sex"))?;
    let basic_four = BasicFour::new(&r.text("name")?, &r.text("address")?, birth, sex)
        .map_err(|_| corrupt("name/address"))?;
    Ok(HolderRecord {
        id: r.text("id")?,
        basic_four,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn cert_from_row(r: &Row) -> Result<CertRecord> {
    let shard = u32::try_from(r.int("shard")?)
        .map_err(|_| RegistryError::Corrupt("certificates.shard".into()))?;
    Ok(CertRecord {
        serial: parse_serial(r, "serial")?,
        class: parse_class(r, "class")?,
        holder_id: r.text("holder_id")?,
        card_id: r.opt_text("card_id")?,
        device_id: r.opt_text("device_id")?,
        status: parse_status(r, "status")?,
        reason: parse_reason(r, "reason")?,
        status_changed_at: r.opt_ts("status_changed_at")?,
        not_before: r.ts("not_before")?,
        not_after: r.ts("not_after")?,
        shard,
        parent: parse_opt_serial(r, "parent_serial")?,
        pair: parse_opt_serial(r, "pair_serial")?,
        replaces: parse_opt_serial(r, "replaces_serial")?,
        der: r.bytes("der")?,
        issued_at: r.ts("issued_at")?,
    })
}

fn event_from_row(r: &Row) -> Result<Event> {
    let actor_id = r.opt_text("actor_id")?;
    let actor = match (r.text("actor_kind")?.as_str(), actor_id) {
        ("operator", Some(id)) => Actor::Operator(id),
        ("holder", Some(id)) => Actor::Holder(id),
        ("system", None) => Actor::System,
        ("relying_party", Some(name)) => Actor::RelyingParty(name),
        _ => return Err(RegistryError::Corrupt("events.actor_kind/actor_id".into())),
    };
    let detail = serde_json::from_str(&r.text("detail")?)
        .map_err(|_| RegistryError::Corrupt("events.detail".into()))?;
    Ok(Event {
        at: r.ts("at")?,
        actor,
        action: r.text("action")?,
        holder_id: r.opt_text("holder_id")?,
        serial: parse_opt_serial(r, "serial")?,
        detail,
    })
}

fn card_from_row(r: &Row) -> Result<CardRecord> {
    Ok(CardRecord {
        id: r.text("id")?,
        holder_id: r.text("holder_id")?,
        created_at: r.ts("created_at")?,
    })
}

fn device_from_row(r: &Row) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: r.text("id")?,
        holder_id: r.text("holder_id")?,
        kind: r.text("kind")?,
        status: r
            .text("status")?
            .parse()
            .map_err(|()| RegistryError::Corrupt("devices.status".into()))?,
        created_at: r.ts("created_at")?,
        status_changed_at: r.opt_ts("status_changed_at")?,
        wipe_requested_at: r.opt_ts("wipe_requested_at")?,
        wiped_at: r.opt_ts("wiped_at")?,
    })
}

fn relying_party_from_row(r: &Row) -> Result<RelyingPartyRecord> {
    Ok(RelyingPartyRecord {
        id: r.text("id")?,
        name: r.text("name")?,
        created_at: r.ts("created_at")?,
    })
}

const MDOC_COLS: &str = "idx, device_id, device_key, created_at, portrait";

fn mdoc_from_row(r: &Row) -> Result<MdocRecord> {
    Ok(MdocRecord {
        idx: u64::try_from(r.int("idx")?)
            .map_err(|_| RegistryError::Corrupt("mdocs.idx".into()))?,
        device_id: r.text("device_id")?,
        device_key: r.bytes("device_key")?,
        created_at: r.ts("created_at")?,
        portrait: r.opt_bytes("portrait")?,
    })
}

fn contact_from_row(r: &Row) -> Result<HolderContact> {
    Ok(HolderContact {
        holder_id: r.text("holder_id")?,
        email: r.opt_text("email")?,
        notify_email: r.bool("notify_email")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Inserts a phone (with its token hash, if any).
async fn insert_device(
    c: &mut Conn<'_>,
    op: &'static str,
    d: &DeviceRecord,
    token_hash: Option<&[u8]>,
) -> Result<()> {
    if token_hash.is_some_and(|h| h.len() != 32) {
        return Err(RegistryError::Invalid(
            "a device token hash is 32 bytes (SHA-256)".into(),
        ));
    }
    let mut args = vec![
        Arg::text(d.id.as_str()),
        Arg::text(d.holder_id.as_str()),
        Arg::text(d.kind.as_str()),
        Arg::text(d.status.as_str()),
        Arg::ts(d.created_at)?,
        Arg::opt_ts(d.status_changed_at)?,
        Arg::opt_ts(d.wipe_requested_at)?,
        Arg::opt_ts(d.wiped_at)?,
    ];
    let token = match token_hash {
        Some(h) => {
            args.push(Arg::Bytes(h.to_vec()));
            "$9"
        }
        None => "NULL",
    };
    c.execute(
        op,
        &format!(
            "INSERT INTO devices ({DEVICE_COLS}, token_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {token})"
        ),
        &args,
    )
    .await?;
    Ok(())
}

/// A phone's stored status, read inside the caller's transaction.
async fn device_status(c: &mut Conn<'_>, op: &'static str, id: &str) -> Result<DeviceStatus> {
    let row = c
        .fetch_optional(
            op,
            "SELECT status FROM devices WHERE id = $1",
            &[Arg::text(id)],
        )
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            what: "device".into(),
        })?;
    row.text("status")?
        .parse()
        .map_err(|()| RegistryError::Corrupt("devices.status".into()))
}

/// Moves a phone from `from` to `to` (compare-and-set), setting
/// `status_changed_at`, `wipe_requested_at` (if unset) and, for `Wiped`,
/// `wiped_at` to `now`, and dropping its mobile ID's portrait.
async fn move_device(
    c: &mut Conn<'_>,
    op: &'static str,
    id: &str,
    from: DeviceStatus,
    to: DeviceStatus,
    now: Timestamp,
) -> Result<()> {
    let wiped_at = if to == DeviceStatus::Wiped {
        Arg::ts(now)?
    } else {
        Arg::Ts(None)
    };
    let n = c
        .execute(
            op,
            "UPDATE devices SET status = $3, status_changed_at = $4, \
             wipe_requested_at = COALESCE(wipe_requested_at, $4), wiped_at = $5 \
             WHERE id = $1 AND status = $2",
            &[
                Arg::text(id),
                Arg::text(from.as_str()),
                Arg::text(to.as_str()),
                Arg::ts(now)?,
                wiped_at,
            ],
        )
        .await?;
    if n == 1 {
        // Every move leaves Active for good (superseded, lost, wiped): the
        // phone never shows its mobile ID again, so the portrait the holder
        // brought for it is dropped with the move (personal data kept no
        // longer than it is used; the row and its status index stay).
        c.execute(
            op,
            "UPDATE mdocs SET portrait = NULL WHERE device_id = $1",
            &[Arg::text(id)],
        )
        .await?;
        return Ok(());
    }
    // Changed under us (PostgreSQL re-checks the WHERE after waiting on the row lock).
    let found = device_status(c, op, id).await?;
    Err(RegistryError::DeviceConflict {
        device: id.to_owned(),
        status: found,
    })
}

impl SqlRegistry {
    async fn read_all<T>(
        &self,
        op: &'static str,
        sql: &str,
        args: &[Arg],
        f: fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut conn = self.db.read(op).await?;
        let rows = conn.conn().fetch_all(op, sql, args).await?;
        rows.iter().map(f).collect()
    }

    async fn read_one<T>(
        &self,
        op: &'static str,
        sql: &str,
        args: &[Arg],
        f: fn(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut conn = self.db.read(op).await?;
        let row = conn.conn().fetch_optional(op, sql, args).await?;
        row.as_ref().map(f).transpose()
    }
}

/// Runs `$body` (an async block using `$c: &mut Conn`) in a write
/// transaction: commit on `Ok`, roll back on `Err`.
macro_rules! in_write_tx {
    ($self:ident, $op:expr, |$c:ident| $body:expr) => {{
        let mut tx = $self.db.begin_write($op).await?;
        let result = {
            let mut conn = tx.conn();
            let $c = &mut conn;
            $body.await
        };
        match result {
            Ok(v) => {
                tx.commit($op).await?;
                Ok(v)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }};
}

#[async_trait]
impl Registry for SqlRegistry {
    fn backend(&self) -> &'static str {
        self.db.name()
    }

    async fn enrol(&self, e: &Enrolment) -> Result<()> {
        self.group.enrol(e.clone()).await
    }

    async fn enrol_batch(&self, e: &[Enrolment]) -> Result<Vec<Result<()>>> {
        if e.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<&Enrolment> = e.iter().collect();
        enrol_many(&self.db, &items).await
    }

    async fn add_certificates(&self, certs: &[CertRecord], events: &[Event]) -> Result<()> {
        const OP: &str = "add_certificates";
        in_write_tx!(self, OP, |c| async {
            insert_certs(c, OP, certs).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn add_card(
        &self,
        card: &CardRecord,
        certs: &[CertRecord],
        events: &[Event],
    ) -> Result<()> {
        const OP: &str = "add_card";
        in_write_tx!(self, OP, |c| async {
            c.execute(
                OP,
                "INSERT INTO cards (id, holder_id, created_at) VALUES ($1, $2, $3)",
                &[
                    Arg::text(card.id.as_str()),
                    Arg::text(card.holder_id.as_str()),
                    Arg::ts(card.created_at)?,
                ],
            )
            .await?;
            insert_certs(c, OP, certs).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn holder(&self, id: &str) -> Result<Option<HolderRecord>> {
        self.read_one(
            "holder",
            &format!("SELECT {HOLDER_COLS} FROM holders WHERE id = $1"),
            &[Arg::text(id)],
            holder_from_row,
        )
        .await
    }

    async fn card(&self, id: &str) -> Result<Option<CardRecord>> {
        self.read_one(
            "card",
            "SELECT id, holder_id, created_at FROM cards WHERE id = $1",
            &[Arg::text(id)],
            card_from_row,
        )
        .await
    }

    async fn holder_cards(&self, holder_id: &str) -> Result<Vec<CardRecord>> {
        self.read_all(
            "holder_cards",
            "SELECT id, holder_id, created_at FROM cards WHERE holder_id = $1 \
             ORDER BY created_at, id",
            &[Arg::text(holder_id)],
            card_from_row,
        )
        .await
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>> {
        self.read_one(
            "certificate",
            &format!("SELECT {CERT_COLS} FROM certificates WHERE serial = $1"),
            &[Arg::text(serial.to_hex())],
            cert_from_row,
        )
        .await
    }

    async fn holder_certificates(&self, holder_id: &str) -> Result<Vec<CertRecord>> {
        self.read_all(
            "holder_certificates",
            &format!(
                "SELECT {CERT_COLS} FROM certificates WHERE holder_id = $1 \
                 ORDER BY issued_at, serial"
            ),
            &[Arg::text(holder_id)],
            cert_from_row,
        )
        .await
    }

    async fn apply(&self, plan: &Plan, now: Timestamp, events: &[Event]) -> Result<()> {
        const OP: &str = "apply";
        in_write_tx!(self, OP, |c| async {
            apply_plan(c, OP, plan, now).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn replace(
        &self,
        plan: &Plan,
        certs: &[CertRecord],
        now: Timestamp,
        events: &[Event],
    ) -> Result<()> {
        const OP: &str = "replace";
        in_write_tx!(self, OP, |c| async {
            apply_plan(c, OP, plan, now).await?;
            insert_certs(c, OP, certs).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn change_basic_four(
        &self,
        holder_id: &str,
        new: &BasicFour,
        plan: &Plan,
        now: Timestamp,
        events: &[Event],
    ) -> Result<()> {
        const OP: &str = "change_basic_four";
        in_write_tx!(self, OP, |c| async {
            let n = c
                .execute(
                    OP,
                    "UPDATE holders SET name = $2, address = $3, birth_date = $4, sex = $5, \
                     updated_at = $6 WHERE id = $1",
                    &[
                        Arg::text(holder_id),
                        Arg::text(new.name()),
                        Arg::text(new.address()),
                        Arg::text(new.birth_date().to_iso()),
                        Arg::Int(Some(i64::from(new.sex().code()))),
                        Arg::ts(now)?,
                    ],
                )
                .await?;
            if n != 1 {
                return Err(RegistryError::NotFound {
                    what: "holder".into(),
                });
            }
            apply_plan(c, OP, plan, now).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn revoked_entries(
        &self,
        class: CertClass,
        shard: u32,
        now: Timestamp,
    ) -> Result<Vec<RevokedEntry>> {
        const OP: &str = "revoked_entries";
        let args = [
            Arg::text(class.as_str()),
            Arg::Int(Some(i64::from(shard))),
            Arg::ts(now)?,
        ];
        self.read_all(
            OP,
            "SELECT serial, status, reason, COALESCE(status_changed_at, issued_at) AS at \
             FROM certificates WHERE class = $1 AND shard = $2 \
             AND status IN ('revoked', 'suspended') AND not_after >= $3 ORDER BY serial",
            &args,
            |r| {
                let reason = match parse_status(r, "status")? {
                    CertStatus::Suspended => RevocationReason::CertificateHold,
                    _ => parse_reason(r, "reason")?
                        .ok_or_else(|| RegistryError::Corrupt("certificates.reason".into()))?,
                };
                Ok(RevokedEntry {
                    serial: parse_serial(r, "serial")?,
                    at: r.ts("at")?,
                    reason,
                })
            },
        )
        .await
    }

    async fn next_crl_number(&self, class: CertClass, shard: u32) -> Result<u64> {
        const OP: &str = "next_crl_number";
        let mut conn = self.db.write(OP).await?;
        let row = conn
            .conn()
            .fetch_optional(
                OP,
                "INSERT INTO crl_numbers (class, shard, number) VALUES ($1, $2, 1) \
                 ON CONFLICT (class, shard) DO UPDATE SET number = crl_numbers.number + 1 \
                 RETURNING number",
                &[Arg::text(class.as_str()), Arg::Int(Some(i64::from(shard)))],
            )
            .await?
            .ok_or_else(|| RegistryError::Backend(format!("{OP}: no row returned")))?;
        u64::try_from(row.int("number")?)
            .map_err(|_| RegistryError::Corrupt("crl_numbers.number".into()))
    }

    async fn events_for_holder(&self, holder_id: &str) -> Result<Vec<Event>> {
        self.read_all(
            "events_for_holder",
            "SELECT id, at, actor_kind, actor_id, action, holder_id, serial, detail FROM events \
             WHERE holder_id = $1 ORDER BY id",
            &[Arg::text(holder_id)],
            event_from_row,
        )
        .await
    }

    async fn events_for_certificate(&self, serial: &Serial) -> Result<Vec<Event>> {
        self.read_all(
            "events_for_certificate",
            "SELECT id, at, actor_kind, actor_id, action, holder_id, serial, detail FROM events \
             WHERE serial = $1 ORDER BY id",
            &[Arg::text(serial.to_hex())],
            event_from_row,
        )
        .await
    }

    async fn statuses(&self) -> Result<Vec<StatusRow>> {
        self.read_all(
            "statuses",
            "SELECT serial, class, status, reason, status_changed_at FROM certificates \
             ORDER BY serial",
            &[],
            |r| {
                Ok((
                    parse_serial(r, "serial")?,
                    parse_class(r, "class")?,
                    parse_status(r, "status")?,
                    parse_reason(r, "reason")?,
                    r.opt_ts("status_changed_at")?,
                ))
            },
        )
        .await
    }

    async fn add_device(&self, device: &DeviceRecord, events: &[Event]) -> Result<()> {
        const OP: &str = "add_device";
        in_write_tx!(self, OP, |c| async {
            insert_device(c, OP, device, None).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRecord>> {
        self.read_one(
            "device",
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"),
            &[Arg::text(id)],
            device_from_row,
        )
        .await
    }

    async fn holder_devices(&self, holder_id: &str) -> Result<Vec<DeviceRecord>> {
        self.read_all(
            "holder_devices",
            &format!(
                "SELECT {DEVICE_COLS} FROM devices WHERE holder_id = $1 ORDER BY created_at, id"
            ),
            &[Arg::text(holder_id)],
            device_from_row,
        )
        .await
    }

    async fn provision_device(
        &self,
        p: &DeviceProvisioning,
        now: Timestamp,
        events: &[Event],
    ) -> Result<()> {
        const OP: &str = "provision_device";
        let d = &p.device;
        if d.status != DeviceStatus::Active {
            return Err(RegistryError::Invalid(
                "a provisioned phone starts active".into(),
            ));
        }
        if let Some(bad) = p
            .certs
            .iter()
            .find(|c| c.holder_id != d.holder_id || c.device_id.as_deref() != Some(d.id.as_str()))
        {
            return Err(RegistryError::Invalid(format!(
                "certificate {} names another holder or device than the provisioning",
                bad.serial
            )));
        }
        if p.contact
            .as_ref()
            .is_some_and(|k| k.holder_id != d.holder_id)
        {
            return Err(RegistryError::Invalid(
                "the contact names another holder than the provisioning".into(),
            ));
        }
        in_write_tx!(self, OP, |c| async {
            apply_plan(c, OP, &p.plan, now).await?;
            for old in &p.wipe {
                let holder = c
                    .fetch_optional(
                        OP,
                        "SELECT holder_id FROM devices WHERE id = $1",
                        &[Arg::text(old.as_str())],
                    )
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        what: "device".into(),
                    })?
                    .text("holder_id")?;
                if holder != d.holder_id {
                    return Err(RegistryError::Invalid(format!(
                        "device {old} belongs to another holder"
                    )));
                }
                move_device(
                    c,
                    OP,
                    old,
                    DeviceStatus::Active,
                    DeviceStatus::Superseded,
                    now,
                )
                .await?;
            }
            insert_device(c, OP, d, Some(&p.token_hash)).await?;
            insert_certs(c, OP, &p.certs).await?;
            if let Some(k) = &p.contact {
                upsert_contact(c, OP, k).await?;
            }
            insert_events(c, OP, events).await
        })
    }

    async fn device_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<DeviceRecord>> {
        self.read_one(
            "device_by_token_hash",
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = $1"),
            &[Arg::Bytes(token_hash.to_vec())],
            device_from_row,
        )
        .await
    }

    async fn request_wipe(
        &self,
        device_id: &str,
        why: WipeReason,
        plan: &Plan,
        now: Timestamp,
        events: &[Event],
    ) -> Result<DeviceStatus> {
        const OP: &str = "request_wipe";
        in_write_tx!(self, OP, |c| async {
            let from = device_status(c, OP, device_id).await?;
            let to = match (from, why) {
                (DeviceStatus::Wiped, _) => {
                    return Err(RegistryError::DeviceConflict {
                        device: device_id.to_owned(),
                        status: from,
                    });
                }
                (DeviceStatus::Active, WipeReason::Lost) => DeviceStatus::Lost,
                (DeviceStatus::Active, WipeReason::Requested) => DeviceStatus::WipePending,
                (queued, _) => queued,
            };
            if to != from {
                move_device(c, OP, device_id, from, to, now).await?;
            }
            apply_plan(c, OP, plan, now).await?;
            insert_events(c, OP, events).await?;
            Ok(to)
        })
    }

    async fn confirm_wiped(&self, device_id: &str, now: Timestamp, events: &[Event]) -> Result<()> {
        const OP: &str = "confirm_wiped";
        in_write_tx!(self, OP, |c| async {
            let from = device_status(c, OP, device_id).await?;
            if !from.wipe_queued() {
                return Err(RegistryError::DeviceConflict {
                    device: device_id.to_owned(),
                    status: from,
                });
            }
            move_device(c, OP, device_id, from, DeviceStatus::Wiped, now).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn set_contact(&self, contact: &HolderContact, events: &[Event]) -> Result<()> {
        const OP: &str = "set_contact";
        in_write_tx!(self, OP, |c| async {
            upsert_contact(c, OP, contact).await?;
            insert_events(c, OP, events).await
        })
    }

    async fn contact(&self, holder_id: &str) -> Result<Option<HolderContact>> {
        self.read_one(
            "contact",
            "SELECT holder_id, email, notify_email, updated_at FROM holder_contacts \
             WHERE holder_id = $1",
            &[Arg::text(holder_id)],
            contact_from_row,
        )
        .await
    }

    async fn events_since(
        &self,
        holder_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Event)>> {
        self.read_all(
            "events_since",
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE holder_id = $1 AND id > $2 \
                 ORDER BY id LIMIT $3"
            ),
            &[
                Arg::text(holder_id),
                Arg::Int(Some(after)),
                Arg::Int(Some(i64::from(limit))),
            ],
            |r| Ok((r.int("id")?, event_from_row(r)?)),
        )
        .await
    }

    async fn add_events(&self, events: &[Event]) -> Result<()> {
        const OP: &str = "add_events";
        if events.is_empty() {
            return Ok(());
        }
        in_write_tx!(self, OP, |c| async { insert_events(c, OP, events).await })
    }

    async fn add_relying_party(
        &self,
        rp: &RelyingPartyRecord,
        token_hash: &[u8],
        events: &[Event],
    ) -> Result<()> {
        const OP: &str = "add_relying_party";
        if token_hash.len() != 32 {
            return Err(RegistryError::Invalid(
                "a relying-party token hash is 32 bytes (SHA-256)".into(),
            ));
        }
        in_write_tx!(self, OP, |c| async {
            c.execute(
                OP,
                "INSERT INTO relying_parties (id, name, token_hash, created_at) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    Arg::text(rp.id.as_str()),
                    Arg::text(rp.name.as_str()),
                    Arg::Bytes(token_hash.to_vec()),
                    Arg::ts(rp.created_at)?,
                ],
            )
            .await?;
            insert_events(c, OP, events).await
        })
    }

    async fn relying_party_by_token_hash(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<RelyingPartyRecord>> {
        self.read_one(
            "relying_party_by_token_hash",
            "SELECT id, name, created_at FROM relying_parties WHERE token_hash = $1",
            &[Arg::Bytes(token_hash.to_vec())],
            relying_party_from_row,
        )
        .await
    }

    async fn revoke_reader_certificate(
        &self,
        revocation: &ReaderRevocation,
        events: &[Event],
    ) -> Result<()> {
        const OP: &str = "revoke_reader_certificate";
        if revocation.not_after < revocation.revoked_at {
            return Err(RegistryError::Invalid(
                "a reader certificate revoked after it expired".into(),
            ));
        }
        in_write_tx!(self, OP, |c| async {
            c.execute(
                OP,
                "INSERT INTO reader_revocations (serial, relying_party_id, reason, revoked_at, \
                 not_after) VALUES ($1, $2, $3, $4, $5)",
                &[
                    Arg::text(revocation.serial.to_hex()),
                    Arg::text(revocation.relying_party_id.as_str()),
                    Arg::Int(Some(i64::from(revocation.reason.code()))),
                    Arg::ts(revocation.revoked_at)?,
                    Arg::ts(revocation.not_after)?,
                ],
            )
            .await?;
            insert_events(c, OP, events).await
        })
    }

    async fn reader_revocation(&self, serial: &Serial) -> Result<Option<ReaderRevocation>> {
        self.read_one(
            "reader_revocation",
            &format!("SELECT {READER_REVOCATION_COLS} FROM reader_revocations WHERE serial = $1"),
            &[Arg::text(serial.to_hex())],
            reader_revocation_from_row,
        )
        .await
    }

    async fn reader_revocations(&self, now: Timestamp) -> Result<Vec<ReaderRevocation>> {
        self.read_all(
            "reader_revocations",
            &format!(
                "SELECT {READER_REVOCATION_COLS} FROM reader_revocations \
                 WHERE not_after >= $1 ORDER BY serial"
            ),
            &[Arg::ts(now)?],
            reader_revocation_from_row,
        )
        .await
    }

    async fn successor(&self, serial: &Serial) -> Result<Option<CertRecord>> {
        self.read_one(
            "successor",
            &format!("SELECT {CERT_COLS} FROM certificates WHERE replaces_serial = $1"),
            &[Arg::text(serial.to_hex())],
            cert_from_row,
        )
        .await
    }

    async fn mdoc_for_device(
        &self,
        device_id: &str,
        device_key: &[u8],
        portrait: Option<&[u8]>,
        now: Timestamp,
        events: &[Event],
    ) -> Result<MdocRecord> {
        const OP: &str = "mdoc_for_device";
        if device_key.is_empty() || device_key.len() > 512 {
            return Err(RegistryError::Invalid(
                "a device key is 1 to 512 bytes of SPKI".into(),
            ));
        }
        if portrait.is_some_and(|p| p.is_empty() || p.len() > MAX_MDOC_PORTRAIT) {
            return Err(RegistryError::Invalid(format!(
                "a portrait is 1 to {MAX_MDOC_PORTRAIT} bytes"
            )));
        }
        in_write_tx!(self, OP, |c| async {
            let existing = c
                .fetch_optional(
                    OP,
                    &format!("SELECT {MDOC_COLS} FROM mdocs WHERE device_id = $1"),
                    &[Arg::text(device_id)],
                )
                .await?;
            if let Some(row) = existing {
                let rec = mdoc_from_row(&row)?;
                if rec.device_key != device_key {
                    return Err(RegistryError::Invalid(
                        "the phone's mobile ID is bound to another device key".into(),
                    ));
                }
                return Ok(rec);
            }
            let row = c
                .fetch_optional(
                    OP,
                    &format!(
                        "INSERT INTO mdocs (idx, device_id, device_key, created_at, portrait) \
                         SELECT COALESCE(MAX(idx) + 1, 0), $1, $2, $3, $4 FROM mdocs \
                         RETURNING {MDOC_COLS}"
                    ),
                    &[
                        Arg::text(device_id),
                        Arg::Bytes(device_key.to_vec()),
                        Arg::ts(now)?,
                        Arg::OptBytes(portrait.map(<[u8]>::to_vec)),
                    ],
                )
                .await?
                .ok_or_else(|| RegistryError::Corrupt("mdocs: insert returned no row".into()))?;
            let rec = mdoc_from_row(&row)?;
            insert_events(c, OP, events).await?;
            Ok(rec)
        })
    }

    async fn mdoc(&self, device_id: &str) -> Result<Option<MdocRecord>> {
        self.read_one(
            "mdoc",
            &format!("SELECT {MDOC_COLS} FROM mdocs WHERE device_id = $1"),
            &[Arg::text(device_id)],
            mdoc_from_row,
        )
        .await
    }

    async fn mdoc_statuses(&self) -> Result<Vec<MdocStatusRow>> {
        self.read_all(
            "mdoc_statuses",
            "SELECT m.idx, m.device_id, d.status, \
             (SELECT COUNT(*) FROM certificates c \
              WHERE c.device_id = m.device_id AND c.status = 'suspended') AS suspended, \
             (SELECT COUNT(*) FROM certificates c \
              WHERE c.device_id = m.device_id AND c.status = 'revoked') AS revoked \
             FROM mdocs m JOIN devices d ON d.id = m.device_id ORDER BY m.idx",
            &[],
            |r| {
                let count = |col| {
                    u64::try_from(r.int(col)?).map_err(|_| RegistryError::Corrupt(col.into()))
                };
                Ok(MdocStatusRow {
                    idx: u64::try_from(r.int("idx")?)
                        .map_err(|_| RegistryError::Corrupt("mdocs.idx".into()))?,
                    device_id: r.text("device_id")?,
                    device_status: r
                        .text("status")?
                        .parse()
                        .map_err(|()| RegistryError::Corrupt("devices.status".into()))?,
                    suspended: count("suspended")?,
                    revoked: count("revoked")?,
                })
            },
        )
        .await
    }

    fn group_commit_stats(&self) -> GroupCommitStats {
        self.group.stats()
    }

    async fn close(&self) {
        self.db.close().await;
    }
}
