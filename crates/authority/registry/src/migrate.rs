//! Schema migrations, embedded in the binary and applied at open.
//!
//! Each back end has its own numbered SQL files under `migrations/`. Applied
//! versions are recorded in `schema_migrations`; the whole run is one
//! transaction (PostgreSQL also takes an advisory lock, so two processes
//! opening a fresh database at once do not both migrate it).
//!
//! SQLite cannot add a CHECK constraint to an existing table, so a migration
//! may rebuild a table (create, copy, drop, rename). Dropping a table that
//! others reference needs foreign keys off, which SQLite only allows outside
//! a transaction: the SQLite run turns them off on the writer connection,
//! migrates in one `BEGIN IMMEDIATE` transaction, checks every reference with
//! `PRAGMA foreign_key_check` before committing, and turns them back on.

use crate::RegistryError;
use crate::db::{Arg, Conn, Db};

/// One migration: version, short description, SQL.
type Migration = (i64, &'static str, &'static str);

const SQLITE: &[Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "phones",
        include_str!("../migrations/sqlite/0002_phones.sql"),
    ),
    (
        3,
        "relying_parties",
        include_str!("../migrations/sqlite/0003_relying_parties.sql"),
    ),
    (
        4,
        "mdocs",
        include_str!("../migrations/sqlite/0004_mdocs.sql"),
    ),
    (
        5,
        "mdoc_portrait",
        include_str!("../migrations/sqlite/0005_mdoc_portrait.sql"),
    ),
    (
        6,
        "reader_revocations",
        include_str!("../migrations/sqlite/0006_reader_revocations.sql"),
    ),
];

const POSTGRES: &[Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "phones",
        include_str!("../migrations/postgres/0002_phones.sql"),
    ),
    (
        3,
        "relying_parties",
        include_str!("../migrations/postgres/0003_relying_parties.sql"),
    ),
    (
        4,
        "mdocs",
        include_str!("../migrations/postgres/0004_mdocs.sql"),
    ),
    (
        5,
        "mdoc_portrait",
        include_str!("../migrations/postgres/0005_mdoc_portrait.sql"),
    ),
    (
        6,
        "reader_revocations",
        include_str!("../migrations/postgres/0006_reader_revocations.sql"),
    ),
];

/// Arbitrary key of the PostgreSQL advisory lock held while migrating.
const PG_LOCK_KEY: i64 = 0x5348_4f4d_4549; // "SHOMEI"

const OP: &str = "migrate";

/// Brings the schema up to date.
pub(crate) async fn run(db: &Db) -> Result<(), RegistryError> {
    match db {
        Db::Sqlite { .. } => run_sqlite(db).await,
        Db::Postgres(_) => run_postgres(db).await,
    }
}

async fn run_postgres(db: &Db) -> Result<(), RegistryError> {
    let mut tx = db.begin_write(OP).await?;
    let result = apply(&mut tx.conn(), POSTGRES).await;
    match result {
        Ok(()) => tx.commit(OP).await,
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}

async fn run_sqlite(db: &Db) -> Result<(), RegistryError> {
    let mut pooled = db.write(OP).await?;
    let mut c = pooled.conn();
    c.raw(OP, "PRAGMA foreign_keys = OFF").await?;
    let result = async {
        c.raw(OP, "BEGIN IMMEDIATE").await?;
        let migrated = async {
            apply(&mut c, SQLITE).await?;
            let dangling = c.fetch_all(OP, "PRAGMA foreign_key_check", &[]).await?;
            if !dangling.is_empty() {
                return Err(RegistryError::Corrupt(format!(
                    "{} row(s) refer to missing records after migrating",
                    dangling.len()
                )));
            }
            Ok(())
        }
        .await;
        match migrated {
            Ok(()) => c.raw(OP, "COMMIT").await,
            Err(e) => {
                let _ = c.raw(OP, "ROLLBACK").await;
                Err(e)
            }
        }
    }
    .await;
    // Foreign keys back on whatever happened: the connection goes back to the pool.
    let restored = c.raw(OP, "PRAGMA foreign_keys = ON").await;
    result.and(restored)
}

/// Applies every migration not yet recorded, on `c` (inside a transaction).
async fn apply(c: &mut Conn<'_>, migrations: &[Migration]) -> Result<(), RegistryError> {
    if c.is_postgres() {
        c.execute(
            OP,
            "SELECT pg_advisory_xact_lock($1)",
            &[Arg::Int(Some(PG_LOCK_KEY))],
        )
        .await?;
    }
    c.raw(
        OP,
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
         version BIGINT NOT NULL PRIMARY KEY, description TEXT NOT NULL)",
    )
    .await?;
    let applied = c
        .fetch_all(OP, "SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.int("version"))
        .collect::<Result<Vec<_>, _>>()?;
    let newest_known = migrations.iter().map(|m| m.0).max().unwrap_or(0);
    if applied.iter().any(|v| *v > newest_known) {
        return Err(RegistryError::Backend(
            "the database schema is newer than this program".into(),
        ));
    }
    for (version, description, sql) in migrations {
        if applied.contains(version) {
            continue;
        }
        c.raw(OP, sql).await?;
        c.execute(
            OP,
            "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
            &[Arg::Int(Some(*version)), Arg::text(*description)],
        )
        .await?;
    }
    Ok(())
}
