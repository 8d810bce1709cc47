//! `/admin/api-tokens`, for owners and admins: the organization's personal access tokens for
//! the JSON API (`/api/v1`); making one shows it once, with an example call, and an active
//! one can be revoked.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{
    api::api_tokens::{
        ApiTokensOverview, CreatedApiToken, NewTokenForm, RevokeApiToken, TokenRow,
        create_api_token, get_api_tokens,
    },
    error::AppError,
    forms::{FieldMessage, FormMessage, invalid, last_error},
};

/// Where the plain "New token" form posts: the page itself.
const CREATE_URL: &str = "/admin/api-tokens";

/// Where the API describes itself (OpenAPI).
const API_DESCRIPTION: &str = "/api/v1/openapi.json";

/// The posted "New token" form, what making the token from it answered, and the address the
/// browser reached this server at (for the example call).
type Posted = (NewTokenForm, Result<CreatedApiToken, AppError>, String);

/// `/admin/api-tokens`.
#[component]
pub fn ApiTokensPage() -> impl IntoView {
    let revoke = ServerAction::<RevokeApiToken>::new();
    // Present only while the server renders its answer to the "New token" form.
    let posted = use_context::<NewTokenForm>();
    let origin = posted
        .as_ref()
        .map(|_| request_origin())
        .unwrap_or_default();
    let created = Resource::new(
        || (),
        move |()| {
            let (posted, origin) = (posted.clone(), origin.clone());
            async move {
                match posted {
                    Some(form) => {
                        let answer = create_api_token(
                            form.name.clone(),
                            form.scopes.clone(),
                            form.lifetime_days.clone(),
                        )
                        .await;
                        let posted: Posted = (form, answer, origin);
                        Some(posted)
                    }
                    None => None,
                }
            }
        },
    );
    let overview = Resource::new(move || revoke.version().get(), |_| get_api_tokens());
    let query = leptos_router::hooks::use_query_map();
    let revoked = move || query.with(|q| q.get("revoked").is_some());
    view! {
        <Title text="API tokens" />
        <Suspense>
            {move || {
                let (created, overview) = (created.get()?, overview.get()?);
                Some(match (created, overview) {
                    (Some((_, Ok(created), origin)), _) => view! { <CreatedPanel created origin /> }.into_any(),
                    (Some((_, Err(AppError::SignInRequired), _)), _) | (_, Err(AppError::SignInRequired)) => {
                        view! { <Redirect path="/sign-in" /> }.into_any()
                    }
                    (_, Err(error)) => {
                        view! {
                            <section class="panel">
                                <h1>"API tokens"</h1>
                                <p class="form-error">{error.to_string()}</p>
                            </section>
                        }
                            .into_any()
                    }
                    (created, Ok(overview)) => {
                        let (form, create_error) = match created {
                            Some((form, Err(error), _)) => (form, Some(error)),
                            _ => (NewTokenForm::default(), None),
                        };
                        view! { <TokensPanel overview revoke revoked=revoked() form create_error /> }.into_any()
                    }
                })
            }}
        </Suspense>
    }
}

/// The address the browser reached this server at (`https://lifeline.example.com`), for the
/// example call: the `Origin` the browser sent with the form's post, else the `Host` it asked
/// for, over HTTPS when the server's cookies say it is served over HTTPS.
#[cfg(feature = "ssr")]
fn request_origin() -> String {
    let Some(parts) = use_context::<http::request::Parts>() else {
        return String::new();
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    // Only a plain `scheme://host[:port]` (an opaque `null` origin is none).
    let sent = header(http::header::ORIGIN).filter(|origin| {
        origin.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && uri.path() == "/"
                && uri.query().is_none()
        })
    });
    if let Some(origin) = sent {
        return origin.trim_end_matches('/').to_owned();
    }
    let https = use_context::<crate::state::AppState>().is_some_and(|state| state.secure_cookies);
    header(http::header::HOST)
        .map(|host| format!("{}://{host}", if https { "https" } else { "http" }))
        .unwrap_or_default()
}

/// Only the server makes a token from a posted form: the browser never needs the address.
#[cfg(not(feature = "ssr"))]
fn request_origin() -> String {
    String::new()
}

/// The token just made, this once, with how to use it.
#[component]
fn CreatedPanel(created: CreatedApiToken, origin: String) -> impl IntoView {
    let example = format!(
        "curl -H \"Authorization: Bearer {}\" {origin}/api/v1/members",
        created.token
    );
    view! {
        <section class="panel">
            <h1>"API token created"</h1>
            <p class="lead">
                <strong>{created.name}</strong> " may call the API for " <code>{created.scopes}</code>
                " until " {created.expires} "."
            </p>
            <p>
                "The token, shown this once: copy it now (select it, then Ctrl+C or ⌘C) into the secrets of the program that will use it. Lifeline keeps only a digest of it and cannot show it again; if it is lost, revoke it and create another."
            </p>
            <p>
                <code class="api-token" id="api-token">{created.token}</code>
            </p>
            <h2>"Try it"</h2>
            <p>"Send it in the " <code>"Authorization"</code> " header of each call, e.g. to list your members:"</p>
            <p>
                <code id="api-token-example">{example}</code>
            </p>
            <p>
                "The API's description (OpenAPI) is at "
                // Not a page of the app: a full load, not the router's.
                <a href=API_DESCRIPTION rel="external">
                    <code>{API_DESCRIPTION}</code>
                </a> "."
            </p>
            <p>
                // A full page load: the token must not stay in the hydrated page's memory.
                <a href="/admin/api-tokens" rel="external">
                    "Done"
                </a>
            </p>
        </section>
    }
}

