//! The thin layer that lets one body of SQL run on both back ends.
//!
//! Queries are written once with `$1`-style placeholders (SQLite accepts
//! them too); values are bound through [`Arg`], rows read through [`Row`].
//! Timestamps are the only type stored differently: fixed-width UTC text in
//! SQLite, `TIMESTAMPTZ` in PostgreSQL, both at microsecond precision.

use sqlx::postgres::{PgArgumentBuffer, PgConnection, PgPool, PgRow, PgTypeInfo, PgValueFormat};
use sqlx::postgres::{PgValueRef, Postgres};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Row as _, Sqlite};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, UtcOffset};

use shomei_core::Timestamp;

use crate::RegistryError;

type Result<T> = core::result::Result<T, RegistryError>;

/// A boxed, sendable future (erases the type so `Send` is proven once, here).
pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The pools of one registry.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    /// SQLite: one writer connection (SQLite has one writer at a time anyway;
    /// queueing in-process avoids busy waits) and a pool of readers.
    Sqlite { write: SqlitePool, read: SqlitePool },
    /// PostgreSQL: one pool for everything.
    Postgres(PgPool),
}

impl Db {
    /// `"sqlite"` or `"postgres"`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Begins a write transaction. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`) so a read never has to be upgraded mid-transaction.
    pub(crate) async fn begin_write(&self, op: &'static str) -> Result<Tx> {
        let tx = match self {
            Self::Sqlite { write, .. } => write.begin_with("BEGIN IMMEDIATE").await.map(Tx::S),
            Self::Postgres(pool) => pool.begin().await.map(Tx::P),
        };
        tx.map_err(|e| RegistryError::from_sqlx(op, e))
    }

    /// A connection for reads.
    pub(crate) async fn read(&self, op: &'static str) -> Result<Pooled> {
        let c = match self {
            Self::Sqlite { read, .. } => read.acquire().await.map(Pooled::S),
            Self::Postgres(pool) => pool.acquire().await.map(Pooled::P),
        };
        c.map_err(|e| RegistryError::from_sqlx(op, e))
    }

    /// A connection for a single-statement write outside a transaction.
    pub(crate) async fn write(&self, op: &'static str) -> Result<Pooled> {
        let c = match self {
            Self::Sqlite { write, .. } => write.acquire().await.map(Pooled::S),
            Self::Postgres(pool) => pool.acquire().await.map(Pooled::P),
        };
        c.map_err(|e| RegistryError::from_sqlx(op, e))
    }

    /// Closes the pools.
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open transaction on either back end.
pub(crate) enum Tx {
    S(sqlx::Transaction<'static, Sqlite>),
    P(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// The connection to run statements on.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::S(t) => Conn::S(t),
            Self::P(t) => Conn::P(t),
        }
    }

    /// Commits.
    pub(crate) async fn commit(self, op: &'static str) -> Result<()> {
        match self {
            Self::S(t) => t.commit().await,
            Self::P(t) => t.commit().await,
        }
        .map_err(|e| RegistryError::from_sqlx(op, e))
    }

    /// Rolls back, ignoring failure (the connection is then discarded by the pool).
    pub(crate) async fn rollback(self) {
        let _ = match self {
            Self::S(t) => t.rollback().await,
            Self::P(t) => t.rollback().await,
        };
    }
}

/// A pooled connection on either back end.
pub(crate) enum Pooled {
    S(sqlx::pool::PoolConnection<Sqlite>),
    P(sqlx::pool::PoolConnection<Postgres>),
}

impl Pooled {
    /// The connection to run statements on.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::S(c) => Conn::S(c),
            Self::P(c) => Conn::P(c),
        }
    }
}

/// A borrowed connection on either back end.
pub(crate) enum Conn<'a> {
    S(&'a mut SqliteConnection),
    P(&'a mut PgConnection),
}

/// A value to bind. `None` binds a typed NULL.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
    Ts(Option<Timestamp>),
}

impl Arg {
    /// A text value.
    pub(crate) fn text(s: impl Into<String>) -> Self {
        Self::Text(Some(s.into()))
    }

    /// A nullable text value.
    pub(crate) fn opt_text(s: Option<impl Into<String>>) -> Self {
        Self::Text(s.map(Into::into))
    }

    /// A timestamp, normalised to UTC microseconds; refused outside years 1–9999.
    pub(crate) fn ts(t: Timestamp) -> Result<Self> {
        Ok(Self::Ts(Some(normalise(t)?)))
    }

    /// A nullable timestamp.
    pub(crate) fn opt_ts(t: Option<Timestamp>) -> Result<Self> {
        Ok(Self::Ts(t.map(normalise).transpose()?))
    }
}

