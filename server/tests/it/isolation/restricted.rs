//! The limits a backup-code sign-in may set on a session ("Only MFA settings after a
//! sign-in with a backup code", and "New set required when codes run low" when the sign-in
//! leaves the member low), each on every route the server answers, through the real binary.
//!
//! The routes come from the sources (`support::sources::every_route`: the app's pages, the
//! server functions, the server's own routes), so a route added later is tried here without
//! anyone listing it: unless it is in [`STILL_OPEN`], it must be refused.

use chrono::{Duration, Utc};
use domain::{
    accounts,
    audit::Source,
    authz::Authz,
    command::Command,
    mfa,
    org_policy::{self, CodesMode, OrgPolicy},
    secrets::SecretKey,
    sign_in::SessionLimit,
    testing::{TestDatabase, postgres_admin_url},
};
use reqwest::{Client, Method, StatusCode, header};

use super::{
    SERVER_FUNCTIONS,
    answers::{Answer, call, form},
    baseline_with, pairs,
};
use crate::support::{
    PASSWORD,
    cli::create_org,
    client::{SecondFactor, client, post, sign_in_with},
    organizations::enrol_with_codes,
    process::Server,
    sources::{Route, RouteKind, every_route},
};

/// What a session limited to MFA settings still reaches: the public pages and the sign-in
/// steps, signing out, and the member's own account and MFA settings. Every other route is
/// refused; a route added here is a decision to review.
const STILL_OPEN: [&str; 45] = [
    // Public.
    "/",
    "/api/check_status",
    "/healthz",
    "/readyz",
    "/sign-in",
    "/sign-in/password",
    "/sign-in/verify",
    "/sign-in/help",
    "/sign-in/backup-code",
    "/api/sign_in/email",
    "/api/sign_in/password",
    "/api/sign_in/code",
    "/api/sign_in/backup_code",
    "/api/sign_in/backup_code/slot",
    "/api/sign_in/progress",
    "/api/sign_in/help",
    // Signing out.
    "/api/sign_out",
    "/not-me",
    "/not-me/reported",
    "/api/not_me/check",
    "/api/not_me/report",
    // The member's own account and MFA settings.
    "/account",
    "/api/account",
    "/account/recovered",
    "/account/mfa/setup",
    "/api/account/mfa/setup",
    "/api/account/mfa/confirm",
    "/api/account/mfa/disable",
    "/account/mfa/replace",
    "/api/account/mfa/replace",
    "/api/account/mfa/replace/confirm",
    "/account/confirm",
    "/api/account/confirm",
    "/account/backup-codes",
    "/api/account/backup-codes",
    "/api/account/backup-codes/generate",
    // The member's own security notifications, and the count in every page's header.
    "/account/notifications",
    "/api/account/notifications",
    "/api/account/notifications/unread",
    "/api/account/notifications/read",
    "/api/account/notifications/address",
    "/api/account/notifications/address/remove",
    // Confirming a second address, from the link sent to it.
    "/account/notification-address/verify",
    "/account/notification-address/verified",
    "/api/account/notifications/address/verify",
];

/// A policy that sets `limit` on Acme's owner: on a backup-code sign-in with the first of
/// ten codes, or (`CodesRequired`) at once, their set being older than its maximum age and
/// "Required"'s date yesterday.
fn policy_setting(limit: SessionLimit) -> OrgPolicy {
    match limit {
        SessionLimit::MfaSettings => OrgPolicy {
            restrict_after_backup_sign_in: true,
            ..OrgPolicy::default()
        },
        // Nine codes left is at the threshold: low.
        SessionLimit::NewSet => OrgPolicy {
            low_codes_threshold: 9,
            replace_when_low: true,
            ..OrgPolicy::default()
        },
        SessionLimit::CodesRequired => OrgPolicy {
            codes: CodesMode::Required,
            max_set_age_days: 1,
            required_from: Some((Utc::now() - Duration::days(1)).date_naive()),
            ..OrgPolicy::default()
        },
    }
}

/// Acme's owner, with MFA and ten backup codes, under a policy that sets `limit`
/// ([`policy_setting`]), signed in: with a backup code, or (`CodesRequired`, whose set made
/// two days ago has expired) with the authenticator. The server, a client and the session.
async fn signed_in_limited(
    database: &TestDatabase,
    limit: SessionLimit,
) -> (Server, Client, String) {
    let key = SecretKey::generate();
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let baseline = Authz::baseline().await.unwrap();
    let made = match limit {
        SessionLimit::CodesRequired => Utc::now() - Duration::days(2),
        SessionLimit::MfaSettings | SessionLimit::NewSet => Utc::now(),
    };
    let enrolled = enrol_with_codes(&database.db, &baseline, &key, 1, made).await;
    let owner = accounts::member(&database.db, 1).await.unwrap().unwrap();
    let authz = Authz::load(&database.db).await.unwrap();
    let source = Source::default();
    let policy = policy_setting(limit);
    org_policy::save(
        &Command::new(&database.db, &authz, &owner, &source, Utc::now()),
        0,
        &policy,
    )
    .await
    .unwrap();
    let server = Server::start_with_key(&database.url, &key, &[]).await;
    let client = client();
    let authenticator = mfa::code_at(&enrolled.setup_key, Utc::now()).unwrap();
    let factor = match limit {
        SessionLimit::CodesRequired => SecondFactor::AuthenticatorCode(&authenticator),
        SessionLimit::MfaSettings | SessionLimit::NewSet => {
            SecondFactor::BackupCode(&enrolled.codes[0])
        }
    };
    let session = sign_in_with(&client, &server, "owner@acme.test", factor).await;
    (server, client, session)
}

