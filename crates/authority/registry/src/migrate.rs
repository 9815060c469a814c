//! Schema migrations, embedded in the binary and applied at open.
//!
//! Each back end has its own numbered SQL files under `migrations/`. Applied
//! versions are recorded in `schema_migrations`; the whole run is one
//! transaction (PostgreSQL also takes an advisory lock, so two processes
//! opening a fresh database at once do not both migrate it).

use crate::RegistryError;
use crate::db::{Arg, Db};

/// One migration: version, short description, SQL.
type Migration = (i64, &'static str, &'static str);

const SQLITE: &[Migration] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
)];

const POSTGRES: &[Migration] = &[(
    1,
    "init",
    include_str!("../migrations/postgres/0001_init.sql"),
)];

/// Arbitrary key of the PostgreSQL advisory lock held while migrating.
const PG_LOCK_KEY: i64 = 0x5348_4f4d_4549; // "SHOMEI"

/// Brings the schema up to date.
pub(crate) async fn run(db: &Db) -> Result<(), RegistryError> {
    const OP: &str = "migrate";
    let migrations = match db {
        Db::Sqlite { .. } => SQLITE,
        Db::Postgres(_) => POSTGRES,
    };
    let mut tx = db.begin_write(OP).await?;
    let result = async {
        let mut c = tx.conn();
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
    .await;
    match result {
        Ok(()) => tx.commit(OP).await,
        Err(e) => {
            tx.rollback().await;
            Err(e)
        }
    }
}
