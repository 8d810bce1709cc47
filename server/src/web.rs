//! The HTTP server: routes, layers, health checks and graceful shutdown.

use app::{App, shell, state::AppState};
use axum::{Router, extract::State, http::StatusCode, routing::get};
use leptos::config::get_configuration;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::trace::TraceLayer;

use crate::config::Config;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("DATABASE_URL {0}")]
    Database(#[from] domain::db::ConnectError),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[source] domain::db::DbErr),
    #[error("site configuration (LEPTOS_* variables): {0}")]
    Site(String),
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
    let db = domain::db::connect(&config.database_url).await?;
    domain::db::migrate(&db)
        .await
        .map_err(ServeError::Migrate)?;

    let leptos_options = get_configuration(None)
        .map_err(|e| ServeError::Site(e.to_string()))?
        .leptos_options;
    let state = AppState {
        leptos_options,
        db: db.clone(),
    };

    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen_addr,
            source,
        })?;
    let local_addr = listener.local_addr()?;
    tracing::info!(
        database = config.backend.name(),
        secure_cookies = config.secure_cookies,
        "listening on http://{local_addr}"
    );

    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    tracing::info!("shutting down: requests finished, closing the database");
    if let Err(error) = db.close().await {
        tracing::warn!(%error, "closing the database pool");
    }
    Ok(())
}

/// Every route the server answers, with its layers.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let leptos_options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .leptos_routes(&state, routes, move || shell(leptos_options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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

/// Resolves on SIGTERM or Ctrl-C (SIGINT), starting a graceful shutdown.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
