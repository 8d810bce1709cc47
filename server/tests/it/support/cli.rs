//! The `lifeline` command line as the tests use it: any command with its standard input, and
//! the commands that create organizations and members.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::support::{PASSWORD, process::lifeline};

/// Runs `lifeline ARGS` with `stdin` on standard input; returns (success, stdout, stderr).
pub async fn cli(database_url: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    cli_with(&[("DATABASE_URL", database_url)], args, stdin).await
}

/// Runs `lifeline ARGS` with these environment variables (on top of the harness's) and
/// `stdin` on standard input; returns (success, stdout, stderr).
pub async fn cli_with(vars: &[(&str, &str)], args: &[&str], stdin: &str) -> (bool, String, String) {
    let workdir = tempfile::tempdir().unwrap();
    let mut child = lifeline(workdir.path())
        .envs(vars.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lifeline create-org`: the organization `name` with its owner `email`, whose password is
/// [`PASSWORD`].
pub async fn create_org(database_url: &str, name: &str, email: &str) {
    let (ok, _, stderr) = cli(
        database_url,
        &["create-org", "--name", name, "--admin-email", email],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{stderr}");
}

/// `lifeline create-user`: `email` with `role` in the organization whose `--org` is `org`,
/// with [`PASSWORD`].
pub async fn create_user(database_url: &str, org: &str, email: &str, role: &str) {
    let (ok, _, stderr) = cli(
        database_url,
        &[
            "create-user",
            "--org",
            org,
            "--email",
            email,
            "--role",
            role,
        ],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{stderr}");
}
