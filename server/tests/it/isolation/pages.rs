//! Pages that show what was typed, or what was stored, escape it: searches and filters in the
//! address, a plain form's post that is refused, and an exception's free-text reason.

use domain::{authz::Authz, org_policy, testing::TestDatabase};
use reqwest::{Client, header};

use super::answers::{ATTRIBUTE, Answer, SCRIPT, assert_sound, call, form, get, problems, query};
use crate::support::{organizations::Acme, process::Server};

/// Pages that show what was typed, or what was stored, escape it: searches and filters in
/// the address, a plain form's post that is refused, and an exception's reason, which is
/// free text and legitimately stored with its `<` and quotes. Returns the requests made.
pub async fn pages_escape_what_they_show(
    database: &TestDatabase,
    client: &Client,
    server: &Server,
    owner: &str,
    acme: &Acme,
    failures: &mut Vec<String>,
) -> usize {
    let mut tried = 0;
    let pages = [
        format!("/admin/members{}", query(&[("q", SCRIPT)])),
        format!(
            "/admin/audit{}",
            query(&[("actor", SCRIPT), ("action", ATTRIBUTE), ("from", SCRIPT)])
        ),
        format!(
            "/admin/policy{}",
            query(&[
                ("preview", "1"),
                ("backup_codes", SCRIPT),
                ("codes_per_set", ATTRIBUTE),
                ("code_entry", "' OR 1=1 --"),
            ])
        ),
        format!("/admin/policy{}", query(&[("saved", SCRIPT)])),
        format!(
            "/admin/backup{}",
            query(&[("requested", SCRIPT), ("deleted", ATTRIBUTE)])
        ),
        format!("/admin/audit/export{}", query(&[("format", SCRIPT)])),
        format!("/admin/policy/export{}", query(&[("at", SCRIPT)])),
        // Malformed addresses: control characters in a search or filter, numbers too big,
        // bytes that are not UTF-8.
        format!("/admin/members{}", query(&[("q", "a\u{0}b")])),
        format!("/admin/audit{}", query(&[("actor", "a\u{0}b")])),
        format!(
            "/admin/audit/export{}",
            query(&[("format", "csv"), ("action", "a\u{0}b")])
        ),
        format!(
            "/admin/members{}",
            query(&[("after", "99999999999999999999")])
        ),
        format!("/admin/audit{}", query(&[("before", "1e309")])),
        format!("/admin/policy/export{}", query(&[("at", "1e309")])),
        "/admin/members?q=%FF%FE".to_owned(),
        "/admin/audit/export?format=%FF".to_owned(),
    ];
    for path in &pages {
        let answer = get(client, server, path, Some(owner)).await;
        tried += 1;
        let what = format!("GET {path}");
        if answer.status >= 500 {
            failures.push(format!("{what}: {} {:.300}", answer.status, answer.body));
        }
        failures.extend(problems(&what, &answer));
    }
    // The search box shows the search again, escaped.
    let members = get(client, server, &pages[0], Some(owner)).await;
    assert!(
        members
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{:.3000}",
        members.body
    );

    // A plain form's post (no JavaScript) that is refused goes back to its page.
    for (endpoint, fields, page) in [
        (
            "members/add",
            vec![("email", SCRIPT), ("password", SCRIPT), ("role", ATTRIBUTE)],
            "/admin/members",
        ),
        (
            "admin/policy/exceptions/add",
            vec![
                ("email", ATTRIBUTE),
                ("backup_codes", "allow"),
                ("reason", SCRIPT),
            ],
            "/admin/policy",
        ),
        (
            "admin/recovery/request",
            vec![("email", SCRIPT)],
            "/admin/recovery",
        ),
        (
            "admin/backups/request",
            vec![("passphrase", SCRIPT), ("passphrase_again", ATTRIBUTE)],
            "/admin/backup",
        ),
    ] {
        let posted = client
            .post(server.url(&format!("/api/{endpoint}")))
            .header(header::COOKIE, format!("lifeline_session={owner}"))
            .header(header::ACCEPT, "text/html")
            .header(header::REFERER, server.url(page))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let answer = Answer::read(posted).await;
        tried += 1;
        let what = format!("a plain form's post to {endpoint}");
        assert!(
            (300..400).contains(&answer.status),
            "{what}: {} {:.500}",
            answer.status,
            answer.body
        );
        assert_sound(&what, &answer);
        let location = answer.location.clone().unwrap_or_default();
        assert!(location.starts_with(page), "{what}: back at {location}");
        let page = get(client, server, &location, Some(owner)).await;
        assert_eq!(page.status, 200, "{what}: back at {location}");
        assert_sound(&what, &page);
    }

    // A reason is free text: one with markup is stored as typed and shown escaped, on the
    // page and in the data the page hands to the browser for hydration.
    let reason = format!("</script>{SCRIPT} {ATTRIBUTE} ' OR 1=1 -- & more");
    let added = call(
        client,
        server,
        "admin/policy/exceptions/add",
        Some(owner),
        form(&[
            ("email", "member@acme.test"),
            ("backup_codes", "deny"),
            ("reason", &reason),
        ]),
    )
    .await;
    tried += 1;
    assert!(added.status < 400, "{} {}", added.status, added.body);
    let authz = Authz::load(&database.db).await.unwrap();
    let stored = org_policy::exceptions(&database.db, &authz, &acme.owner)
        .await
        .unwrap();
    assert!(
        stored.iter().any(|e| e.reason == reason),
        "stored as typed: {stored:?}"
    );
    for path in ["/admin/policy", "/admin/audit", "/admin/members"] {
        let page = get(client, server, path, Some(owner)).await;
        tried += 1;
        assert_eq!(page.status, 200, "{path}");
        assert_sound(path, &page);
        assert!(!page.body.contains("</script><script>"), "{path}");
    }
    let policy = get(client, server, "/admin/policy", Some(owner)).await;
    assert!(
        policy.body.contains("&lt;img src=x onerror=alert(1)&gt;")
            || policy.body.contains("&lt;img src=x onerror=alert(1)>"),
        "the reason is on the policy page, escaped: {:.5000}",
        policy.body
    );
    tried
}
