//! The API tokens page, for owners and admins: the organization's personal access tokens for
//! the JSON API (`/api/v1`), making one (shown once) and revoking one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One token, as the page lists it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: i32,
    pub name: String,
    /// The token's first characters, `lifeline_pat_AbCd`.
    pub prefix: String,
    /// The member the token acts as.
    pub owner: String,
    /// Scope names, e.g. `members:read, audit:read`.
    pub scopes: String,
    pub created: String,
    pub expires: String,
    /// "Never" until its first call.
    pub last_used: String,
    /// `Active`, `Expired` or `Revoked`.
    pub state: String,
    /// Whether it still works (and so can be revoked).
    pub active: bool,
}

/// A scope a token can carry, for the form's checkboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeChoice {
    /// `members:read`, as the API's documentation spells it.
    pub name: String,
    pub words: String,
}

/// The API tokens page's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokensOverview {
    pub tokens: Vec<TokenRow>,
    pub scopes: Vec<ScopeChoice>,
    pub min_days: u32,
    pub max_days: u32,
    pub default_days: u32,
}

/// The organization's tokens, newest first, and what a new one can be given.
#[server(endpoint = "admin/api-tokens")]
pub async fn get_api_tokens() -> Result<ApiTokensOverview, AppError> {
    use domain::api_tokens::{self, Scope, TokenState};
    crate::api::respond(async {
        let crate::auth::SignedIn { state, member, .. } = crate::auth::signed_in().await?;
        let tokens = api_tokens::list(&state.db, &state.authz, &member, chrono::Utc::now()).await?;
        let time = crate::api::readable_time;
        Ok(ApiTokensOverview {
            tokens: tokens
                .into_iter()
                .map(|token| TokenRow {
                    id: token.id,
                    scopes: token
                        .scopes
                        .iter()
                        .map(|scope| scope.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    name: token.name,
                    prefix: token.prefix,
                    owner: token.owner,
                    created: time(token.created_at),
                    expires: time(token.expires_at),
                    last_used: token.last_used_at.map_or_else(|| "Never".to_owned(), time),
                    state: token.state.label().to_owned(),
                    active: token.state == TokenState::Active,
                })
                .collect(),
            scopes: Scope::ALL
                .iter()
                .map(|scope| ScopeChoice {
                    name: scope.as_str().to_owned(),
                    words: scope.words().to_owned(),
                })
                .collect(),
            min_days: *api_tokens::LIFETIME_DAYS.start(),
            max_days: *api_tokens::LIFETIME_DAYS.end(),
            default_days: api_tokens::DEFAULT_LIFETIME_DAYS,
        })
    })
    .await
}

/// What the plain "New token" form posts to `/admin/api-tokens`; the server renders that page
/// with it in context, and the page makes the token from it, so that the token arrives in the
/// answer to that post, the one time it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTokenForm {
    pub name: String,
    /// The ticked scopes.
    pub scopes: Vec<String>,
    pub lifetime_days: String,
}

impl NewTokenForm {
    /// The form from its posted fields (`scopes` once per ticked box); unknown fields are
    /// ignored.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "name" => form.name = value,
                "scopes" => form.scopes.push(value),
                "lifetime_days" => form.lifetime_days = value,
                _ => {}
            }
        }
        form
    }
}

/// A token just made: shown this once. Its `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiToken {
    pub name: String,
    /// `lifeline_pat_…`, for an `Authorization: Bearer` header.
    pub token: String,
    pub scopes: String,
    pub expires: String,
}

impl std::fmt::Debug for CreatedApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiToken")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Makes a token for the signed-in owner or admin; the token is in this answer and nowhere
/// else.
#[server(endpoint = "admin/api-tokens/create")]
pub async fn create_api_token(
    name: String,
    #[server(default)] scopes: Vec<String>,
    lifetime_days: String,
) -> Result<CreatedApiToken, AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        let created = domain::api_tokens::create(
            &crate::auth::command(&state, &member, &source),
            &domain::api_tokens::TokenForm {
                name,
                scopes,
                lifetime_days,
            },
        )
        .await?;
        // The token is in this answer: no cache, shared or private, may keep it.
        crate::api::no_store();
        tracing::info!(
            member = member.id,
            token = created.listing.id,
            "API token created"
        );
        Ok(CreatedApiToken {
            token: created.token.expose().to_owned(),
            scopes: created
                .listing
                .scopes
                .iter()
                .map(|scope| scope.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            expires: crate::api::readable_time(created.listing.expires_at),
            name: created.listing.name,
        })
    })
    .await
}

/// Revokes a token of the organization: it stops working at once.
#[server(endpoint = "admin/api-tokens/revoke")]
pub async fn revoke_api_token(token_id: i32) -> Result<(), AppError> {
    crate::api::respond(async {
        let crate::auth::SignedIn {
            state,
            member,
            source,
            ..
        } = crate::auth::sensitive_change().await?;
        domain::api_tokens::revoke(&crate::auth::command(&state, &member, &source), token_id)
            .await?;
        leptos_axum::redirect("/admin/api-tokens?revoked=1");
        Ok(())
    })
    .await
}
