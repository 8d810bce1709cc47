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
