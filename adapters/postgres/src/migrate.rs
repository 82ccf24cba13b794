//! Versioned schema migrations, applied at start in one transaction under an advisory lock (so
//! processes starting together do not race); a schema newer than this binary is refused.

use deadpool_postgres::Object;

use crate::error::{PgError, describe};

/// Every migration this binary knows, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "metadata",
    include_str!("../migrations/0001_metadata.sql"),
)];

/// The advisory lock key of migrations (any constant shared by every binary).
const LOCK_KEY: i64 = 0x0d55_5ce3_a000_0001;

/// Brings the schema to this binary's newest version.
pub(crate) async fn migrate(client: &mut Object) -> Result<(), PgError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let fail = |version, name, e: tokio_postgres::Error| PgError::Migrate {
        version,
        name,
        message: describe(&e),
    };
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgError::Connect(describe(&e)))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| fail(0, "lock", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dss_schema (
             version    bigint PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| fail(0, "schema table", e))?;
    let found: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM dss_schema", &[])
        .await
        .map_err(|e| fail(0, "schema version", e))?
        .get(0);
    if found > known {
        return Err(PgError::SchemaTooNew { found, known });
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| fail(version, name, e))?;
        tx.execute(
            "INSERT INTO dss_schema (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await
        .map_err(|e| fail(version, name, e))?;
        tracing::info!(version, name, "metadata database migrated");
    }
    tx.commit().await.map_err(|e| fail(known, "commit", e))
}
