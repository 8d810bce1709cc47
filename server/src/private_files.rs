//! Files that hold secrets or the data: created readable by the server's user only (folders
//! 0700, files 0600), and a key file that others may read is refused.

use std::{
    fs::{DirBuilder, OpenOptions},
    io::ErrorKind,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// Creates `folder` and any missing parents with mode 0700 (folders that exist are left as
/// they are). Errors: the file system's, as one line.
pub fn create_folder(folder: &Path) -> Result<(), String> {
    if folder.as_os_str().is_empty() || folder.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .map_err(|e| format!("cannot create the folder {}: {e}", folder.display()))
}

/// Creates the new file `path` with mode 0600 for writing; fails if it exists (nothing is
/// overwritten). Errors: the file system's.
pub fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Creates the SQLite file a `sqlite:` database URL names, when missing, with mode 0600 (and
/// its folder with 0700), before SQLite would create it with the process's umask (often
/// 0644: readable by every user of the machine). SQLite gives its `-wal` and `-shm` files the
/// database file's mode. In-memory databases and other engines are left alone.
pub fn create_sqlite_file(database_url: &str) -> Result<(), String> {
    let Some(path) = sqlite_file(database_url) else {
        return Ok(());
    };
    let path = Path::new(path);
    if let Some(folder) = path.parent() {
        create_folder(folder)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(format!("cannot create {}: {error}", path.display())),
    }
}

/// The file a `sqlite:` URL names (`sqlite://data/x.db?mode=rwc` → `data/x.db`); `None` for
/// other engines and in-memory databases.
fn sqlite_file(database_url: &str) -> Option<&str> {
    let url = database_url.trim();
    let (scheme, rest) = url.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sqlite") {
        return None;
    }
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (!path.is_empty() && path != ":memory:" && !query.contains("mode=memory")).then_some(path)
}

/// Refuses a secret file whose mode lets the group or other users read, write or run it,
/// with the `chmod` that fixes it. Errors: that, or the file system's.
pub fn refuse_if_shared(path: &Path) -> Result<(), String> {
    let mode = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "other users may read or change it (mode {:03o}); only the server's user may: \
             run `chmod 600 {}`",
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_sqlite_file_and_its_folder_are_created_private() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("data/nested/lifeline.db");
        create_sqlite_file(&format!("sqlite://{}?mode=rwc", file.display())).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&folder.path().join("data")), 0o700);
        assert_eq!(mode(&folder.path().join("data/nested")), 0o700);
        // An existing file is left as it is.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        create_sqlite_file(&format!("sqlite://{}", file.display())).unwrap();
        assert_eq!(mode(&file), 0o640);
    }

    #[test]
    fn only_sqlite_files_are_named() {
        for (url, file) in [
            ("sqlite://data/lifeline.db", Some("data/lifeline.db")),
            ("sqlite:lifeline.db?mode=rwc", Some("lifeline.db")),
            ("sqlite:///var/lib/x.db", Some("/var/lib/x.db")),
            ("sqlite::memory:", None),
            ("sqlite://shared?mode=memory", None),
            ("postgres://u@h/db", None),
        ] {
            assert_eq!(sqlite_file(url), file, "{url}");
        }
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_fix() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secret.key");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = refuse_if_shared(&path).unwrap_err();
        assert!(
            error.contains("mode 644") && error.contains("chmod 600"),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        refuse_if_shared(&path).unwrap();
    }
}
