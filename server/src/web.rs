//! The HTTP server: routes, layers, health checks and graceful shutdown.

use std::sync::Arc;

use app::{App, shell, state::AppState};
use axum::{
    Form, Router,
    body::{Body, HttpBody},
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{Next, from_fn, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use domain::hashing::PasswordHasher;
use leptos::config::get_configuration;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::{limit::RequestBodyLimitLayer, services::ServeDir, trace::TraceLayer};
use tower_sessions::{
    Expiry, SessionManagerLayer,
    cookie::{SameSite, time::Duration as CookieDuration},
};

use crate::{
    client_ip::TrustedProxies, config::Config, security::BrowserSecurity,
    sessions::DatabaseSessionStore, throttle::Throttle,
};

/// The largest request body accepted; larger ones get 413 before anything reads them.
/// Server functions buffer their bodies whole, so without this any POST could fill memory.
const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// The session cookie's name.
const SESSION_COOKIE: &str = "lifeline_session";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("DATABASE_URL {0}")]
    Database(#[from] domain::db::ConnectError),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[source] domain::db::DbErr),
    #[error("site configuration (LEPTOS_* variables): {0}")]
    Site(String),
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the database, migrates it and serves until a shutdown signal arrives.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let security =
        BrowserSecurity::from_env(&config).map_err(|e| ServeError::Setup(e.to_string()))?;
    // Before anything changes the database: a key that cannot be had must not leave it
    // migrated with its audit chains not yet keyed.
    let secret_key = crate::keys::load(&config.secret_key).map_err(ServeError::Setup)?;
    // The SQLite file and its folder are the server's user's only (0600, 0700).
    crate::private_files::create_sqlite_file(&config.database_url).map_err(ServeError::Setup)?;
    let db = domain::db::connect(&config.database_url).await?;
    let keying = domain::audit::chains_await_keying(&db)
        .await
        .map_err(ServeError::Migrate)?;
    domain::db::migrate(&db)
        .await
        .map_err(ServeError::Migrate)?;

    // A lost or different key would lock every MFA user out with errors at sign-in: refuse
    // to start instead, and say which key is wanted.
    let opens = domain::mfa::key_opens_stored_secrets(&db, &secret_key)
        .await
        .map_err(ServeError::Migrate)?
        && domain::notifications::webhooks::key_opens_secrets(&db, &secret_key)
            .await
            .map_err(ServeError::Migrate)?;
    if !opens {
        return Err(ServeError::Setup(format!(
            "{}: this key does not open the TOTP or webhook secrets stored in the database; \
             start with the key this database was used with",
            config.secret_key.variable()
        )));
    }
    // Audit links and checkpoints are made under the key; chains from before it are keyed
    // now, before anything appends to them.
    for outcome in crate::keys::install_for_audit(&db, &secret_key, keying)
        .await
        .map_err(ServeError::Migrate)?
    {
        match outcome {
            domain::audit::PlainChain::Keyed { .. } => {
                tracing::info!("{}", crate::keys::describe_upgrade(&outcome));
            }
            domain::audit::PlainChain::LeftBroken { .. } => {
                tracing::warn!("{}", crate::keys::describe_upgrade(&outcome));
            }
        }
    }
    if matches!(config.secret_key, crate::config::SecretKeySource::File(_)) {
        crate::keys::spawn_refresh(secret_key.clone());
    }
    if config.audit_checkpoint_seconds > 0 {
        crate::checkpoints::spawn(
            db.clone(),
            std::time::Duration::from_secs(u64::from(config.audit_checkpoint_seconds)),
        );
    }
    if config.backend == domain::db::Backend::Postgres
        && matches!(config.secret_key, crate::config::SecretKeySource::File(_))
    {
        tracing::warn!(
            "LIFELINE_SECRET_KEY is not set: every instance sharing this PostgreSQL database \
             needs the same key, so make LIFELINE_SECRET_KEY_FILE one file they all read (a \
             shared secret mount, which `lifeline rotate-key` updates for all of them) rather \
             than a key file per machine"
        );
    }
    let hash_concurrency = config
        .hash_concurrency
        .map_or_else(domain::hashing::default_concurrency, |n| n as usize);
    let hash_queue = config.hash_queue.map_or(
        hash_concurrency.saturating_mul(domain::hashing::DEFAULT_QUEUE_PER_PERMIT),
        |n| n as usize,
    );
    let hasher = PasswordHasher::new(hash_concurrency)
        .map_err(|e| ServeError::Setup(e.to_string()))?
        .with_queue(hash_queue);
    let sessions = DatabaseSessionStore::new(&db)
        .await
        .map_err(ServeError::Setup)?;
    sessions.spawn_expired_deletion(std::time::Duration::from_secs(600));
    crate::backups::spawn_sweeper(db.clone(), config.backup_dir.clone());
    crate::backup_schedule::spawn(
        db.clone(),
        secret_key.clone(),
        config.backup_schedule.clone(),
    )
    .map_err(ServeError::Setup)?;
    // Security notifications leave from every instance; the outbox hands each to one.
    let transport = crate::mail::Transport::new(config.smtp_url.as_ref().map(|url| url.as_str()))
        .map_err(ServeError::Setup)?;
    tracing::info!("{}", transport.describe());
    crate::mail::Delivery {
        db: db.clone(),
        transport,
        from: config
            .mail_from
            .parse()
            .map_err(|_| ServeError::Setup("LIFELINE_MAIL_FROM is not a mailbox".into()))?,
        retry: domain::notifications::RetryPolicy {
            max_attempts: config.mail_attempts,
            first_delay: std::time::Duration::from_secs(u64::from(config.mail_retry_seconds)),
            ..domain::notifications::RetryPolicy::default()
        },
        webhooks: crate::mail::Webhooks::new(
            secret_key.clone(),
            domain::notifications::webhooks::UrlRules {
                allow_loopback_http: config.webhooks_allow_loopback_http,
            },
        )
        .map_err(ServeError::Setup)?,
    }
    .spawn();
    // The baseline from policies/ plus every organization's rules in the database.
    let authz = domain::authz::Authz::load(&db)
        .await
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    crate::expiry::spawn(db.clone(), authz.clone());

    let leptos_options = get_configuration(None)
        .map_err(|e| ServeError::Site(e.to_string()))?
        .leptos_options;
    // `cargo leptos watch` injects a live-reload script that needs its websocket.
    let security = security.with_live_reload(std::env::var_os("LEPTOS_WATCH").map(|_| {
        leptos_options
            .reload_external_port
            .unwrap_or(leptos_options.reload_port)
    }));
    // While no organization exists, a one-time link sets the installation up in the browser.
    let setup_token = if domain::accounts::organization_count(&db)
        .await
        .map_err(ServeError::Migrate)?
        == 0
    {
        let (link, token) = domain::accounts::setup::SetupLink::generate();
        Some((std::sync::Arc::new(link), token))
    } else {
        None
    };
    let setup = setup_token.as_ref().map_or_else(
        || std::sync::Arc::new(domain::accounts::setup::SetupLink::none()),
        |(link, _)| link.clone(),
    );
    let state = AppState {
        setup,
        leptos_options,
        db: db.clone(),
        codes: domain::lookup_secret::BackupCodeHasher::new(hasher.clone(), &secret_key),
        hasher,
        secret_key,
        authz: authz.clone(),
        chain: domain::audit::ChainMonitor::default(),
        reauthenticate_after: chrono::Duration::seconds(i64::from(
            config.reauthenticate_after_seconds,
        )),
        session_lifetime: chrono::Duration::seconds(i64::from(config.session_lifetime_seconds)),
        secure_cookies: config.secure_cookies,
        webhook_urls: domain::notifications::webhooks::UrlRules {
            allow_loopback_http: config.webhooks_allow_loopback_http,
        },
        backups: app::state::BackupSettings {
            folder: config.backup_dir.clone(),
            per_day: config.backups_per_day,
        },
    };
    let attempts =
        |per_minute| std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN);
    let throttle = crate::throttle::Throttle::new(
        crate::throttle::Limits {
            per_address: attempts(config.sign_in_attempts_per_minute),
            per_account: attempts(config.sign_in_attempts_per_account_per_minute),
            starts: attempts(config.sign_in_starts_per_minute),
            ipv6_prefix: config.ipv6_throttle_prefix,
        },
        Some(crate::throttle::Devices {
            key: state.secret_key.clone(),
            db: db.clone(),
        }),
    );
    throttle.spawn_cleanup();
    let proxies = TrustedProxies::new(config.trusted_proxies.clone());

    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen_addr,
            source,
        })?;
    let local_addr = listener.local_addr()?;
    // Links in security mail ("This wasn't me") start with the public address.
    domain::notifications::not_me::install_base_url(
        &config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}")),
    );
    tracing::info!(
        database = config.backend.name(),
        secure_cookies = config.secure_cookies,
        "listening on http://{local_addr}"
    );

    if let Some((_, token)) = &setup_token {
        let program = std::env::args().next().unwrap_or_else(|| "lifeline".into());
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        // The one secret this log carries, by design: whoever reads the log owns the
        // installation anyway, and the link stops working once an organization exists.
        tracing::warn!(
            "no organization yet; open {}/setup?token={token} to create the first one (the \
             link works once), or run: {program} create-org --name \"Acme\" --admin-email \
             owner@acme.test",
            base.trim_end_matches('/')
        );
    }

    let session_layer = SessionManagerLayer::new(sessions)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(i64::from(
            config.session_idle_seconds,
        ))))
        // Saved when changed, or when `keep_alive` finds its expiry due to move: not on
        // every request (a write each, fsync'd on SQLite).
        .with_always_save(false);
    let extend_every = crate::sessions::ExtendEvery::for_idle_limit(
        std::time::Duration::from_secs(u64::from(config.session_idle_seconds)),
    );

    // Sessions only where they are used: the site's files and the health checks skip the
    // session layer, and so its database, entirely.
    let session_free = crate::sessions::SessionFree::for_site(
        std::path::Path::new(&*state.leptos_options.site_root),
        &state.leptos_options.site_pkg_dir,
    );
    // The peer address reaches the client-address layer through ConnectInfo.
    let api_per_minute = attempts(config.api_requests_per_minute);
    let app = crate::sessions::where_used(
        router(state, security, proxies, throttle, api_per_minute),
        session_layer,
        extend_every,
        session_free,
    )
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;

    tracing::info!("shutting down: requests finished, closing the database");
    if let Err(error) = db.close().await {
        tracing::warn!(%error, "closing the database pool");
    }
    Ok(())
}