/// The refusal's words under `limit` (`app::auth::beyond_mfa_settings`).
fn refusal_words(limit: SessionLimit) -> String {
    app::auth::beyond_mfa_settings(limit).to_string()
}

/// Sends `route` as the browser would, with `session`: a server function as the hydrated app
/// calls it, with its baseline arguments from `SERVER_FUNCTIONS`; a page, a download or a
/// plain form as a browser without JavaScript asks for it, with `1` for an `{id}` in its path.
async fn send(client: &Client, server: &Server, route: &Route, session: &str) -> Answer {
    if route.kind == RouteKind::ServerFunction {
        let endpoint = route.path.strip_prefix("/api/").unwrap();
        let function = SERVER_FUNCTIONS
            .iter()
            .find(|function| function.endpoint == endpoint)
            .unwrap_or_else(|| panic!("{endpoint} is not in SERVER_FUNCTIONS"));
        let fields = baseline_with(function, None);
        return call(
            client,
            server,
            endpoint,
            Some(session),
            form(&pairs(&fields)),
        )
        .await;
    }
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut request = client
        .request(method.clone(), server.url(&route.path.replace("{id}", "1")))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html");
    if method == Method::POST {
        request = request.form(&[] as &[(&str, &str)]);
    }
    Answer::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn under_each_limit_every_route_but_the_mfa_settings_is_refused() {
    let routes = every_route();
    for open in STILL_OPEN {
        assert!(
            routes.iter().any(|route| route.path == open),
            "STILL_OPEN names {open}, which no route answers"
        );
    }
    let cases = SessionLimit::ALL
        .into_iter()
        .flat_map(|limit| [false, true].map(move |postgres| (limit, postgres)));
    for (limit, postgres) in cases {
        let database = match (postgres, postgres_admin_url()) {
            (false, _) => TestDatabase::sqlite().await,
            (true, Some(admin_url)) => TestDatabase::postgres(&admin_url).await,
            (true, None) => continue,
        };
        let (server, client, session) = signed_in_limited(&database, limit).await;
        let refused_words = refusal_words(limit);
        let mut failures = Vec::new();
        // Signing out ends the session: it goes last.
        let (sign_out, others): (Vec<&Route>, Vec<&Route>) = routes
            .iter()
            .partition(|route| route.path == "/api/sign_out");
        for route in others.into_iter().chain(sign_out) {
            let answer = send(&client, &server, route, &session).await;
            let what = format!("{} {}", route.method, route.path);
            // The member's own pages show the same words as a banner: a refusal is a 403.
            let refused = answer.status == 403 && answer.body.contains(&refused_words);
            if answer.status >= 500 {
                failures.push(format!("{what}: {} {:.300}", answer.status, answer.body));
            }
            if STILL_OPEN.contains(&route.path.as_str()) {
                if refused {
                    failures.push(format!(
                        "{what}: refused, but it is a public page, sign-out or the member's MFA \
                         settings"
                    ));
                }
            } else if !refused {
                failures.push(format!(
                    "{what}: not refused under {limit:?}: {} {:.300}",
                    answer.status, answer.body
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} routes:\n{}",
            failures.len(),
            routes.len(),
            failures.join("\n")
        );
    }
}

#[tokio::test]
async fn the_downloads_are_refused_like_every_other_admin_route() {
    let database = TestDatabase::sqlite().await;
    let limit = SessionLimit::MfaSettings;
    let (server, client, session) = signed_in_limited(&database, limit).await;
    let refused_words = refusal_words(limit);
    let members = post(&client, &server, "/api/members", Some(&session), &[]).await;
    assert_eq!(members.status(), StatusCode::FORBIDDEN);
    let error: serde_json::Value = members.json().await.unwrap();
    assert_eq!(error["Refused"], refused_words.as_str());
    // As a script or `curl` asks for them: no file, the reason instead.
    for path in [
        "/admin/audit/export?format=csv",
        "/admin/policy/export",
        "/admin/backup/1/download",
    ] {
        let download = client
            .get(server.url(path))
            .header(header::COOKIE, format!("lifeline_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(
            download
                .headers()
                .get(header::CONTENT_DISPOSITION)
                .is_none(),
            "{path}"
        );
        assert_eq!(download.text().await.unwrap(), refused_words, "{path}");
    }
    // A plain form's post to a refused server function goes back to its page with the reason.
    let posted = client
        .post(server.url("/api/members/add"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .header(header::REFERER, server.url("/account"))
        .form(&[("email", "new@acme.test"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::FOUND);
    let location = posted.headers()[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with(&server.url("/account?__path=%2Fapi%2Fmembers%2Fadd&__err=")),
        "{location}"
    );
}

#[tokio::test]
async fn lifting_the_limit_needs_the_password_typed_again() {
    let database = TestDatabase::sqlite().await;
    let (server, client, session) = signed_in_limited(&database, SessionLimit::MfaSettings).await;
    let members = || post(&client, &server, "/api/members", Some(&session), &[]);

    // The backup-code sign-in is not the password typed again: new codes ask for it.
    let status: serde_json::Value = post(
        &client,
        &server,
        "/api/account/backup-codes",
        Some(&session),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        status["limited"],
        app::auth::limit_explained(SessionLimit::MfaSettings)
    );
    assert_eq!(status["needs_password"], true);
    // The generate form names the set it replaces, where the page gives one.
    let replaces = status["replaces"].as_str().map(str::to_owned);
    let generate = |password: Option<&'static str>| {
        let mut fields = Vec::new();
        if let Some(password) = password {
            fields.push(("password", password.to_owned()));
        }
        if let Some(replaces) = &replaces {
            fields.push(("replaces", replaces.clone()));
        }
        let (client, server, session) = (&client, &server, &session);
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post(
                client,
                server,
                "/api/account/backup-codes/generate",
                Some(session),
                &fields,
            )
            .await
        }
    };
    let asked = generate(None).await;
    assert_eq!(asked.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: serde_json::Value = asked.json().await.unwrap();
    assert_eq!(error["Invalid"]["field"], "password");
    assert_eq!(members().await.status(), StatusCode::FORBIDDEN);

    // So does a new authenticator, before its code is even read.
    let authenticator = post(
        &client,
        &server,
        "/api/account/mfa/confirm",
        Some(&session),
        &[("code", "000000")],
    )
    .await;
    assert_eq!(authenticator.status(), StatusCode::FORBIDDEN);
    let error: serde_json::Value = authenticator.json().await.unwrap();
    assert_eq!(error, "ReauthenticationRequired");
    assert_eq!(members().await.status(), StatusCode::FORBIDDEN);

    // A wrong password lifts nothing.
    let wrong = generate(Some("not the password")).await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(members().await.status(), StatusCode::FORBIDDEN);

    // The password typed again: new codes, and the limit is lifted on every route.
    let fresh = generate(Some(PASSWORD)).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let fresh: serde_json::Value = fresh.json().await.unwrap();
    assert_eq!(fresh["codes"].as_array().unwrap().len(), 10);
    assert_eq!(members().await.status(), StatusCode::OK);
    let export = client
        .get(server.url("/admin/audit/export?format=csv"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_new_set_owed_is_lifted_by_new_codes_and_not_by_a_new_authenticator() {
    let database = TestDatabase::sqlite().await;
    let limit = SessionLimit::NewSet;
    let (server, client, session) = signed_in_limited(&database, limit).await;
    let call = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let (client, server, session) = (&client, &server, &session);
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post(client, server, path, Some(session), &fields).await
        }
    };
    let members_refused = || async {
        let members = call("/api/members", vec![]).await;
        assert_eq!(members.status(), StatusCode::FORBIDDEN);
        let error: serde_json::Value = members.json().await.unwrap();
        assert_eq!(error["Refused"], refusal_words(limit).as_str());
    };
    let codes_status = || async {
        call("/api/account/backup-codes", vec![])
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    members_refused().await;
    let status = codes_status().await;
    assert_eq!(status["limited"], app::auth::limit_explained(limit));
    assert_eq!(status["codes"]["remaining"], 9);

    // The password typed again, MFA off and a new authenticator set up: the codes are still
    // what they were (none, now), so the new set is still owed.
    let confirmed = call(
        "/api/account/confirm",
        vec![("password", PASSWORD.into()), ("next", "/account".into())],
    )
    .await;
    assert!(confirmed.status().is_success() || confirmed.status().is_redirection());
    let off = call(
        "/api/account/mfa/disable",
        vec![("password", PASSWORD.into())],
    )
    .await;
    assert!(off.status().is_success() || off.status().is_redirection());
    let setup: serde_json::Value = call("/api/account/mfa/setup", vec![])
        .await
        .json()
        .await
        .unwrap();
    let setup_key = setup["setup_key"].as_str().unwrap().replace(' ', "");
    let code = domain::mfa::code_at(&setup_key, Utc::now()).unwrap();
    let on = call("/api/account/mfa/confirm", vec![("code", code)]).await;
    assert!(
        on.status().is_success() || on.status().is_redirection(),
        "{}",
        on.text().await.unwrap()
    );
    members_refused().await;

    // A new set lifts it.
    let status = codes_status().await;
    let replaces = status["replaces"].as_str().unwrap().to_owned();
    let fresh = call(
        "/api/account/backup-codes/generate",
        vec![("replaces", replaces)],
    )
    .await;
    assert_eq!(
        fresh.status(),
        StatusCode::OK,
        "{}",
        fresh.text().await.unwrap()
    );
    assert_eq!(call("/api/members", vec![]).await.status(), StatusCode::OK);
    let status = codes_status().await;
    assert_eq!(status["limited"], serde_json::Value::Null);
}
