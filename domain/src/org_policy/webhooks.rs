//! The organization's webhooks as its owners manage them, under the gate
//! ([`Action::ManageWebhooks`]: owners only, since a webhook sends every event of the
//! organization outside Lifeline): registering one (its secret shown once), removing one,
//! and seeing what was delivered. Each change is on the record (`webhook.added`,
//! `webhook.removed`); [`crate::notifications::webhooks`] keeps and delivers them.

use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::PolicyChangeError;
use crate::{
    audit::{AuditAction, keys},
    authz::{Action, Authz},
    command::{Attempt, Command},
    identity::Member,
    input::{FieldError, single_line},
    notifications::webhooks::{
        self, Delivery, MAX_NAME_CHARS, MAX_PER_ORG, NewWebhook, UrlRules, Webhook, WebhookSecret,
    },
};

/// The "Add a webhook" form as posted: a name, an address, and a checkbox per event family
/// (`events` holds the ticked families' names; none ticked: every event).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookForm {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
}

impl WebhookForm {
    /// The webhook the form asks for, under `rules`; the field at fault is named.
    ///
    /// # Errors
    /// [`FieldError`] on `name` (blank, over 80 characters, control characters), `url`
    /// ([`UrlRules::check`]) or `events` (a family Lifeline does not record).
    pub fn parse(&self, rules: &UrlRules) -> Result<NewWebhook, FieldError> {
        let name = single_line("name", &self.name, MAX_NAME_CHARS)?;
        if name.is_empty() {
            return Err(FieldError::new(
                "name",
                "Name the webhook, e.g. \"SIEM\" or \"Security chat\".",
            ));
        }
        let url = rules.check(&self.url)?;
        let known = AuditAction::families();
        let mut families: Vec<String> = Vec::new();
        for family in &self.events {
            if !known.contains(&family.as_str()) {
                return Err(FieldError::new(
                    "events",
                    "Choose the events from the list.",
                ));
            }
            if !families.contains(family) {
                families.push(family.clone());
            }
        }
        Ok(NewWebhook {
            name: name.to_owned(),
            url,
            families,
        })
    }
}

/// A webhook just registered, with its secret: shown this once, never again.
#[derive(Debug, Clone)]
pub struct Registered {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

/// Registers `hook` for the actor's organization, with `webhook.added` on the record, in one
/// transaction. An organization has at most [`MAX_PER_ORG`]; registrations take turns on the
/// organization's row, so the limit holds however many arrive at once.
///
/// # Errors
/// Not allowed (on the record); [`FieldError`] on `name` when the organization has as many as
/// it may; the database's.
pub async fn add_webhook(
    cmd: &Command<'_>,
    hook: &NewWebhook,
) -> Result<Registered, PolicyChangeError> {
    cmd.require(
        Action::ManageWebhooks,
        Attempt::of(AuditAction::WebhookAdded),
    )
    .await?;
    let org_id = cmd.actor.org_id;
    let key = keys::installed()?;
    let txn = cmd.db.begin().await?;
    crate::db::take_turns_on_organization(&txn, org_id).await?;
    if webhooks::count(&txn, org_id).await? >= MAX_PER_ORG {
        return Err(FieldError::new(
            "name",
            format!(
                "Your organization has {MAX_PER_ORG} webhooks, the most it may have: remove \
                 one first."
            ),
        )
        .into());
    }
    let (row, secret) =
        webhooks::insert(&txn, &key, org_id, hook, &cmd.actor.email, cmd.now).await?;
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::WebhookAdded,
            None,
            json!({
                "webhook": row.id,
                "name": row.name,
                "url": webhooks::origin(&row.url),
                "events": if hook.families.is_empty() { json!("all") } else { json!(hook.families) },
            }),
        ),
    )
    .await?;
    txn.commit().await?;
    Ok(Registered {
        webhook: Webhook::from(row),
        secret,
    })
}

/// Removes the organization's webhook `id` and what it had still to deliver, with
/// `webhook.removed` on the record.
///
/// # Errors
/// Not allowed (on the record); [`PolicyChangeError::UnknownWebhook`] when there is no such
/// webhook (already removed); the database's.
pub async fn remove_webhook(cmd: &Command<'_>, id: i32) -> Result<(), PolicyChangeError> {
    cmd.require(
        Action::ManageWebhooks,
        Attempt {
            details: json!({ "webhook": id }),
            ..Attempt::of(AuditAction::WebhookRemoved)
        },
    )
    .await?;
    let org_id = cmd.actor.org_id;
    let txn = cmd.db.begin().await?;
    crate::db::take_turns_on_organization(&txn, org_id).await?;
    let Some(hook) = webhooks::find(&txn, org_id, id).await? else {
        return Err(PolicyChangeError::UnknownWebhook);
    };
    // Recorded before the deliveries are deleted: recording waits for any event of the
    // organization still being written (the chain's head is locked in turn), so that a
    // delivery such an event wrote for this webhook is committed, and deleted below.
    cmd.record(
        &txn,
        cmd.event(
            AuditAction::WebhookRemoved,
            None,
            json!({ "webhook": hook.id, "name": hook.name, "url": webhooks::origin(&hook.url) }),
        ),
    )
    .await?;
    if !webhooks::delete(&txn, org_id, id).await? {
        return Err(PolicyChangeError::UnknownWebhook);
    }
    txn.commit().await?;
    Ok(())
}

/// How many deliveries the webhooks page lists for each webhook.
pub const LISTED_DELIVERIES: u64 = 20;

/// A webhook with its latest deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookWithDeliveries {
    pub webhook: Webhook,
    pub deliveries: Vec<Delivery>,
}

/// The organization's webhooks, each with its latest [`LISTED_DELIVERIES`] deliveries, for an
/// owner. Errors: not allowed, the database's.
pub async fn webhooks_overview(
    db: &DatabaseConnection,
    authz: &Authz,
    viewer: &Member,
) -> Result<Vec<WebhookWithDeliveries>, PolicyChangeError> {
    authz
        .require(viewer, viewer.org_id, Action::ManageWebhooks)
        .await?;
    let mut overview = Vec::new();
    for webhook in webhooks::list(db, viewer.org_id).await? {
        let deliveries =
            webhooks::deliveries(db, viewer.org_id, webhook.id, LISTED_DELIVERIES).await?;
        overview.push(WebhookWithDeliveries {
            webhook,
            deliveries,
        });
    }
    Ok(overview)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_the_field_at_fault() {
        let rules = UrlRules::default();
        let good = WebhookForm {
            name: " SIEM ".into(),
            url: "https://siem.example.com/in".into(),
            events: vec!["backup_code".into(), "mfa".into(), "mfa".into()],
        };
        let parsed = good.parse(&rules).unwrap();
        assert_eq!(parsed.name, "SIEM");
        assert_eq!(parsed.families, ["backup_code", "mfa"]);
        for (form, field) in [
            (
                WebhookForm {
                    name: "  ".into(),
                    ..good.clone()
                },
                "name",
            ),
            (
                WebhookForm {
                    url: "http://siem.example.com".into(),
                    ..good.clone()
                },
                "url",
            ),
            (
                WebhookForm {
                    events: vec!["nonsense".into()],
                    ..good.clone()
                },
                "events",
            ),
        ] {
            assert_eq!(form.parse(&rules).unwrap_err().field, field);
        }
    }
}