/// Every route the server answers, with its layers.
pub fn router(
    state: AppState,
    security: BrowserSecurity,
    proxies: TrustedProxies,
    throttle: Throttle,
    api_per_minute: std::num::NonZeroU32,
) -> Router {
    let routes = generate_route_list(App);
    let leptos_options = state.leptos_options.clone();
    let security = Arc::new(security);
    let pkg_dir = leptos_options.site_pkg_dir.trim_matches('/').to_owned();
    let package_route = format!("/{pkg_dir}");
    let package = ServeDir::new(std::path::Path::new(&*leptos_options.site_root).join(&pkg_dir))
        .precompressed_gzip();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        // Plain forms that post to their page itself, which answers with the page around the
        // result: a secret made by the post arrives in that answer, the one time it is sent;
        // a CSV's preview, with or without JavaScript.
        .route(
            "/account/backup-codes",
            post(post_to_page::<app::api::backup_codes::GenerateForm>),
        )
        .route(
            "/admin/recovery",
            post(post_to_page::<app::api::recovery::RevealForm>),
        )
        .route(
            "/admin/groups",
            post(post_to_page::<app::api::groups::CsvPreviewForm>),
        )
        .route("/admin/webhooks", post(post_add_webhook))
        .route("/admin/api-tokens", post(post_new_api_token))
        .route("/admin/audit/export", get(export_audit))
        .route("/admin/compliance/export", get(export_compliance))
        .route("/admin/backup/{id}/download", get(crate::backups::download))
        .route("/admin/policy/export", get(export_policy))
        // The JSON API, for integrations with a personal access token.
        .merge(crate::api::routes(state.clone(), api_per_minute))
        // The site's package (wasm, JS, CSS), gzipped for a browser that accepts it: the
        // build writes a `.gz` beside each file (scripts/build-site.sh). Files, not routes:
        // no session reaches them (`SessionFree`), and the route catalogue leaves them out.
        .nest_service(&package_route, package)
        .leptos_routes_with_context(
            &state,
            routes,
            crate::security::provide_response_nonce,
            move || shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(crate::security::provide_response_nonce, shell))
        // Layers run from the last one in: headers, trace, the origin check, then the body
        // limits, so a refused request still gets the headers, and is refused unread.
        // Innermost, around every route (the fallback too) and inside the session layer:
        // a session limited to MFA settings reaches nothing else, whatever the route…
        .layer(from_fn_with_state(
            state.clone(),
            crate::restriction::refuse_beyond_mfa_settings,
        ))
        // …and a page shows a server function's error from its address only when this
        // server sent it there (the refusal's own error included).
        .layer(from_fn(crate::form_errors::only_errors_lifeline_sent))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        .layer(from_fn_with_state(
            throttle,
            crate::throttle::throttle_secret_checks,
        ))
        // The client's address, once, for the throttle and the audit log.
        .layer(from_fn_with_state(
            proxies,
            crate::client_ip::resolve_client_address,
        ))
        .layer(from_fn(limit_bodies_of_unknown_length))
        .layer(from_fn_with_state(
            Arc::clone(&security),
            crate::security::refuse_cross_origin_writes,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(from_fn_with_state(
            security,
            crate::security::add_security_headers,
        ))
        .with_state(state)
}

/// Reads a body sent without a Content-Length (chunked) into memory, up to the limit, and
/// answers 413 beyond it. `RequestBodyLimitLayer` refuses an announced length before reading
/// anything, but an unannounced body it can only cut off mid-read, which server functions
/// report as a malformed request instead of 413. They buffer the whole body anyway, so
/// buffering it here first costs no more memory.
async fn limit_bodies_of_unknown_length(request: Request, next: Next) -> Response {
    use futures::StreamExt;

    if request.headers().contains_key(header::CONTENT_LENGTH) || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let mut chunks = body.into_data_stream();
    let mut buffered = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            return (StatusCode::BAD_REQUEST, "The request could not be read.").into_response();
        };
        if buffered.len() + chunk.len() > BODY_LIMIT_BYTES {
            return (StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.").into_response();
        }
        buffered.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(buffered)))
        .await
}

