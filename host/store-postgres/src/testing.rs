//! Throwaway schemas on a test server, for tests of this crate, the CLI and the end-to-end
//! suite (cargo feature `testing`). Each test gets a fresh schema of its own, so tests run
//! in parallel on one database and leave nothing behind.
//!
//! - [`server_url`]: `M365SYNC_TEST_POSTGRES`, or `postgres://postgres@127.0.0.1:5432/test`.
//! - [`schema`]: a new schema and a URL whose connections use it; None (after printing
//!   `skipped: no PostgreSQL at <url>`) when no server answers, unless
//!   `M365SYNC_REQUIRE_POSTGRES=1`, when it panics instead (CI, where a skipped suite
//!   would hide a failure).
//! - [`TestSchema`]: dropping it drops the schema, from any context.

use crate::connect::{Target, without_password};

/// The variable naming the test server.
pub const SERVER_VARIABLE: &str = "M365SYNC_TEST_POSTGRES";
/// The variable that makes a missing server a failure (`1`).
pub const REQUIRE_VARIABLE: &str = "M365SYNC_REQUIRE_POSTGRES";
/// The test server when [`SERVER_VARIABLE`] is not set.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn server_url() -> String {
    std::env::var(SERVER_VARIABLE)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_string())
}

/// A schema of its own on the test server, dropped (with everything in it) on drop.
pub struct TestSchema {
    /// A URL whose connections use the schema (their `search_path`) and carry its name
    /// as their `application_name`.
    pub url: String,
    /// The schema's name.
    pub name: String,
    /// The server's URL, to drop the schema.
    server: String,
}

impl std::fmt::Debug for TestSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSchema")
            .field("url", &without_password(&self.url))
            .field("name", &self.name)
            .finish()
    }
}

/// A fresh schema on the test server, or None when no server answers (see the module's
/// comment).
pub async fn schema() -> Option<TestSchema> {
    let server = server_url();
    match create(&server).await {
        Ok(schema) => Some(schema),
        Err(why) => {
            let shown = without_password(&server);
            if std::env::var(REQUIRE_VARIABLE).is_ok_and(|v| v.trim() == "1") {
                panic!(
                    "PostgreSQL is required ({REQUIRE_VARIABLE}=1) but the test server \
                     {shown} cannot be used: {why}"
                );
            }
            println!("skipped: no PostgreSQL at {shown}");
            None
        }
    }
}

/// A connection to the server at `url`.
async fn connect(url: &str) -> Result<deadpool_postgres::Object, String> {
    let target = Target::parse(url).map_err(|e| e.to_string())?;
    let pool = target.pool().map_err(|e| e.to_string())?;
    pool.get().await.map_err(|e| {
        crate::error::words(crate::error::no_connection(
            "connecting",
            &target.shown_url,
            e,
        ))
    })
}

async fn create(server: &str) -> Result<TestSchema, String> {
    let client = connect(server).await?;
    let name = format!("m365sync_t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .map_err(|e| format!("creating schema {name}: {}", crate::error::message(&e)))?;
    Ok(TestSchema {
        url: with_schema(server, &name),
        name,
        server: server.to_string(),
    })
}

/// `url` with connections in schema `name`, named `name` (libpq's `options` and
/// `application_name`, which tokio-postgres reads from a URL's query, percent-decoded).
fn with_schema(url: &str, name: &str) -> String {
    if url.contains("://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options=-c%20search_path%3D{name}&application_name={name}")
    } else {
        format!("{url} options='-c search_path={name}' application_name={name}")
    }
}

impl Drop for TestSchema {
    /// Drops the schema on a thread of its own (with its own runtime), so it works from
    /// any context, a runtime's or not. The schema's other connections are ended first: a
    /// store dropped just before may still hold one, and its locks would hold the drop up.
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(client) = connect(&server).await else {
                    return;
                };
                let _ = client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await;
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
            });
        });
        let _ = dropper.join();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_schema_url_names_the_schema() {
        assert_eq!(
            super::with_schema("postgres://u@h/db", "s1"),
            "postgres://u@h/db?options=-c%20search_path%3Ds1&application_name=s1"
        );
        assert_eq!(
            super::with_schema("postgres://u@h/db?sslmode=disable", "s1"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Ds1&application_name=s1"
        );
        let config: tokio_postgres::Config = super::with_schema("postgres://u@h/db", "s1")
            .parse()
            .unwrap();
        assert_eq!(config.get_options(), Some("-c search_path=s1"));
        assert_eq!(config.get_application_name(), Some("s1"));
    }
}
