//! Crash safety and log hygiene through the real binary: the server killed with SIGKILL in
//! the middle of concurrent regenerations and redemptions leaves whole sets and an audit
//! event for every spent code (`sigkill`, checked with `database`); and a whole journey
//! logged at trace level writes no secret (`log_hygiene`).

mod database;
mod log_hygiene;
mod sigkill;

use std::time::Duration;

use reqwest::{Client, StatusCode};

use crate::support::pages::{codes_on_page, post_generate_form};

/// How long a request waits for an answer before the tests take the server for dead.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// How a request the test sent ended.
#[derive(Debug)]
enum Reply<T> {
    /// It did what was asked.
    Done(T),
    /// The server answered, with a refusal or an error.
    Refused(StatusCode),
    /// No answer: the server died with the request in flight.
    CutOff,
}

/// Posts the "Generate New Codes" form as the signed-in `session` (signed in moments ago,
/// so no password is asked); the new codes, or how the request ended.
async fn regenerate(client: Client, url: String, session: String) -> Reply<Vec<String>> {
    let Ok(response) = post_generate_form(&client, &url, &session, "").await else {
        return Reply::CutOff;
    };
    let status = response.status();
    let Ok(html) = response.text().await else {
        return Reply::CutOff;
    };
    let codes = codes_on_page(&html);
    if status == StatusCode::OK && codes.len() == 10 {
        Reply::Done(codes)
    } else if status == StatusCode::OK {
        // The page answered without codes: an error shown on the page.
        Reply::Refused(StatusCode::UNPROCESSABLE_ENTITY)
    } else {
        Reply::Refused(status)
    }
}