/// A page that answers a plain form's post itself (the backup-codes page, the recovery-code
/// page, the groups page's CSV preview): the page is rendered with the posted form in
/// context, and acts on it through its server function, so a secret made by the post (new
/// codes, a revealed recovery code) is sent once, in this answer, and a result (a preview)
/// is shown, with or without JavaScript.
async fn post_to_page<F>(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    form: Result<Form<F>, axum::extract::rejection::FormRejection>,
) -> Response
where
    F: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let Ok(Form(form)) = form else {
        return (StatusCode::BAD_REQUEST, "The form could not be read.").into_response();
    };
    render_with_form(state, parts, form).await
}

/// `POST /admin/webhooks`: the "Add webhook" form, whose event checkboxes share one name
/// (which a typed form cannot hold), read field by field; the page adds the webhook from it.
async fn post_add_webhook(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let pairs =
        form_urlencoded::parse(&body).map(|(name, value)| (name.into_owned(), value.into_owned()));
    let form = app::api::webhooks::AddWebhookForm::from_pairs(pairs);
    render_with_form(state, parts, form).await
}

/// `POST /admin/api-tokens`: the "New token" form, whose scope checkboxes share one name,
/// read field by field; the page makes the token from it.
async fn post_new_api_token(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let pairs =
        form_urlencoded::parse(&body).map(|(name, value)| (name.into_owned(), value.into_owned()));
    let form = app::api::api_tokens::NewTokenForm::from_pairs(pairs);
    render_with_form(state, parts, form).await
}

