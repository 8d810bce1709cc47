//! Pages and server functions as the browser receives them from the real binary.

use domain::testing::TestDatabase;

use crate::support::process::Server;

#[tokio::test]
async fn the_start_page_names_the_product_and_offers_sign_in() {
    let database = TestDatabase::sqlite().await;
    let server = Server::start(&database.url).await;

    let response = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>Lifeline</h1>"), "{html}");
    assert!(html.contains(r#"href="/sign-in""#), "{html}");
    // The page loads the hydration bundle and its stylesheet.
    assert!(html.contains("/pkg/lifeline.js"), "{html}");
    assert!(html.contains("/pkg/lifeline.css"), "{html}");
}

#[tokio::test]
async fn an_unknown_path_gets_a_404_page() {
    let database = TestDatabase::sqlite().await;
    let server = Server::start(&database.url).await;

    let response = reqwest::get(server.url("/no/such/page")).await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn the_status_check_reports_a_current_schema() {
    let database = TestDatabase::sqlite().await;
    let server = Server::start(&database.url).await;

    let response = reqwest::Client::new()
        .post(server.url("/api/check_status"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let status: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, serde_json::json!({ "schema_current": true }));
}

/// Every file of the site's package: the build writes a gzipped copy beside each
/// (scripts/build-site.sh), and the server sends it to a browser that accepts gzip. A file
/// added to the package joins this table.
const PACKAGE: &[(&str, &str)] = &[
    ("lifeline.wasm", "application/wasm"),
    ("lifeline.js", "text/javascript"),
    ("lifeline.css", "text/css"),
];

#[tokio::test]
async fn the_package_is_sent_gzipped_to_a_browser_that_accepts_it() {
    let database = TestDatabase::sqlite().await;
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    for (name, _) in PACKAGE {
        std::fs::write(pkg.join(name), format!("the file {name}")).unwrap();
        std::fs::write(pkg.join(format!("{name}.gz")), format!("{name}, gzipped")).unwrap();
    }
    // Built by another tool (`cargo leptos watch`), without compressed copies.
    std::fs::write(pkg.join("extra.js"), "no copy").unwrap();
    let site_root = site.path().display().to_string();
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LEPTOS_SITE_ROOT", &site_root),
    ])
    .await;

    let client = reqwest::Client::new();
    let get = |path: String, encodings: &'static str| {
        let request = client.get(server.url(&path));
        async move {
            let response = request
                .header("accept-encoding", encodings)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|value| value.to_str().unwrap().to_owned())
            };
            let seen = (header("content-encoding"), header("content-type"));
            (seen, response.text().await.unwrap())
        }
    };
    for (name, content_type) in PACKAGE {
        let path = format!("/pkg/{name}");
        let ((encoding, kind), body) = get(path.clone(), "gzip, deflate, br").await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{name}");
        assert!(kind.unwrap().starts_with(content_type), "{name}");
        assert_eq!(body, format!("{name}, gzipped"));

        let ((encoding, kind), body) = get(path, "identity").await;
        assert_eq!(encoding, None, "{name}");
        assert!(kind.unwrap().starts_with(content_type), "{name}");
        assert_eq!(body, format!("the file {name}"));
    }
    let ((encoding, _), body) = get("/pkg/extra.js".into(), "gzip").await;
    assert_eq!((encoding, body.as_str()), (None, "no copy"));
}
