//! The policy endpoints through the real binary: bad settings, stale versions, members and
//! other organizations are refused with a clear answer, and nothing is written.

use domain::{command::Command, org_policy, testing::TestDatabase};

use crate::support::{
    cli::{cli, create_org, create_user},
    client::{client, policy_fields, post, save_policy, sign_in},
    process::Server,
};

#[tokio::test]
async fn bad_settings_stale_versions_and_outsiders_are_refused_and_nothing_is_written() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    create_org(&database.url, "Globex", "owner@globex.test").await;
    create_user(&database.url, "acme", "member@acme.test", "member").await;
    let server = Server::start(&database.url).await;
    let client = client();
    let owner = sign_in(&client, &server, "owner@acme.test").await;
    let member = sign_in(&client, &server, "member@acme.test").await;
    let stranger = sign_in(&client, &server, "owner@globex.test").await;

    let save = |session: &str, version: &str, replace: (&str, &str)| {
        let mut form = policy_fields(replace);
        form.push(("expected_version".into(), version.into()));
        save_policy(&client, &server, session.to_owned(), form)
    };
    let too_long = "9".repeat(10 * 1024);
    let bad: [(&str, &str); 9] = [
        ("codes_per_set", "4"),
        ("codes_per_set", "21"),
        ("codes_per_set", "ten"),
        ("codes_per_set", &too_long),
        ("max_set_age_days", "-1"),
        ("low_codes_threshold", "10"),
        ("lockout_attempts", "0"),
        ("backup_codes", "<script>alert(1)</script>"),
        ("code_entry", "' OR 1=1 --"),
    ];
    for (field, value) in bad {
        let response = save(&owner, "0", (field, value)).await;
        assert_eq!(response.status().as_u16(), 422, "{field} = {value:.20}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["Invalid"]["field"], field, "{error}");
        assert!(!error.to_string().contains("<script>"));
    }
    // A wrong-typed version is a bad request, not a server error.
    let response = save(&owner, "abc", ("backup_codes", "allowed")).await;
    assert_eq!(response.status().as_u16(), 400);

    // Members are refused; another organization's owner can only change their own.
    let response = save(&member, "0", ("backup_codes", "not_allowed")).await;
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(
        org_policy::current(&database.db, 1).await.unwrap().version,
        0
    );
    let response = save(&stranger, "0", ("backup_codes", "not_allowed")).await;
    assert!(response.status().is_redirection() || response.status().is_success());
    assert_eq!(
        org_policy::current(&database.db, 1).await.unwrap().version,
        0
    );
    assert_eq!(
        org_policy::current(&database.db, 2).await.unwrap().version,
        1
    );

    // The owner saves version 1; a save still based on version 0 is a conflict.
    let response = save(&owner, "0", ("backup_codes", "not_allowed")).await;
    assert!(response.status().is_redirection() || response.status().is_success());
    let stale = save(&owner, "0", ("codes_per_set", "12")).await;
    assert_eq!(stale.status().as_u16(), 403);
    assert!(
        stale
            .text()
            .await
            .unwrap()
            .contains("Another administrator changed the policy")
    );
    let current = org_policy::current(&database.db, 1).await.unwrap();
    assert_eq!((current.version, current.policy.codes_per_set), (1, 10));

    // Exceptions: unknown and other organizations' members read the same; a reason is needed.
    for (email, reason, status, field) in [
        ("nobody@acme.test", "x", 403, None),
        ("owner@globex.test", "x", 403, None),
        ("member@acme.test", "", 422, Some("reason")),
        ("not-an-email", "x", 422, Some("email")),
    ] {
        let response = post(
            &client,
            &server,
            "/api/admin/policy/exceptions/add",
            Some(&owner),
            &[
                ("email", email),
                ("backup_codes", "allow"),
                ("reason", reason),
            ],
        )
        .await;
        assert_eq!(response.status().as_u16(), status, "{email}");
        if let Some(field) = field {
            let error: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error["Invalid"]["field"], field);
        }
    }
    let response = post(
        &client,
        &server,
        "/api/admin/policy/exceptions/remove",
        Some(&owner),
        &[("exception_id", "-5")],
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(!server.log().iter().any(|line| line.contains("panicked")));
}

#[tokio::test]
async fn the_policy_exports_with_its_rules_from_the_command_line_and_the_page() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    create_user(&database.url, "acme", "member@acme.test", "member").await;
    let owner_member = domain::accounts::member(&database.db, 1)
        .await
        .unwrap()
        .unwrap();
    let authz = domain::authz::Authz::load(&database.db).await.unwrap();
    let source = domain::audit::Source::default();
    org_policy::save(
        &Command::new(
            &database.db,
            &authz,
            &owner_member,
            &source,
            chrono::Utc::now(),
        ),
        0,
        &org_policy::OrgPolicy {
            codes: org_policy::CodesMode::NotAllowed,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let (ok, stdout, stderr) = cli(&database.url, &["policy", "export", "--org", "acme"], "").await;
    assert!(ok, "{stderr}");
    let export: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(export["version"], 1);
    assert_eq!(export["settings"]["codes"], "NotAllowed");
    let rules: Vec<&str> = export["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(rules.contains(&"p, member, *, backup_codes, redeem, allow"));
    assert!(rules.contains(&"p, member, org:1, backup_codes, redeem, deny"));

    let server = Server::start(&database.url).await;
    let client = client();
    let owner = sign_in(&client, &server, "owner@acme.test").await;
    let member = sign_in(&client, &server, "member@acme.test").await;
    let get_at = |session: &str, query: &str| {
        client
            .get(server.url(&format!("/admin/policy/export{query}")))
            .header(
                reqwest::header::COOKIE,
                format!("lifeline_session={session}"),
            )
            .send()
    };
    let get = |session: &str| get_at(session, "");
    let download = get(&owner).await.unwrap();
    assert_eq!(download.status().as_u16(), 200);
    let from_page: serde_json::Value = download.json().await.unwrap();
    assert_eq!(from_page["rules"], export["rules"]);
    assert_eq!(get(&member).await.unwrap().status().as_u16(), 403);

    // As it stood on a past day: before the first save, the defaults and the baseline only.
    let past = get_at(&owner, "?at=2020-01-01").await.unwrap();
    assert_eq!(past.status().as_u16(), 200);
    let past: serde_json::Value = past.json().await.unwrap();
    assert_eq!(past["version"], 0);
    assert_eq!(past["settings"]["codes"], "Allowed");
    assert!(
        !past["rules"].to_string().contains("org:1"),
        "no rule of the organization's own yet: {}",
        past["rules"]
    );
    let (ok, stdout, stderr) = cli(
        &database.url,
        &["policy", "export", "--org", "acme", "--at", "2020-01-01"],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    let from_cli: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(from_cli["rules"], past["rules"]);
    // A moment that is not one gets a clear message, from the page and the command line.
    let bad = get_at(&owner, "?at=yesterday").await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("2026-01-01"));
    assert_eq!(
        get_at(&member, "?at=2020-01-01")
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let (ok, _, stderr) = cli(
        &database.url,
        &["policy", "export", "--org", "acme", "--at", "yesterday"],
        "",
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("--at: Give a day like 2026-01-01"),
        "{stderr}"
    );
}
