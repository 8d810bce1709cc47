//! The webhooks page, for owners: the organization's webhooks with their latest deliveries,
//! adding one (its signing secret shown once) and removing one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One delivery, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRow {
    /// The event's action, e.g. `backup_code.redeemed`.
    pub event: String,
    pub written_at: String,
    /// `Delivered`, `Waiting` or `Failed`.
    pub state: String,
    /// When it was delivered or given up on, or when it is tried next.
    pub state_at: String,
    pub attempts: i32,
    pub last_error: String,
}

/// One webhook, as the page lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRow {
    pub id: i32,
    pub name: String,
    pub url: String,
    /// "Every event", or the families chosen.
    pub events: String,
    pub added: String,
    pub added_by: String,
    pub deliveries: Vec<DeliveryRow>,
}

/// A family of events a webhook can choose, e.g. `backup_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFamily {
    pub name: String,
    /// Its actions without the family, e.g. `redeemed, refused, locked`.
    pub actions: String,
}

/// The webhooks page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhooksOverview {
    pub webhooks: Vec<WebhookRow>,
    /// The event families a webhook can choose.
    pub families: Vec<EventFamily>,
    /// The most webhooks an organization may have.
    pub max: u64,
    /// Deliveries listed per webhook.
    pub listed_deliveries: u64,
}

/// The organization's webhooks with their latest deliveries.
#[server(endpoint = "admin/webhooks")]
pub async fn get_webhooks() -> Result<WebhooksOverview, AppError> {
    use domain::notifications::webhooks::DeliveryState;
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let overview =
            domain::org_policy::webhooks::webhooks_overview(&state.db, &state.authz, &member)
                .await?;
        let time = crate::api::readable_time;
        Ok(WebhooksOverview {
            webhooks: overview
                .into_iter()
                .map(|entry| WebhookRow {
                    id: entry.webhook.id,
                    events: if entry.webhook.families.is_empty() {
                        "Every event".to_owned()
                    } else {
                        entry.webhook.families.join(", ")
                    },
                    name: entry.webhook.name,
                    url: entry.webhook.url,
                    added: time(entry.webhook.created_at),
                    added_by: entry.webhook.created_by,
                    deliveries: entry
                        .deliveries
                        .into_iter()
                        .map(|delivery| {
                            let (state, at) = match delivery.state {
                                DeliveryState::Delivered(at) => ("Delivered", at),
                                DeliveryState::Pending(at) => ("Waiting", at),
                                DeliveryState::Failed(at) => ("Failed", at),
                            };
                            DeliveryRow {
                                event: delivery.kind,
                                written_at: time(delivery.created_at),
                                state: state.to_owned(),
                                state_at: time(at),
                                attempts: delivery.attempts,
                                last_error: delivery.last_error.unwrap_or_default(),
                            }
                        })
                        .collect(),
                })
                .collect(),
            families: domain::audit::AuditAction::families()
                .into_iter()
                .map(|family| EventFamily {
                    name: family.to_owned(),
                    actions: domain::audit::AuditAction::ALL
                        .iter()
                        .filter_map(|action| {
                            action
                                .as_str()
                                .strip_prefix(family)
                                .and_then(|rest| rest.strip_prefix('.'))
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                })
                .collect(),
            max: domain::notifications::webhooks::MAX_PER_ORG,
            listed_deliveries: domain::org_policy::webhooks::LISTED_DELIVERIES,
        })
    })
    .await
}

/// What the plain "Add webhook" form posts to `/admin/webhooks`; the server renders that page
/// with it in context, and the page adds the webhook from it, so that the secret arrives in
/// the answer to that post, the one time it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddWebhookForm {
    pub name: String,
    pub url: String,
    /// The ticked event families; none: every event.
    pub events: Vec<String>,
}

impl AddWebhookForm {
    /// The form from its posted fields (`events` once per ticked box); unknown fields are
    /// ignored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "name" => form.name = value,
                "url" => form.url = value,
                "events" => form.events.push(value),
                _ => {}
            }
        }
        form
    }
}

/// A webhook just added, with its signing secret: shown this once. Its `Debug` hides the
/// secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedWebhook {
    pub name: String,
    pub url: String,
    /// `whsec_…`, as Standard Webhooks libraries take it.
    pub secret: String,
}

impl std::fmt::Debug for AddedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddedWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Adds a webhook; its secret is in this answer and nowhere else.
#[server(endpoint = "admin/webhooks/add")]
pub async fn add_webhook(
    name: String,
    url: String,
    #[server(default)] events: Vec<String>,
) -> Result<AddedWebhook, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let hook = domain::org_policy::webhooks::WebhookForm { name, url, events }
            .parse(&state.webhook_urls)?;
        let added = domain::org_policy::webhooks::add_webhook(
            &crate::auth::command(&state, &member, &source),
            &hook,
        )
        .await?;
        // The secret is in this answer: no cache, shared or private, may keep it.
        crate::api::no_store();
        tracing::info!(
            member = member.id,
            webhook = added.webhook.id,
            "webhook added"
        );
        Ok(AddedWebhook {
            name: added.webhook.name,
            url: added.webhook.url,
            secret: added.secret.reveal(),
        })
    })
    .await
}

/// Removes a webhook and what it had still to deliver.
#[server(endpoint = "admin/webhooks/remove")]
pub async fn remove_webhook(webhook_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::org_policy::webhooks::remove_webhook(
            &crate::auth::command(&state, &member, &source),
            webhook_id,
        )
        .await?;
        leptos_axum::redirect("/admin/webhooks?removed=1");
        Ok(())
    })
    .await
}
