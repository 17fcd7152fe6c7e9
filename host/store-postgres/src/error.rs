//! Errors of the driver and the pool, in the words of the store's contract: what failed,
//! and the server's message (never a password: neither the driver's errors nor the pool's
//! carry the connection's settings).

use deadpool_postgres::{PoolError, TimeoutType};
use m365sync_store::StoreError;
use m365sync_wit::StorageError;

use crate::connect::CONNECT_TIMEOUT;

/// The server's message (with its detail, e.g. the key a constraint refused), or the
/// driver's error in words.
pub(crate) fn message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            // The driver's own words name only the kind of failure ("error performing TLS
            // handshake"); its causes say which.
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

/// The words of a storage error (its `Display` is the generated binding's, which shows the
/// variant too).
pub(crate) fn words(error: StorageError) -> String {
    match error {
        StorageError::Unavailable(m) | StorageError::Invalid(m) | StorageError::Cancelled(m) => m,
    }
}

/// `what` failed on the server.
pub(crate) fn unavailable(what: &str, error: &tokio_postgres::Error) -> StorageError {
    StorageError::Unavailable(format!("{what}: {}", message(error)))
}

/// `what` failed on the server: `invalid` when the server refused the data (a data
/// exception or a constraint, SQLSTATE classes 22 and 23), else `unavailable`.
pub(crate) fn refused(what: &str, error: &tokio_postgres::Error) -> StorageError {
    let class = error.code().and_then(|code| code.code().get(..2));
    match class {
        Some("22" | "23") => StorageError::Invalid(format!("{what}: {}", message(error))),
        _ => unavailable(what, error),
    }
}

/// No connection to `place` could be had from the pool for `what`.
pub(crate) fn no_connection(what: &str, place: &str, error: PoolError) -> StorageError {
    let why = match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            "every connection of the pool stayed busy past the connect timeout".to_string()
        }
        PoolError::Timeout(TimeoutType::Create) => format!(
            "the server did not answer within the connect timeout ({} s unless the URL's \
             `connect_timeout` says otherwise)",
            CONNECT_TIMEOUT.as_secs()
        ),
        PoolError::Timeout(TimeoutType::Recycle) => {
            "a pooled connection did not answer within the connect timeout".to_string()
        }
        PoolError::Backend(e) => message(&e),
        other => other.to_string(),
    };
    StorageError::Unavailable(format!("{what}: cannot connect to {place}: {why}"))
}

/// A store-level failure of `what`.
pub(crate) fn store_unavailable(what: &str, error: &tokio_postgres::Error) -> StoreError {
    StoreError::Storage(unavailable(what, error))
}
