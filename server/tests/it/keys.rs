//! Key hygiene through the real binary: the data folder, the SQLite file and the key file
//! are created for the server's user only, and a key file others may read is refused.

use std::{os::unix::fs::PermissionsExt, path::Path};

use crate::support::{cli::cli_with, process::run_to_exit};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn data_and_key_files_are_created_private_and_a_shared_key_file_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("data/db/lifeline.db");
    let key_file = folder.path().join("keys/secret.key");
    let url = format!("sqlite://{}", database.display());
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("LIFELINE_SECRET_KEY_FILE", key_file.to_str().unwrap()),
    ];
    let (ok, _, stderr) = cli_with(
        &vars,
        &[
            "create-org",
            "--name",
            "Acme",
            "--admin-email",
            "owner@acme.test",
        ],
        &format!("{}\n", crate::support::PASSWORD),
    )
    .await;
    assert!(ok, "{stderr}");
    for (path, expected) in [
        (folder.path().join("data"), 0o700),
        (folder.path().join("data/db"), 0o700),
        (database.clone(), 0o600),
        (folder.path().join("keys"), 0o700),
        (key_file.clone(), 0o600),
    ] {
        assert_eq!(mode(&path), expected, "{}", path.display());
    }

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, stderr) = run_to_exit(&vars).await;
    assert!(!ok);
    assert!(
        stderr.starts_with("lifeline: LIFELINE_SECRET_KEY_FILE ")
            && stderr.contains(&format!("run `chmod 600 {}`", key_file.display())),
        "{stderr}"
    );
    let (ok, _, stderr) = cli_with(&vars, &["audit", "verify", "--org", "acme"], "").await;
    assert!(!ok && stderr.contains("chmod 600"), "{stderr}");
}