/// UTC, truncated to whole microseconds (what both back ends store).
pub(crate) fn normalise(t: Timestamp) -> Result<Timestamp> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(1..=9999).contains(&t.year()) {
        return Err(RegistryError::Invalid(
            "timestamp outside years 1-9999".into(),
        ));
    }
    let micros = t.microsecond();
    t.replace_nanosecond(micros * 1000)
        .map_err(|_| RegistryError::Invalid("timestamp cannot be truncated".into()))
}

/// SQLite's fixed-width text form: `2026-11-21T09:00:00.000000Z`.
fn sqlite_ts(t: &Timestamp) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn parse_sqlite_ts(s: &str) -> Option<Timestamp> {
    Timestamp::parse(s, &Rfc3339).ok()
}

/// PostgreSQL's `TIMESTAMPTZ` in binary form: microseconds since 2000-01-01 UTC.
#[derive(Clone, Copy, Debug)]
struct PgTs(Timestamp);

const PG_EPOCH: Timestamp = datetime!(2000-01-01 0:00 UTC);
/// OID of `timestamptz`.
const TIMESTAMPTZ_OID: u32 = 1184;

impl sqlx::Type<Postgres> for PgTs {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(TIMESTAMPTZ_OID))
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        sqlx::TypeInfo::name(ty).eq_ignore_ascii_case("timestamptz")
    }
}

impl sqlx::Encode<'_, Postgres> for PgTs {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> core::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        let micros: i64 = (self.0 - PG_EPOCH).whole_microseconds().try_into()?;
        sqlx::Encode::<Postgres>::encode(micros, buf)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for PgTs {
    fn decode(value: PgValueRef<'r>) -> core::result::Result<Self, sqlx::error::BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let micros: i64 = sqlx::Decode::<Postgres>::decode(value)?;
                Ok(Self(PG_EPOCH + Duration::microseconds(micros)))
            }
            PgValueFormat::Text => Err("timestamptz in text format is not supported".into()),
        }
    }
}

macro_rules! bind_all {
    ($q:expr, $args:expr, $ts:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Int(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(v.as_slice()),
                Arg::OptBytes(v) => q.bind(v.as_deref()),
                Arg::Ts(v) => q.bind(v.as_ref().map($ts)),
            };
        }
        q
    }};
}

impl Conn<'_> {
    /// Runs one statement; returns the number of rows it changed.
    pub(crate) fn execute<'a>(
        &'a mut self,
        op: &'static str,
        sql: &'a str,
        args: &'a [Arg],
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let r = match self {
                Self::S(c) => bind_all!(sqlx::query(sql), args, sqlite_ts)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected()),
                Self::P(c) => bind_all!(sqlx::query(sql), args, |t: &Timestamp| PgTs(*t))
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected()),
            };
            r.map_err(|e| RegistryError::from_sqlx(op, e))
        })
    }

    /// Runs one query; returns every row.
    pub(crate) fn fetch_all<'a>(
        &'a mut self,
        op: &'static str,
        sql: &'a str,
        args: &'a [Arg],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let r = match self {
                Self::S(c) => bind_all!(sqlx::query(sql), args, sqlite_ts)
                    .fetch_all(&mut **c)
                    .await
                    .map(|rows| rows.into_iter().map(Row::S).collect()),
                Self::P(c) => bind_all!(sqlx::query(sql), args, |t: &Timestamp| PgTs(*t))
                    .fetch_all(&mut **c)
                    .await
                    .map(|rows| rows.into_iter().map(Row::P).collect()),
            };
            r.map_err(|e| RegistryError::from_sqlx(op, e))
        })
    }

    /// Runs one query; returns its row, if any.
    pub(crate) fn fetch_optional<'a>(
        &'a mut self,
        op: &'static str,
        sql: &'a str,
        args: &'a [Arg],
    ) -> BoxFuture<'a, Result<Option<Row>>> {
        Box::pin(async move {
            let r = match self {
                Self::S(c) => bind_all!(sqlx::query(sql), args, sqlite_ts)
                    .fetch_optional(&mut **c)
                    .await
                    .map(|row| row.map(Row::S)),
                Self::P(c) => bind_all!(sqlx::query(sql), args, |t: &Timestamp| PgTs(*t))
                    .fetch_optional(&mut **c)
                    .await
                    .map(|row| row.map(Row::P)),
            };
            r.map_err(|e| RegistryError::from_sqlx(op, e))
        })
    }

    /// Runs unprepared SQL without parameters (savepoints, migrations);
    /// may hold several statements.
    pub(crate) fn raw<'a>(
        &'a mut self,
        op: &'static str,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let r = match self {
                Self::S(c) => sqlx::Executor::execute(&mut **c, sql).await.map(|_| ()),
                Self::P(c) => sqlx::Executor::execute(&mut **c, sql).await.map(|_| ()),
            };
            r.map_err(|e| RegistryError::from_sqlx(op, e))
        })
    }

    /// Whether this is PostgreSQL.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Self::P(_))
    }
}

