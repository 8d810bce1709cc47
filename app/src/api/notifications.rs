//! The member's security notifications in the app: the same messages their email gets, newest
//! first, with how many are unread for the header, and marking them read.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// How many notifications the page lists.
#[cfg(feature = "ssr")]
const LISTED: u64 = 100;

/// One notification, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    pub id: i32,
    pub subject: String,
    /// The message's text, paragraphs separated by blank lines.
    pub text: String,
    pub at: String,
    pub read: bool,
}

/// The notifications page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsOverview {
    /// The address the member signs in with, which always gets their notices.
    pub sign_in_address: String,
    /// Their second address, if they added one, and whether it is confirmed.
    pub second_address: Option<(String, bool)>,
    pub items: Vec<NotificationView>,
}

/// The signed-in member's notifications and where they are sent.
#[server(endpoint = "account/notifications")]
pub async fn get_notifications() -> Result<NotificationsOverview, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let items =
            domain::notifications::inbox(&state.db, member.id, &member.email, LISTED).await?;
        let second = domain::notification_addresses::second_address(&state.db, &member).await?;
        Ok(NotificationsOverview {
            sign_in_address: member.email,
            second_address: second.map(|address| (address.email, address.verified)),
            items: items
                .into_iter()
                .map(|item| NotificationView {
                    id: item.id,
                    subject: item.subject,
                    text: item.text,
                    at: crate::api::readable_time(item.created_at),
                    read: item.read,
                })
                .collect(),
        })
    })
    .await
}

/// Sets the signed-in member's second address and sends a confirmation link to it.
#[server(endpoint = "account/notifications/address")]
pub async fn add_notification_address(email: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::signed_in().await?;
        domain::notification_addresses::add(
            &crate::auth::command(&state, &member, &source),
            &email,
        )
        .await?;
        leptos_axum::redirect("/account/notifications?sent=1");
        Ok(())
    })
    .await
}

/// Removes the signed-in member's second address.
#[server(endpoint = "account/notifications/address/remove")]
pub async fn remove_notification_address() -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::signed_in().await?;
        domain::notification_addresses::remove(&crate::auth::command(&state, &member, &source))
            .await?;
        leptos_axum::redirect("/account/notifications");
        Ok(())
    })
    .await
}

/// Confirms the address a link was sent to; no sign-in needed (the link may be opened on
/// another device).
#[server(endpoint = "account/notifications/address/verify")]
pub async fn verify_notification_address(token: String) -> Result<(), AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let source = crate::auth::request_source();
        domain::notification_addresses::verify(&state.db, &token, &source, chrono::Utc::now())
            .await?;
        leptos_axum::redirect("/account/notification-address/verified");
        Ok(())
    })
    .await
}

/// How many of the signed-in member's notifications are unread; 0 when nobody is signed in.
#[server(endpoint = "account/notifications/unread")]
pub async fn unread_notifications() -> Result<u64, AppError> {
    crate::api::respond(async {
        let state = crate::state::app_state()?;
        let session = crate::auth::session().await?;
        let Some(member) = crate::auth::current_member(&state, &session).await? else {
            return Ok(0);
        };
        Ok(domain::notifications::unread(&state.db, member.id, &member.email).await?)
    })
    .await
}

/// Marks every notification of the signed-in member read.
#[server(endpoint = "account/notifications/read")]
pub async fn mark_notifications_read() -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        domain::notifications::mark_read(&state.db, member.id, &member.email, chrono::Utc::now())
            .await?;
        leptos_axum::redirect("/account/notifications");
        Ok(())
    })
    .await
}