#[component]
fn TokensPanel(
    overview: ApiTokensOverview,
    revoke: ServerAction<RevokeApiToken>,
    revoked: bool,
    form: NewTokenForm,
    create_error: Option<AppError>,
) -> impl IntoView {
    let create_error = Signal::stored(create_error);
    let revoke_error = last_error(revoke);
    // The days typed last time, else the lifetime proposed.
    let lifetime = if form.lifetime_days.is_empty() {
        overview.default_days.to_string()
    } else {
        form.lifetime_days.clone()
    };
    let lifetime_label = format!(
        "Lifetime in days ({} to {})",
        overview.min_days, overview.max_days
    );
    view! {
        <section class="panel wide">
            <h1>"API tokens"</h1>
            <p>
                "A personal access token lets one of your organization's programs (a directory sync, a SIEM export) call Lifeline's JSON API at "
                <code>"/api/v1"</code>
                ". It acts as the member who made it, only for what its scopes allow, until it expires or is revoked. The API's description (OpenAPI) is at "
                <a href=API_DESCRIPTION rel="external">
                    <code>{API_DESCRIPTION}</code>
                </a> "."
            </p>
            {revoked.then(|| view! { <p class="status ok" role="status">"Token revoked: it no longer works."</p> })}
            <FormMessage error=revoke_error />
            {if overview.tokens.is_empty() {
                view! { <p>"No tokens yet."</p> }.into_any()
            } else {
                view! {
                    <table class="members tokens">
                        <thead>
                            <tr>
                                <th scope="col">"Name"</th>
                                <th scope="col">"Token"</th>
                                <th scope="col">"Owner"</th>
                                <th scope="col">"Scopes"</th>
                                <th scope="col">"Created"</th>
                                <th scope="col">"Expires"</th>
                                <th scope="col">"Last used"</th>
                                <th scope="col">"State"</th>
                                <th scope="col">"Actions"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {overview
                                .tokens
                                .into_iter()
                                .map(|token| view! { <TokenLine token revoke /> })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
        <section class="panel" id="new-token">
            <h2>"New token"</h2>
            <form method="post" action=CREATE_URL>
                <FormMessage error=create_error />
                <label for="token-name">"Name"</label>
                <input
                    id="token-name"
                    name="name"
                    type="text"
                    maxlength="80"
                    required
                    placeholder="Directory sync"
                    value=form.name.clone()
                    aria-describedby="name-error"
                    aria-invalid=invalid(create_error, "name")
                />
                <FieldMessage error=create_error field="name" />
                <fieldset>
                    <legend>"What it may do (one or more)"</legend>
                    {overview
                        .scopes
                        .into_iter()
                        .map(|scope| {
                            let id = format!("token-scope-{}", scope.name.replace(':', "-"));
                            let label_for = id.clone();
                            let checked = form.scopes.contains(&scope.name);
                            view! {
                                <label class="check" for=label_for>
                                    <input type="checkbox" id=id name="scopes" value=scope.name.clone() checked=checked aria-describedby="scopes-error" aria-invalid=invalid(create_error, "scopes") />
                                    <code>{scope.name.clone()}</code>
                                    {format!(" ({})", scope.words)}
                                </label>
                            }
                        })
                        .collect_view()}
                </fieldset>
                <FieldMessage error=create_error field="scopes" />
                <label for="token-lifetime">{lifetime_label}</label>
                <input
                    id="token-lifetime"
                    name="lifetime_days"
                    type="number"
                    min=overview.min_days.to_string()
                    max=overview.max_days.to_string()
                    step="1"
                    required
                    value=lifetime
                    aria-describedby="lifetime_days-error"
                    aria-invalid=invalid(create_error, "lifetime_days")
                />
                <FieldMessage error=create_error field="lifetime_days" />
                <button type="submit" class="primary">"Create token"</button>
            </form>
        </section>
    }
}

/// One token's row, with "Revoke" while it works.
#[component]
fn TokenLine(token: TokenRow, revoke: ServerAction<RevokeApiToken>) -> impl IntoView {
    let revoke_label = format!("Revoke {} ({}…)", token.name, token.prefix);
    view! {
        <tr>
            <td>{token.name}</td>
            <td><code>{format!("{}…", token.prefix)}</code></td>
            <td>{token.owner}</td>
            <td>{token.scopes}</td>
            <td>{token.created}</td>
            <td>{token.expires}</td>
            <td>{token.last_used}</td>
            <td>{token.state}</td>
            <td class="row-actions">
                {token
                    .active
                    .then(|| {
                        view! {
                            <ActionForm action=revoke>
                                <input type="hidden" name="token_id" value=token.id.to_string() />
                                <button type="submit" class="danger" aria-label=revoke_label>
                                    "Revoke"
                                </button>
                            </ActionForm>
                        }
                    })}
            </td>
        </tr>
    }
}
