//! The registry's one error type.

use core::fmt;

use shomei_core::Serial;

use crate::model::DeviceStatus;

/// Why a registry operation failed.
///
/// Messages never carry bound parameter values or stored column values:
/// those may be personal data (name, address, birth date, sex). They name
/// tables, columns, constraints and certificate serials only (a serial is
/// public: it is printed on the certificate and published on CRLs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// A record the operation needs does not exist (including a reference to
    /// a missing holder, card, device or certificate).
    NotFound {
        /// The kind of record (`"holder"`, `"certificate"`, a constraint name…).
        what: String,
    },
    /// A unique key is already taken, e.g. a serial or holder id reused.
    Duplicate {
        /// The key, as the database names it (`"certificates.serial"`, `"holders_pkey"`…).
        what: String,
    },
    /// A status change's `from` no longer matches the stored status: someone
    /// changed the certificate in the meantime. Nothing was changed.
    Conflict {
        /// The certificate whose status differed.
        serial: Serial,
    },
    /// A phone is not in the status the operation needs (e.g. confirming a
    /// wipe nobody asked for, or superseding a phone that changed
    /// concurrently). Nothing was changed.
    DeviceConflict {
        /// The device id.
        device: String,
        /// Its status as found.
        status: DeviceStatus,
    },
    /// The request itself is malformed (a caller bug): e.g. a timestamp out of
    /// range, a revocation without a reason, an illegal transition.
    Invalid(String),
    /// The registry URL is not understood. The URL itself is not repeated
    /// (it may hold a password).
    BadUrl(String),
    /// A stored value fails to parse; names the column, not the value.
    Corrupt(String),
    /// The database failed (connection, IO, unexpected constraint…).
    Backend(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { what } => write!(f, "not found: {what}"),
            Self::Duplicate { what } => write!(f, "already exists: {what}"),
            Self::Conflict { serial } => write!(
                f,
                "certificate {serial} changed status concurrently; nothing was applied"
            ),
            Self::DeviceConflict { device, status } => write!(
                f,
                "device {device} is {status}: the operation does not apply; nothing was changed"
            ),
            Self::Invalid(why) => write!(f, "invalid request: {why}"),
            Self::BadUrl(why) => write!(f, "bad registry URL: {why}"),
            Self::Corrupt(what) => write!(f, "corrupt stored value in {what}"),
            Self::Backend(why) => write!(f, "registry backend error: {why}"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl RegistryError {
    /// Maps a database error without leaking values: only the error kind,
    /// SQLSTATE / SQLite code and schema names survive.
    pub(crate) fn from_sqlx(op: &'static str, e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let what = db_object(db.as_ref());
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => Self::Duplicate { what },
                    sqlx::error::ErrorKind::ForeignKeyViolation => Self::NotFound {
                        what: format!("referenced record ({what})"),
                    },
                    sqlx::error::ErrorKind::CheckViolation
                    | sqlx::error::ErrorKind::NotNullViolation => {
                        Self::Invalid(format!("{op}: constraint {what} refused the value"))
                    }
                    _ => Self::Backend(format!("{op}: database error code {code} ({what})")),
                }
            }
            sqlx::Error::RowNotFound => Self::NotFound {
                what: op.to_owned(),
            },
            sqlx::Error::ColumnDecode { index, .. } => {
                Self::Corrupt(format!("{op}: column {index}"))
            }
            sqlx::Error::ColumnNotFound(c) => Self::Corrupt(format!("{op}: missing column {c}")),
            sqlx::Error::Io(io) => Self::Backend(format!("{op}: io error ({:?})", io.kind())),
            sqlx::Error::PoolTimedOut => Self::Backend(format!("{op}: connection pool timed out")),
            sqlx::Error::PoolClosed => Self::Backend(format!("{op}: connection pool closed")),
            sqlx::Error::Tls(_) => Self::Backend(format!("{op}: TLS error")),
            sqlx::Error::Protocol(_) => Self::Backend(format!("{op}: protocol error")),
            sqlx::Error::Configuration(_) => Self::BadUrl(format!("{op}: bad configuration")),
            sqlx::Error::WorkerCrashed => Self::Backend(format!("{op}: database worker crashed")),
            sqlx::Error::Encode(_) => Self::Invalid(format!("{op}: a value could not be encoded")),
            sqlx::Error::Decode(_) => Self::Corrupt(format!("{op}: a value could not be decoded")),
            _ => Self::Backend(format!("{op}: database error")),
        }
    }
}

/// The schema object a database error is about: constraint, or `table.column`
/// from SQLite's message (which holds schema names only, never values).
fn db_object(db: &dyn sqlx::error::DatabaseError) -> String {
    if let Some(c) = db.constraint() {
        return c.to_owned();
    }
    // SQLite: "UNIQUE constraint failed: certificates.serial" and the like.
    let msg = db.message();
    if let Some((_, names)) = msg.split_once("constraint failed: ") {
        let safe = names
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ',' | ' '));
        if safe {
            return names.to_owned();
        }
    }
    if msg.starts_with("FOREIGN KEY constraint failed") {
        return "foreign key".to_owned();
    }
    "unnamed".to_owned()
}