/// Renders the page at `parts`' address with `form` in context.
async fn render_with_form<F>(
    state: AppState,
    parts: axum::http::request::Parts,
    form: F,
) -> Response
where
    F: Clone + Send + Sync + 'static,
{
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            crate::security::provide_response_nonce();
            leptos::prelude::provide_context(state.clone());
            leptos::prelude::provide_context(form.clone());
        },
        move || shell(options.clone()),
    );
    render(Request::from_parts(parts, Body::empty())).await
}

/// What `/admin/audit/export` takes: the audit page's filter and a format.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ExportQuery {
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
}

/// `GET /admin/audit/export`: the filtered audit log as a CSV or JSON Lines download,
/// streamed a chunk at a time (constant memory however long the log), for owners and admins.
async fn export_audit(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    query: Result<axum::extract::Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let refuse = |status: StatusCode, message: &str| (status, message.to_owned()).into_response();
    let Ok(axum::extract::Query(query)) = query else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The export's address could not be read.",
        );
    };
    let member = match app::auth::current_member(&state, &session).await {
        Ok(Some(member)) => member,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "Please sign in to continue."),
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let csv = match query.format.as_deref().unwrap_or("csv") {
        "csv" => true,
        "jsonl" => false,
        _ => return refuse(StatusCode::BAD_REQUEST, "format: use csv or jsonl."),
    };
    let filter = match domain::audit::Filter::from_form(
        query.from.as_deref(),
        query.to.as_deref(),
        query.actor.as_deref(),
        query.action.as_deref(),
        query.outcome.as_deref(),
    ) {
        Ok(filter) => filter,
        Err(error) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{}: {}", error.field, error.message),
            );
        }
    };
    // The gate's word before the first byte; every later chunk asks again.
    let first =
        match domain::audit::export_chunk_seen_by(&state.db, &state.authz, &member, &filter, 0)
            .await
        {
            Ok(chunk) => chunk,
            Err(domain::audit::AuditReadError::NotAllowed) => {
                return refuse(StatusCode::FORBIDDEN, "You are not allowed to do that.");
            }
            Err(error) => {
                tracing::error!(%error, "audit export");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Please try again.",
                );
            }
        };
    let render = move |events: &[domain::audit::Recorded]| -> String {
        let mut text = String::new();
        for event in events {
            let line = if csv {
                domain::audit::csv_line(event)
            } else {
                serde_json::to_string(event).unwrap_or_default()
            };
            text.push_str(&line);
            text.push('\n');
        }
        text
    };
    let header_line = if csv {
        format!("{}\n", domain::audit::CSV_HEADER)
    } else {
        String::new()
    };
    let head = format!("{header_line}{}", render(&first));
    let stream = chunked(head, first.last().map(|event| event.seq), move |after| {
        let (state, member, filter) = (state.clone(), member.clone(), filter.clone());
        async move {
            let chunk = domain::audit::export_chunk_seen_by(
                &state.db,
                &state.authz,
                &member,
                &filter,
                after,
            )
            .await
            .map_err(|error| error.to_string())?;
            Ok(chunk
                .last()
                .map(|event| event.seq)
                .map(|next| (render(&chunk), next)))
        }
    });
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    download(
        content_type,
        &format!("lifeline-audit-{}.{extension}", today()),
        stream,
    )
}

