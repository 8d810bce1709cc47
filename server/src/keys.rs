//! Loading (or, on first run, creating) the key that seals stored secrets.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use domain::secrets::SecretKey;

use crate::config::SecretKeySource;

/// The key to use, or a one-line reason it cannot be had.
pub fn load(source: &SecretKeySource) -> Result<SecretKey, String> {
    match source {
        SecretKeySource::Inline(key) => Ok(key.clone()),
        SecretKeySource::File(path) => load_or_create(path)
            .map_err(|problem| format!("LIFELINE_SECRET_KEY_FILE {}: {problem}", path.display())),
    }
}

fn load_or_create(path: &Path) -> Result<SecretKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => SecretKey::from_hex(&text).map_err(|e| e.to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder).map_err(|e| e.to_string())?;
            }
            let key = SecretKey::generate();
            // Readable by the server's user only; create_new never overwrites a key that
            // another process wrote a moment ago.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| e.to_string())?;
            writeln!(file, "{}", key.to_hex()).map_err(|e| e.to_string())?;
            tracing::info!(
                path = %path.display(),
                "created a new secret key; keep it with the database backups"
            );
            Ok(key)
        }
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_file_is_created_private_and_then_reused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("nested/secret.key");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.to_hex(), second.to_hex());
    }

    #[test]
    fn a_damaged_key_file_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secret.key");
        std::fs::write(&path, "not a key").unwrap();
        let error = load(&SecretKeySource::File(path)).unwrap_err();
        assert!(error.starts_with("LIFELINE_SECRET_KEY_FILE "), "{error}");
    }
}
