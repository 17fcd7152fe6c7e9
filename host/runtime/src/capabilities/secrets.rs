//! `m365sync:engine/secrets`: the secrets of the one tenant a sandbox runs for.
//!
//! Values are read when the component asks (so a rotated secret is picked up by the next
//! run) and handed only to the component; errors name the source, never the value.
//!
//! The host answers synchronously inside the run, where the run's deadline cannot
//! interrupt it, so reading a secret must never block or grow without bound: a secret file
//! must be a regular file (a FIFO would block forever, `/dev/zero` never ends), is opened
//! without blocking, and at most [`MAX_SECRET_FILE_BYTES`] + 1 bytes of it are read.
//!
//! Error texts follow the WIT contract: `not-found` carries the secret's name,
//! `unreadable` the source ("environment variable X (not set)"), which the engine puts
//! after "could not be read from".

use std::io::Read;
use std::path::Path;

use m365sync_config::SecretSource;
use m365sync_wit::SecretError;

/// The secrets of one tenant.
pub struct TenantSecrets {
    /// None when the app signs in with a client assertion instead.
    client_secret: Option<SecretSource>,
}

/// The secret names the engine asks for.
pub const CLIENT_SECRET: &str = "client-secret";

/// The largest secret file read; a client secret is about 40 characters, a certificate
/// in PEM a few KiB.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

impl TenantSecrets {
    pub fn new(client_secret: Option<SecretSource>) -> Self {
        TenantSecrets { client_secret }
    }

    pub fn get(&self, name: &str) -> Result<String, SecretError> {
        match &self.client_secret {
            Some(source) if name == CLIENT_SECRET => read(source),
            _ => Err(SecretError::NotFound(name.to_string())),
        }
    }
}

/// The value of a secret source, read without blocking and within
/// [`MAX_SECRET_FILE_BYTES`] (the one place a host reads a secret: the run, and the sync
/// log's redaction of a failed run's error).
pub fn read(source: &SecretSource) -> Result<String, SecretError> {
    let value = match source {
        SecretSource::Value(value) => value.clone(),
        SecretSource::Env(var) => std::env::var(var).map_err(|error| {
            let why = match error {
                std::env::VarError::NotPresent => "not set",
                std::env::VarError::NotUnicode(_) => "not UTF-8 text",
            };
            SecretError::Unreadable(format!("environment variable {var} ({why})"))
        })?,
        SecretSource::File(path) => read_secret_file(path)
            .map_err(|why| SecretError::Unreadable(format!("file {} ({why})", path.display())))?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    };
    if value.trim().is_empty() {
        return Err(SecretError::Unreadable(format!("{source:?} (it is empty)")));
    }
    Ok(value)
}

/// The text of the secret file at `path`, or what is wrong with the file (never its
/// content): not a regular file, larger than [`MAX_SECRET_FILE_BYTES`], not UTF-8, or an
/// I/O error.
pub(crate) fn read_secret_file(path: &Path) -> Result<String, String> {
    let regular = |metadata: &std::fs::Metadata| {
        if metadata.is_file() {
            Ok(())
        } else {
            Err(format!("not a regular file: {}", file_kind(metadata)))
        }
    };
    let within_cap = |len: u64| {
        if len > MAX_SECRET_FILE_BYTES {
            Err(format!(
                "larger than the {MAX_SECRET_FILE_BYTES} bytes a secret file may have"
            ))
        } else {
            Ok(())
        }
    };
    let io = |error: std::io::Error| error.kind().to_string();
    // Checked before opening: opening a FIFO for reading waits for a writer.
    let metadata = std::fs::metadata(path).map_err(io)?;
    regular(&metadata)?;
    within_cap(metadata.len())?;
    let file = open_nonblocking(path).map_err(io)?;
    // And again on what was opened, in case the path changed in between.
    let metadata = file.metadata().map_err(io)?;
    regular(&metadata)?;
    within_cap(metadata.len())?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    within_cap(bytes.len() as u64)?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    if metadata.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn unreadable(source: SecretSource) -> String {
        match TenantSecrets::new(Some(source)).get(CLIENT_SECRET) {
            Err(SecretError::Unreadable(message)) => message,
            other => panic!("expected unreadable, got {other:?}"),
        }
    }

    #[test]
    fn file_secret_is_trimmed_and_missing_file_names_the_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let secrets = TenantSecrets::new(Some(SecretSource::File(path.clone())));
        assert_eq!(secrets.get(CLIENT_SECRET).unwrap(), "s3cr3t");
        std::fs::write(&path, "s3cr3t\r\n").unwrap();
        assert_eq!(secrets.get(CLIENT_SECRET).unwrap(), "s3cr3t");
        std::fs::remove_file(&path).unwrap();
        let message = unreadable(SecretSource::File(path.clone()));
        assert!(
            message.contains(&path.display().to_string()) && !message.contains("s3cr3t"),
            "{message}"
        );
    }

    #[test]
    fn unknown_name_is_not_found_and_unset_variable_names_the_variable() {
        let secrets = TenantSecrets::new(Some(SecretSource::Env("M365SYNC_TEST_UNSET_VAR".into())));
        // not-found carries only the name, as the WIT says (the engine words the rest).
        assert!(matches!(
            secrets.get("other"),
            Err(SecretError::NotFound(name)) if name == "other"
        ));
        let message = unreadable(SecretSource::Env("M365SYNC_TEST_UNSET_VAR".into()));
        assert_eq!(
            message,
            "environment variable M365SYNC_TEST_UNSET_VAR (not set)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_fails_at_once_instead_of_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("secret");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // On a thread, so that a read that blocks fails the test instead of hanging it.
        let (done, result) = std::sync::mpsc::channel();
        let source = SecretSource::File(fifo.clone());
        std::thread::spawn(move || done.send(unreadable(source)).unwrap());
        let message = result
            .recv_timeout(Duration::from_secs(5))
            .expect("reading a FIFO secret must not block");
        assert!(
            message.contains(&fifo.display().to_string()) && message.contains("FIFO"),
            "{message}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn dev_zero_fails_at_once_without_reading_it() {
        let started = Instant::now();
        let message = unreadable(SecretSource::File("/dev/zero".into()));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            message.contains("/dev/zero") && message.contains("character device"),
            "{message}"
        );
    }

    #[test]
    fn directories_large_and_empty_files_are_refused_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let message = unreadable(SecretSource::File(dir.path().to_path_buf()));
        assert!(
            message.contains("not a regular file: a directory"),
            "{message}"
        );

        let large = dir.path().join("large");
        std::fs::write(&large, "x".repeat(MAX_SECRET_FILE_BYTES as usize + 1)).unwrap();
        let message = unreadable(SecretSource::File(large.clone()));
        assert!(
            message.contains(&large.display().to_string()) && message.contains("larger"),
            "{message}"
        );
        assert!(!message.contains("xxxx"), "{message}");
        // Exactly the cap is accepted.
        std::fs::write(&large, "x".repeat(MAX_SECRET_FILE_BYTES as usize)).unwrap();
        assert_eq!(
            TenantSecrets::new(Some(SecretSource::File(large)))
                .get(CLIENT_SECRET)
                .unwrap()
                .len(),
            MAX_SECRET_FILE_BYTES as usize
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let message = unreadable(SecretSource::File(empty.clone()));
        assert!(
            message.contains(&empty.display().to_string()) && message.contains("empty"),
            "{message}"
        );
    }
}