/// `GET /admin/compliance/export`: every member of the viewer's organization with their
/// standing (the compliance report's columns), as a CSV download streamed a chunk of members
/// at a time, for owners and admins.
async fn export_compliance(
    State(state): State<AppState>,
    session: tower_sessions::Session,
) -> Response {
    let refuse = |status: StatusCode, message: &str| (status, message.to_owned()).into_response();
    let member = match app::auth::current_member(&state, &session).await {
        Ok(Some(member)) => member,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "Please sign in to continue."),
        Err(error) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let render = |rows: &[domain::members::MemberStatus]| -> String {
        rows.iter()
            .map(|row| format!("{}\n", domain::members::csv_line(row)))
            .collect()
    };
    // The gate's word before the first byte; every later chunk asks again.
    let now = chrono::Utc::now();
    let first =
        match domain::members::export_chunk(&state.db, &state.authz, &member, None, now).await {
            Ok(first) => first,
            Err(domain::accounts::AccountError::NotAllowed) => {
                return refuse(StatusCode::FORBIDDEN, "You are not allowed to do that.");
            }
            Err(error) => {
                tracing::error!(%error, "compliance export");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. Please try again.",
                );
            }
        };
    let head = format!(
        "{}\n{}",
        domain::members::report::CSV_HEADER,
        render(&first.rows)
    );
    let stream = chunked(head, first.next_after, move |after| {
        let (state, member) = (state.clone(), member.clone());
        async move {
            let page =
                domain::members::export_chunk(&state.db, &state.authz, &member, Some(after), now)
                    .await
                    .map_err(|error| error.to_string())?;
            Ok(page
                .rows
                .last()
                .map(|row| (render(&page.rows), row.member.id)))
        }
    });
    download(
        "text/csv; charset=utf-8",
        &format!("lifeline-compliance-{}.csv", today()),
        stream,
    )
}

