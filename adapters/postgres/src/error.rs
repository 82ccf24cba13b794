//! Errors of the PostgreSQL adapters, and their mapping onto the ports' backend errors.

/// Errors while connecting to, or migrating, the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The configuration does not describe a reachable database.
    #[error("metadata.url: {0}")]
    Config(String),
    /// The database did not answer or refused the connection.
    #[error("metadata.url: cannot reach the metadata database: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("metadata database: migration {version} ({name}) failed: {message}")]
    Migrate {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// What failed.
        message: String,
    },
    /// The schema was migrated by a newer binary.
    #[error(
        "metadata database: its schema is at version {found}, newer than this binary knows ({known}); run a release at least as new"
    )]
    SchemaTooNew {
        /// The schema's version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
}

/// A failure of the database or the pool, described with the server's message when it sent one.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>()
            && let Some(db) = pg.as_db_error()
        {
            return format!("{} ({})", db.message(), db.code().code());
        }
        cur = err.source();
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Implements `From` the driver's and the pool's errors for a port's error type with a
/// `Backend(String)` variant.
macro_rules! backend_errors {
    ($($port:ty),*) => {$(
        impl From<$crate::error::Failure> for $port {
            fn from(e: $crate::error::Failure) -> Self {
                <$port>::Backend(e.0)
            }
        }
    )*};
}

/// A described failure of the database or the pool.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure(describe(&e))
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Failure(describe(&e))
    }
}

backend_errors!(
    dss_core::ports::SubscriptionError,
    dss_core::ports::DeliveryError,
    dss_core::ports::CollectionIndexError,
    dss_core::ports::JournalError,
    dss_core::ports::LeaseError
);

/// Column `i` of `row`, as `T`; a mismatch (a schema altered by hand) is an error, not a panic.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> Result<T, Failure> {
    Ok(row.try_get(i)?)
}

/// An error message as stored: PostgreSQL's text holds no NUL character, and messages may
/// quote what a client sent, so any is replaced.
pub(crate) fn free_text(s: &str) -> std::borrow::Cow<'_, str> {
    match s.contains('\0') {
        true => s.replace('\0', "\u{fffd}").into(),
        false => s.into(),
    }
}