/// A result row from either back end, read by column name.
pub(crate) enum Row {
    S(SqliteRow),
    P(PgRow),
}

fn corrupt(col: &'static str) -> RegistryError {
    RegistryError::Corrupt(col.to_owned())
}

impl Row {
    /// A non-null text column.
    pub(crate) fn text(&self, col: &'static str) -> Result<String> {
        self.opt_text(col)?.ok_or_else(|| corrupt(col))
    }

    /// A nullable text column.
    pub(crate) fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
        match self {
            Self::S(r) => r.try_get::<Option<String>, _>(col),
            Self::P(r) => r.try_get::<Option<String>, _>(col),
        }
        .map_err(|_| corrupt(col))
    }

    /// A non-null integer column.
    pub(crate) fn int(&self, col: &'static str) -> Result<i64> {
        self.opt_int(col)?.ok_or_else(|| corrupt(col))
    }

    /// A nullable integer column.
    pub(crate) fn opt_int(&self, col: &'static str) -> Result<Option<i64>> {
        match self {
            Self::S(r) => r.try_get::<Option<i64>, _>(col),
            Self::P(r) => r.try_get::<Option<i64>, _>(col),
        }
        .map_err(|_| corrupt(col))
    }

    /// A non-null boolean column (SQLite: INTEGER 0/1; PostgreSQL: BOOLEAN).
    pub(crate) fn bool(&self, col: &'static str) -> Result<bool> {
        match self {
            Self::S(r) => r.try_get::<bool, _>(col),
            Self::P(r) => r.try_get::<bool, _>(col),
        }
        .map_err(|_| corrupt(col))
    }

    /// A non-null binary column.
    pub(crate) fn bytes(&self, col: &'static str) -> Result<Vec<u8>> {
        match self {
            Self::S(r) => r.try_get::<Vec<u8>, _>(col),
            Self::P(r) => r.try_get::<Vec<u8>, _>(col),
        }
        .map_err(|_| corrupt(col))
    }

    /// A nullable binary column.
    pub(crate) fn opt_bytes(&self, col: &'static str) -> Result<Option<Vec<u8>>> {
        match self {
            Self::S(r) => r.try_get::<Option<Vec<u8>>, _>(col),
            Self::P(r) => r.try_get::<Option<Vec<u8>>, _>(col),
        }
        .map_err(|_| corrupt(col))
    }

    /// A non-null timestamp column.
    pub(crate) fn ts(&self, col: &'static str) -> Result<Timestamp> {
        self.opt_ts(col)?.ok_or_else(|| corrupt(col))
    }

    /// A nullable timestamp column.
    pub(crate) fn opt_ts(&self, col: &'static str) -> Result<Option<Timestamp>> {
        match self {
            Self::S(r) => {
                let s = r
                    .try_get::<Option<String>, _>(col)
                    .map_err(|_| corrupt(col))?;
                s.map(|s| parse_sqlite_ts(&s).ok_or_else(|| corrupt(col)))
                    .transpose()
            }
            Self::P(r) => r
                .try_get::<Option<PgTs>, _>(col)
                .map(|t| t.map(|t| t.0.to_offset(UtcOffset::UTC)))
                .map_err(|_| corrupt(col)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_text_is_fixed_width_and_round_trips_at_microseconds() {
        let t = datetime!(2026-11-21 9:00:01.123456789 +09:00);
        let n = normalise(t).unwrap();
        let s = sqlite_ts(&n);
        assert_eq!(s, "2026-11-21T00:00:01.123456Z");
        assert_eq!(parse_sqlite_ts(&s), Some(n));
        assert_eq!(n, datetime!(2026-11-21 0:00:01.123456 UTC));
        assert!(sqlite_ts(&normalise(datetime!(0999-01-01 0:00 UTC)).unwrap()) < s);
    }

    #[test]
    fn out_of_range_years_are_refused() {
        assert!(normalise(datetime!(0000-12-31 23:59 UTC)).is_err());
        assert!(normalise(datetime!(9999-12-31 23:59 UTC)).is_ok());
    }
}