/// Today's date (UTC) for a download's name: `2026-11-30`.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// A download streamed a chunk at a time, in constant memory however long it is: `head`
/// first (read before the response began, so that a refusal is a plain 403), then
/// `next(after)` for each later chunk, which gives the text and the key after which the one
/// following starts, or nothing when it is done. An error ends the body early.
fn chunked<K, F, Fut>(
    head: String,
    after: Option<K>,
    next: F,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> + Send + 'static
where
    K: Send + 'static,
    F: Fn(K) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<(String, K)>, String>> + Send,
{
    futures::stream::unfold(
        (Some(head), after, next),
        |(pending, after, next)| async move {
            if let Some(text) = pending {
                return Some((Ok(text), (None, after, next)));
            }
            match next(after?).await {
                Ok(None) => None,
                Ok(Some((text, following))) => Some((Ok(text), (None, Some(following), next))),
                Err(error) => Some((Err(std::io::Error::other(error)), (None, None, next))),
            }
        },
    )
}

/// The response for a download of `content_type` named `name`, never cached.
fn download(
    content_type: &str,
    name: &str,
    body: impl futures::Stream<Item = Result<String, std::io::Error>> + Send + 'static,
) -> Response {
    use axum::http::header;
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, "export".to_owned()).into_response()
        })
}

/// Which policy `GET /admin/policy/export` gives: the one in force, or the one in force `at`
/// a past moment (a day or an RFC 3339 time).
#[derive(Debug, serde::Deserialize)]
struct PolicyExportQuery {
    at: Option<String>,
}

/// `GET /admin/policy/export[?at=…]`: the policy in force (or as it stood at a past moment)
/// with its exceptions and Casbin rules, as a JSON download, for owners and admins.
async fn export_policy(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    axum::extract::Query(query): axum::extract::Query<PolicyExportQuery>,
) -> Response {
    use axum::http::header;

    let at = match query.at.as_deref().filter(|at| !at.trim().is_empty()) {
        None => None,
        Some(at) => match domain::org_policy::parse_as_of(at) {
            Ok(at) => Some(at),
            Err(error) => return (StatusCode::BAD_REQUEST, error.message).into_response(),
        },
    };

    let member = match app::auth::current_member(&state, &session).await {
        Ok(Some(member)) => member,
        Ok(None) => {
            return (StatusCode::UNAUTHORIZED, "Please sign in to continue.").into_response();
        }
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    let now = chrono::Utc::now();
    match domain::org_policy::export_seen_by(&state.db, &state.authz, &member, at, now).await {
        Ok(export) => {
            let name = format!(
                "lifeline-policy-{}-v{}-{}.json",
                export.slug,
                export.version,
                at.unwrap_or(now).format("%Y-%m-%d")
            );
            let body = serde_json::to_string_pretty(&export).unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
                body,
            )
                .into_response()
        }
        Err(domain::org_policy::PolicyChangeError::NotAllowed) => {
            (StatusCode::FORBIDDEN, "You are not allowed to do that.").into_response()
        }
        Err(error) => {
            tracing::error!(%error, "policy export");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.",
            )
                .into_response()
        }
    }
}

/// Liveness: the process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and has every migration this build knows.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match domain::db::schema_status(&state.db).await {
        Ok(status) if status.is_current() => (StatusCode::OK, "ready"),
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database migrations pending",
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check: database did not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// A future that resolves on SIGTERM or Ctrl-C (SIGINT), starting a graceful shutdown.
///
/// The handlers are installed when this is called, not when the future is first polled, so
/// a signal that arrives the moment the server says it is listening is not lost.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
            _ = interrupt.recv() => tracing::info!("received Ctrl-C"),
        }
    })
}
