//! One statement on a connection from the pool, prepared once per connection (the driver's
//! statement cache): what every single-statement operation of the adapters does.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::Failure;

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The rows `sql` answers.
pub(crate) async fn query(pool: &Pool, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Failure> {
    let c = pool.get().await?;
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

/// The row `sql` answers, if any.
pub(crate) async fn query_opt(
    pool: &Pool,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, Failure> {
    let c = pool.get().await?;
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, params).await?)
}

/// Runs `sql`; how many rows it changed.
pub(crate) async fn execute(pool: &Pool, sql: &str, params: Params<'_>) -> Result<u64, Failure> {
    let c = pool.get().await?;
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, params).await?)
}
