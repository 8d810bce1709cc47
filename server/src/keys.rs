//! Loading (or, on first run, creating) the server's secret key, keeping up with versions
//! that `lifeline rotate-key` adds to the key file, and adding them.
//!
//! The key file holds one version per line, `v1:<64 hex digits>`, `v2:…`, oldest first; a
//! file of 64 hexadecimal digits alone (the format before key versions) is version 1. It is
//! refused when its mode lets other users read or change it.

use std::{
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use domain::secrets::{KeyVersion, SecretKey};

use crate::{config::SecretKeySource, private_files};

/// How often a running server re-reads its key file for versions added since it started
/// (it also does so at once when it meets a version it does not hold).
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// The key to use, or a one-line reason it cannot be had. A key from a file re-reads the
/// file when it meets a version it does not hold.
pub fn load(source: &SecretKeySource) -> Result<SecretKey, String> {
    match source {
        SecretKeySource::Inline(key) => Ok(key.clone()),
        SecretKeySource::File(path) => {
            let key = load_or_create(path).map_err(|problem| in_file(path, &problem))?;
            let reread = path.clone();
            Ok(key.with_reload(move || read(&reread).map_err(|p| in_file(&reread, &p))))
        }
    }
}

/// Re-reads the key file every [`REFRESH_EVERY`] for the life of the process, so that new
/// secrets are sealed and new audit events linked under a version `lifeline rotate-key`
/// added, on every instance, without a restart.
pub fn spawn_refresh(key: SecretKey) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REFRESH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let refreshed = {
                let key = key.clone();
                tokio::task::spawn_blocking(move || key.refresh()).await
            };
            match refreshed {
                Ok(Ok(added)) if !added.is_empty() => {
                    tracing::info!(?added, "new secret key versions are in use");
                }
                Ok(Ok(_)) => {}
                Ok(Err(problem)) => tracing::warn!(%problem, "re-reading the secret key"),
                Err(error) => tracing::warn!(%error, "re-reading the secret key"),
            }
        }
    });
}

/// Adds a new version to the key file (`lifeline rotate-key`) and returns the key with it
/// and the new version. The file is replaced whole (a new file, synced, then renamed over the
/// old one), so a server re-reading it sees the old versions or all of them, never part.
/// Errors: the key is not in a file, the file is unreadable or shared, or another rotation is
/// under way.
pub fn add_version(source: &SecretKeySource) -> Result<(SecretKey, KeyVersion), String> {
    let SecretKeySource::File(path) = source else {
        return Err(
            "LIFELINE_SECRET_KEY is set: rotate-key adds a version to a key file that every \
             instance reads (LIFELINE_SECRET_KEY_FILE); with LIFELINE_SECRET_KEY, give every \
             instance `v1:<old hex> v2:<new hex>` and restart them"
                .into(),
        );
    };
    let rotated = read(path)
        .map_err(|problem| in_file(path, &problem))?
        .with_new_version();
    replace(path, &rotated).map_err(|problem| in_file(path, &problem))?;
    let version = rotated.current_version();
    Ok((rotated, version))
}

/// Installs `key` as the one this process links and verifies audit chains with, and when
/// this process has just applied the migration that keys chains (`keying`, from
/// [`domain::audit::chains_await_keying`] asked before migrating), re-links under it the
/// chains made of plain hashes from before; returns what became of each, for the caller to
/// report. A plain chain that does not verify is left as it was. Errors: the database's.
pub async fn install_for_audit(
    db: &domain::db::DatabaseConnection,
    key: &SecretKey,
    keying: bool,
) -> Result<Vec<domain::audit::PlainChain>, domain::db::DbErr> {
    domain::audit::keys::install(key.clone());
    if !keying {
        return Ok(Vec::new());
    }
    domain::audit::upgrade_plain_chains(db).await
}

/// One line saying what became of a plain chain at its upgrade.
pub fn describe_upgrade(outcome: &domain::audit::PlainChain) -> String {
    match outcome {
        domain::audit::PlainChain::Keyed { org_id, events } => format!(
            "the audit chain of organization {org_id} ({events} events) verified as plain              hashes and is now linked under the secret key"
        ),
        domain::audit::PlainChain::LeftBroken { org_id, broken } => format!(
            "the audit chain of organization {org_id} was already broken ({broken}), so it              was left as it was, unkeyed; `lifeline audit verify` names the break"
        ),
    }
}

fn in_file(path: &Path, problem: &str) -> String {
    format!("LIFELINE_SECRET_KEY_FILE {}: {problem}", path.display())
}

/// The key in the file at `path`, refused when others may read or change it.
fn read(path: &Path) -> Result<SecretKey, String> {
    private_files::refuse_if_shared(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    SecretKey::from_hex(&text).map_err(|e| e.to_string())
}

fn load_or_create(path: &Path) -> Result<SecretKey, String> {
    match read(path) {
        Err(_) if !path.exists() => {
            if let Some(folder) = path.parent() {
                private_files::create_folder(folder)?;
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
            file.sync_all().map_err(|e| e.to_string())?;
            tracing::info!(
                path = %path.display(),
                "created a new secret key; keep it with the database backups"
            );
            Ok(key)
        }
        other => other,
    }
}

/// Writes `key` to `path` in place of what is there, atomically.
fn replace(path: &Path, key: &SecretKey) -> Result<(), String> {
    let mut staging = PathBuf::from(path);
    staging.as_mut_os_string().push(".rotating");
    // create_new: a second rotation at the same time stops here instead of losing a version.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .map_err(|e| {
            format!(
                "cannot create {} ({e}); if no other rotation is running, remove it",
                staging.display()
            )
        })?;
    let written = writeln!(file, "{}", key.to_hex())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(error.to_string());
    }
    // The rename is durable once the folder is synced.
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(folder)
            .and_then(|folder| folder.sync_all())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_then_reused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("nested/secret.key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&folder.path().join("nested")), 0o700);
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.to_hex(), second.to_hex());
    }

    #[test]
    fn a_damaged_or_shared_key_file_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secret.key");
        std::fs::write(&path, "not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = load(&SecretKeySource::File(path.clone())).unwrap_err();
        assert!(error.starts_with("LIFELINE_SECRET_KEY_FILE "), "{error}");

        std::fs::write(&path, SecretKey::generate().to_hex()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = load(&SecretKeySource::File(path.clone())).unwrap_err();
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn a_new_version_is_added_to_the_file_and_running_keys_learn_it() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secret.key");
        let source = SecretKeySource::File(path.clone());
        let running = load(&source).unwrap();
        let bare = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            bare.trim().len(),
            64,
            "one version: the format before versions"
        );

        let (rotated, version) = add_version(&source).unwrap();
        assert_eq!(version, 2);
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(&format!("v1:{}\nv2:", bare.trim())),
            "{text}"
        );
        // A running server has version 1 only, until it re-reads the file.
        assert_eq!(running.current_version(), 1);
        let sealed = rotated.seal(b"secret", b"ctx").unwrap();
        assert_eq!(running.open(2, &sealed.bytes, b"ctx").unwrap(), b"secret");
        assert_eq!(running.current_version(), 2);
        assert_eq!(add_version(&source).unwrap().1, 3);

        let inline = SecretKeySource::Inline(SecretKey::generate());
        assert!(
            add_version(&inline)
                .unwrap_err()
                .contains("LIFELINE_SECRET_KEY_FILE")
        );
    }
}
