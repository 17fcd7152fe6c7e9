//! Where a host's store is: a SQLite file (the default) or a PostgreSQL database, named by a
//! path or a `postgres://` URL (`--db`, `[store] url`), and opening it as a [`Store`].

use std::fmt;
use std::path::{Path, PathBuf};

use m365sync_store::{StoreBackend, StoreError};
use m365sync_store_postgres::PostgresStore;
use m365sync_store_postgres::connect::without_password;
use m365sync_store_sqlite::SqliteStore;

/// A store's location.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database URL (`postgres://user@host:port/db`).
    Postgres(String),
}

impl StoreLocation {
    /// A location as a user writes it: a `postgres://` or `postgresql://` URL, else a path.
    pub fn parse(text: &str) -> StoreLocation {
        let lower = text.trim().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            StoreLocation::Postgres(text.trim().to_string())
        } else {
            StoreLocation::Sqlite(PathBuf::from(text))
        }
    }

    /// The SQLite file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        StoreLocation::parse(&path.to_string_lossy())
    }
}

/// Shown without a URL's password.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

/// Open the store at `location`, creating its tables (or migrating them) if needed.
pub async fn open_store(location: &StoreLocation) -> Result<Box<dyn StoreBackend>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        StoreLocation::Postgres(url) => Ok(Box::new(PostgresStore::open(url).await?)),
    }
}

/// Open the store at `location` for reading what is there: a SQLite file must exist (it
/// is neither created nor migrated).
pub async fn open_store_existing(
    location: &StoreLocation,
) -> Result<Box<dyn StoreBackend>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(SqliteStore::open_existing(path)?)),
        StoreLocation::Postgres(url) => Ok(Box::new(PostgresStore::open_existing(url).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_postgres_and_paths_sqlite() {
        assert_eq!(
            StoreLocation::parse("postgres://u@h/db"),
            StoreLocation::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            StoreLocation::parse("PostgreSQL://u@h/db"),
            StoreLocation::Postgres("PostgreSQL://u@h/db".into())
        );
        assert_eq!(
            StoreLocation::parse("./m365sync.db"),
            StoreLocation::Sqlite("./m365sync.db".into())
        );
    }

    #[test]
    fn a_password_is_never_shown() {
        let shown = StoreLocation::parse("postgres://me:hunter2@db.example:5432/sync").to_string();
        assert_eq!(shown, "postgres://me@db.example:5432/sync");
        assert!(
            !format!("{:?}", StoreLocation::parse("postgres://me:hunter2@h/d")).contains("hunter2")
        );
        assert_eq!(
            StoreLocation::parse("postgres://me@h/d").to_string(),
            "postgres://me@h/d"
        );
    }
}
