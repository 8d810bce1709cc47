//! The JSON API for integrations, under `/api/v1`.
//!
//! A call carries a personal access token (`Authorization: Bearer lifeline_pat_…`, made on
//! the console's API tokens page, [`domain::api_tokens`]). One layer around every endpoint:
//! 1. reads the token and finds it working (401 otherwise, the same answer for every reason);
//! 2. counts the call against the token's rate (429 with `Retry-After` beyond it; per
//!    instance, [`crate::config::Config::api_requests_per_minute`]);
//! 3. runs the endpoint, which refuses a call outside the token's scopes (403) and then
//!    does what the console does, through the same domain functions and so the same gate,
//!    as the token's owner;
//! 4. records the call in the audit log, with the status it got.
//!
//! Every error is `{"error": {"message": "…", "field": "…"}}`: the field is set when one
//! input is wrong, as the pages anchor a message to a field. Bodies are read with the path
//! of a mistyped value, so a wrong type names its field too. Nothing is written when a call
//! is refused.
//!
//! The OpenAPI 3.1 document is generated from the handlers and types here ([`ApiDoc`]),
//! served at `/api/v1/openapi.json`, and held against `docs/openapi.json` by the tests.

use std::{num::NonZeroU32, sync::Arc};

use app::state::AppState;
use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{FromRequestParts, MatchedPath, Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use chrono::{DateTime, Utc};
use domain::{
    api_tokens::{self, Bearer, BearerError, Call, Scope},
    audit::Source,
    command::Command,
    members::{MemberStatus, Standing},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// The most audit events one call returns.
const AUDIT_PAGE: u64 = domain::audit::reading::EXPORT_CHUNK;

/// The API's routes, each behind the token layer but the document describing them.
pub fn routes(state: AppState, per_minute: NonZeroU32) -> Router<AppState> {
    let gate = Gate {
        state,
        limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
    };
    let authenticated = Router::new()
        .route("/api/v1/members", get(list_members))
        .route("/api/v1/members/{id}", get(get_member))
        .route("/api/v1/members/{id}/revoke-codes", post(revoke_codes))
        .route("/api/v1/members/{id}/reset-mfa", post(reset_mfa))
        .route(
            "/api/v1/members/{id}/sign-in-code",
            post(issue_sign_in_code),
        )
        .route(
            "/api/v1/sign-in-codes/{id}/reveal",
            post(reveal_sign_in_code),
        )
        .route("/api/v1/policy", get(get_policy).put(save_policy))
        .route("/api/v1/policy/history", get(policy_history))
        .route("/api/v1/audit/events", get(audit_events))
        .route_layer(from_fn_with_state(gate, authenticate));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .merge(authenticated)
        // Anything else under the API answers in JSON, not with the site's HTML page.
        .route("/api/v1", any(no_such_endpoint))
        .route("/api/v1/{*rest}", any(no_such_endpoint))
}

/// The token layer's state: the application and one rate bucket per token.
#[derive(Clone)]
struct Gate {
    state: AppState,
    limiter: Arc<DefaultKeyedRateLimiter<i32>>,
}

/// The caller of an endpoint, as the token layer found them.
#[derive(Clone)]
struct Caller {
    bearer: Bearer,
    source: Source,
    /// The time the call is judged at.
    now: DateTime<Utc>,
}

impl Caller {
    /// `Ok` when the token carries `scope`; else the 403 that says which scope is missing.
    fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.bearer.has(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "This token does not carry the {} scope. Make a token with it on the API \
                     tokens page.",
                    scope.as_str()
                ),
            ))
        }
    }

    /// The token's owner acting through this call.
    fn command<'a>(&'a self, state: &'a AppState) -> Command<'a> {
        Command::new(
            &state.db,
            &state.authz,
            &self.bearer.member,
            &self.source,
            self.now,
        )
    }
}

/// Middleware around every endpoint but the document: see the module docs.
async fn authenticate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let now = Utc::now();
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError::unauthenticated().into_response();
    };
    let bearer = match api_tokens::authenticate(&gate.state.db, presented, now).await {
        Ok(bearer) => bearer,
        Err(BearerError::Refused) => return ApiError::unauthenticated().into_response(),
        Err(BearerError::Database(cause)) => return ApiError::from(cause).into_response(),
    };
    if let Err(not_until) = gate.limiter.check_key(&bearer.token_id) {
        let wait = not_until.wait_time_from(gate.limiter.clock().now());
        return ApiError::too_many_requests(wait.as_secs().saturating_add(1)).into_response();
    }
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let method = request.method().as_str().to_owned();
    let (parts, body) = request.into_parts();
    let source = app::auth::source_of(&parts);
    let mut request = Request::from_parts(parts, body);
    let caller = Caller {
        bearer,
        source,
        now,
    };
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    let call = Call {
        method: &method,
        route: &route,
        status: response.status().as_u16(),
    };
    if let Err(cause) =
        api_tokens::record_call(&caller.command(&gate.state), &caller.bearer, call).await
    {
        // The answer stands (a change it made is on the record under its own event).
        tracing::error!(%cause, token = caller.bearer.token_id, "recording an API call");
    }
    response
}

/// An error as the API answers it.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

/// `{"error": {...}}`, every error's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, in words, and the input it is about.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// The query parameter or body field the message is about (`standing`,
    /// `policy.codes_per_set`), if it is about one.
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    fn field(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(status, message)
        }
    }

    fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Send a working personal access token: Authorization: Bearer lifeline_pat_… (the \
             token is missing, unknown, expired or revoked).",
        )
    }

    fn too_many_requests(seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("This token made too many calls; try again in {seconds} s."),
            )
        }
    }

    fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    message: self.message,
                    field: self.field,
                },
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lifeline\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The console's error, as the API answers it: its status, words and field.
impl From<app::error::AppError> for ApiError {
    fn from(error: app::error::AppError) -> Self {
        let status =
            StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match error {
            app::error::AppError::Invalid { field, message } => {
                Self::field(status, &field, message)
            }
            other => Self::new(status, other.to_string()),
        }
    }
}

impl From<domain::db::DbErr> for ApiError {
    fn from(cause: domain::db::DbErr) -> Self {
        app::error::AppError::from(cause).into()
    }
}

impl From<domain::accounts::AccountError> for ApiError {
    fn from(error: domain::accounts::AccountError) -> Self {
        use domain::accounts::AccountError as E;
        match error {
            E::UnknownMember => Self::not_found("Your organization has no member with that id."),
            E::NotAllowed => Self::new(StatusCode::FORBIDDEN, error.to_string()),
            E::LastOwner => Self::new(StatusCode::CONFLICT, error.to_string()),
            other => app::error::AppError::from(other).into(),
        }
    }
}

impl From<domain::recovery_codes::RecoveryError> for ApiError {
    fn from(error: domain::recovery_codes::RecoveryError) -> Self {
        use domain::recovery_codes::RecoveryError as E;
        match error {
            // The terms as `IssueSignInCode` names them.
            E::Invalid(field) => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                match field.field.as_str() {
                    "lifetime" => "lifetime_minutes",
                    other => other,
                },
                field.message,
            ),
            E::UnknownMember => Self::not_found("Your organization has no member with that id."),
            E::UnknownRequest => Self::not_found(&error.to_string()),
            E::NotAllowed | E::NotRequester => Self::new(StatusCode::FORBIDDEN, error.to_string()),
            E::ForYourself
            | E::CodesNotAllowed
            | E::CodesOff
            | E::NotApproved
            | E::Closed
            | E::OwnRequest
            | E::ApproveForYourself
            | E::ApproverWithoutMfa
            | E::AlreadyApproved => Self::new(StatusCode::CONFLICT, error.to_string()),
            other => app::error::AppError::from(other).into(),
        }
    }
}

impl From<domain::org_policy::PolicyChangeError> for ApiError {
    fn from(error: domain::org_policy::PolicyChangeError) -> Self {
        use domain::org_policy::PolicyChangeError as E;
        match error {
            E::Invalid(field) => {
                // The console's form names the recovery-code rules flat; the document nests them.
                let name = match field.field.as_str() {
                    "recovery_code_issuers" => "sign_in_codes.issuers",
                    "recovery_code_shortest" => "sign_in_codes.shortest_minutes",
                    "recovery_code_longest" => "sign_in_codes.longest_minutes",
                    "recovery_code_default" => "sign_in_codes.default_minutes",
                    "recovery_code_max_uses" => "sign_in_codes.max_uses",
                    other => other,
                };
                Self::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("policy.{name}"),
                    field.message,
                )
            }
            E::NotAllowed => Self::new(StatusCode::FORBIDDEN, error.to_string()),
            E::Conflict => Self::field(
                StatusCode::CONFLICT,
                "expected_version",
                "The policy changed since the version you read: read it again, then save your \
                 change against its version.",
            ),
            other => app::error::AppError::from(other).into(),
        }
    }
}

impl From<domain::audit::AuditReadError> for ApiError {
    fn from(error: domain::audit::AuditReadError) -> Self {
        use domain::audit::AuditReadError as E;
        match error {
            E::NotAllowed => Self::new(StatusCode::FORBIDDEN, error.to_string()),
            other => app::error::AppError::from(other).into(),
        }
    }
}

impl From<domain::authz::AuthzError> for ApiError {
    fn from(error: domain::authz::AuthzError) -> Self {
        use domain::authz::AuthzError as E;
        match error {
            E::Denied(_) => Self::new(StatusCode::FORBIDDEN, "You are not allowed to do that."),
            E::Policy(cause) => app::error::AppError::Internal
                .logged("authorization", &cause)
                .into(),
            E::Database(cause) => cause.into(),
        }
    }
}

/// A query string or body of type `T`, or the 400/422 that names what is wrong with it.
fn read_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_data() {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                &path,
                format!("{path}: {inner}"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("The body is not a JSON document: {inner}."),
            )
        }
    })
}

/// The query string, or the 400 that says it could not be read.
fn query<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query.map(|Query(query)| query).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "The query string could not be read: {}",
                rejection.body_text()
            ),
        )
    })
}

/// A whole number in `field`, or the 422 that says so.
fn number<N: std::str::FromStr>(field: &str, text: Option<&str>) -> Result<Option<N>, ApiError> {
    text.filter(|text| !text.is_empty())
        .map(|text| {
            text.parse().map_err(|_| {
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    field,
                    format!("{field}: give a whole number, not \"{text}\"."),
                )
            })
        })
        .transpose()
}

// ---- Members ----

/// A member with their MFA and backup-code standing.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub id: i32,
    pub email: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    pub mfa_enabled: bool,
    /// An administrator reset their MFA: they set it up again at their next sign-in.
    pub mfa_setup_required: bool,
    /// Unused codes of their set in force; absent when they hold none.
    pub codes_remaining: Option<u32>,
    pub set_generated_at: Option<DateTime<Utc>>,
    pub last_code_used_at: Option<DateTime<Utc>>,
    /// Their set is past the policy's maximum age.
    pub set_expired: bool,
    /// At or below the policy's low-codes threshold.
    pub codes_low: bool,
    /// Meets the policy (always, unless backup codes are required).
    pub compliant: bool,
    /// Not compliant, under `required` with a `required_from` date: when their session is
    /// (or will be) limited to their MFA settings until they generate a set (the later of
    /// the date and joining plus `grace_days`); absent otherwise.
    pub limited_from: Option<DateTime<Utc>>,
    /// The exception that decides for them, their own or else their groups': `allow` or `deny`
    /// backup codes.
    pub exception: Option<String>,
    /// Sign-in factors locked after wrong attempts, and until when.
    pub locked: Vec<LockOut>,
}

/// A locked sign-in factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockOut {
    /// `password`, `totp` or `backup_code`.
    pub factor: String,
    pub until: DateTime<Utc>,
}

impl From<MemberStatus> for MemberOut {
    fn from(row: MemberStatus) -> Self {
        Self {
            id: row.member.id,
            email: row.member.email,
            role: row.member.role.as_str().to_owned(),
            mfa_enabled: row.member.mfa_enabled,
            mfa_setup_required: row.member.mfa_setup_required,
            codes_remaining: row.codes_remaining,
            set_generated_at: row.set_generated_at,
            last_code_used_at: row.last_code_used_at,
            set_expired: row.set_expired,
            codes_low: row.codes_low,
            compliant: row.compliant,
            limited_from: row.deadline.map(|deadline| deadline.when()),
            exception: row
                .exception
                .map(|allow| if allow { "allow" } else { "deny" }.to_owned()),
            locked: row
                .locked
                .into_iter()
                .map(|(factor, until)| LockOut {
                    factor: factor.as_str().to_owned(),
                    until,
                })
                .collect(),
        }
    }
}

/// One page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersOut {
    pub members: Vec<MemberOut>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<i32>,
}

/// Which members to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Only members who stand here: `with-mfa`, `holding-codes`, `low-on-codes`,
    /// `expired-sets`, `locked`, `non-compliant`, `in-grace`, `exempted`, `without-codes`.
    standing: Option<String>,
    /// Only members whose email contains this.
    q: Option<String>,
    /// Only members of this group (its id).
    #[param(value_type = Option<i32>)]
    group: Option<String>,
    /// The `next_after` of the previous page.
    #[param(value_type = Option<i32>)]
    after: Option<String>,
}

/// The organization's members with their standing, 50 a page, optionally those of one
/// standing only (the compliance report's figures).
#[utoipa::path(
    get, path = "/api/v1/members", tag = "members",
    params(MembersQuery),
    security(("token" = ["members:read"])),
    responses(
        (status = 200, description = "A page of members, by id", body = MembersOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "A parameter is wrong; `field` names it", body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn list_members(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MembersOut>, ApiError> {
    caller.require(Scope::MembersRead)?;
    let params = query(params)?;
    let standing = params
        .standing
        .as_deref()
        .filter(|slug| !slug.is_empty())
        .map(|slug| {
            Standing::from_slug(slug).ok_or_else(|| {
                let known: Vec<&str> = Standing::ALL.iter().map(|s| s.slug()).collect();
                ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "standing",
                    format!("standing: use one of {}.", known.join(", ")),
                )
            })
        })
        .transpose()?;
    let after = number("after", params.after.as_deref())?;
    let group = number("group", params.group.as_deref())?;
    let page = domain::members::page(
        &state.db,
        &state.authz,
        &caller.bearer.member,
        domain::members::Filter {
            search: params.q.as_deref().unwrap_or_default(),
            standing,
            group,
        },
        after,
        caller.now,
    )
    .await?;
    Ok(Json(MembersOut {
        members: page.rows.into_iter().map(MemberOut::from).collect(),
        next_after: page.next_after,
    }))
}

/// The member `id` of the caller's organization, or 404 (another organization's too).
async fn member_out(state: &AppState, caller: &Caller, id: i32) -> Result<MemberOut, ApiError> {
    domain::members::one(
        &state.db,
        &state.authz,
        &caller.bearer.member,
        id,
        caller.now,
    )
    .await?
    .map(MemberOut::from)
    .ok_or_else(|| ApiError::not_found("Your organization has no member with that id."))
}

/// The `{id}` of the route (a member's, or a sign-in code request's), or the 422 that names
/// it: an extractor, so that no endpoint reads it another way.
struct RouteId(i32);

impl<S: Send + Sync> FromRequestParts<S> for RouteId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let text = Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| id)
            .unwrap_or_default();
        number("id", Some(&text))?.map(Self).ok_or_else(|| {
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "id", "id: give an id.")
        })
    }
}

/// One member with their standing.
#[utoipa::path(
    get, path = "/api/v1/members/{id}", tag = "members",
    params(("id" = i32, Path, description = "The member's id")),
    security(("token" = ["members:read"])),
    responses(
        (status = 200, body = MemberOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such member in the token's organization", body = ErrorBody),
    )
)]
async fn get_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RouteId(id): RouteId,
) -> Result<Json<MemberOut>, ApiError> {
    caller.require(Scope::MembersRead)?;
    Ok(Json(member_out(&state, &caller, id).await?))
}

/// Revokes the member's backup codes (and any sign-in code issued for them): they stop
/// working at once.
#[utoipa::path(
    post, path = "/api/v1/members/{id}/revoke-codes", tag = "members",
    params(("id" = i32, Path, description = "The member's id")),
    security(("token" = ["codes:revoke"])),
    responses(
        (status = 200, description = "Revoked; the member as they stand now", body = MemberOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn revoke_codes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RouteId(id): RouteId,
) -> Result<Json<MemberOut>, ApiError> {
    caller.require(Scope::CodesRevoke)?;
    domain::members::revoke_codes(&caller.command(&state), id).await?;
    Ok(Json(member_out(&state, &caller, id).await?))
}

/// Resets the member's MFA: their authenticator and codes stop working, their sessions end,
/// and they set MFA up again at their next sign-in.
#[utoipa::path(
    post, path = "/api/v1/members/{id}/reset-mfa", tag = "members",
    params(("id" = i32, Path, description = "The member's id")),
    security(("token" = ["mfa:reset"])),
    responses(
        (status = 200, description = "Reset; the member as they stand now", body = MemberOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn reset_mfa(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RouteId(id): RouteId,
) -> Result<Json<MemberOut>, ApiError> {
    caller.require(Scope::MfaReset)?;
    domain::members::reset_mfa(&caller.command(&state), id).await?;
    Ok(Json(member_out(&state, &caller, id).await?))
}

// ---- Sign-in codes ----

/// A sign-in code issued for a member.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInCodeOut {
    /// The request's id, for `/api/v1/sign-in-codes/{id}/reveal`.
    pub request: i32,
    pub member_id: i32,
    /// `awaiting_approval` (a second administrator approves it in the console first) or
    /// `revealed` (the code is in this answer).
    pub state: String,
    /// The 12-digit code, in groups of four: in this one answer, never again.
    pub code: Option<String>,
    /// It works from then…
    pub starts_at: DateTime<Utc>,
    /// …until then…
    pub expires_at: DateTime<Utc>,
    /// …for this many sign-ins.
    pub uses: u32,
}

impl SignInCodeOut {
    fn of(request: &domain::recovery_codes::RecoveryRequest, code: Option<String>) -> Self {
        Self {
            request: request.id,
            member_id: request.member_id,
            state: if code.is_some() {
                "revealed"
            } else {
                "awaiting_approval"
            }
            .to_owned(),
            code,
            starts_at: request.starts_at,
            expires_at: request.expires_at,
            uses: request.max_uses.into(),
        }
    }
}

/// What an issuer may choose for one code, within the organization's rules; each absent
/// field takes the default (the policy's default lifetime, starting now, one use).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueSignInCode {
    /// Minutes the code lives, from its start.
    pub lifetime_minutes: Option<u32>,
    /// When it starts to work (from now to 30 days ahead).
    pub starts_at: Option<DateTime<Utc>>,
    /// Sign-ins it allows (1 to the policy's `max_uses`).
    pub uses: Option<u8>,
}

/// Issues a sign-in code for a member who lost their authenticator and codes, on the terms
/// the body asks within the organization's rules (no body: the defaults). A newer request
/// replaces an open one. With two-administrator approval on, the code is revealed once
/// another administrator approves the request in the console.
#[utoipa::path(
    post, path = "/api/v1/members/{id}/sign-in-code", tag = "sign-in codes",
    params(("id" = i32, Path, description = "The member's id")),
    request_body(content = Option<IssueSignInCode>, description = "The code's terms; none: the defaults"),
    security(("token" = ["sign_in_codes:issue"])),
    responses(
        (status = 201, description = "Issued; the code is in this answer only", body = SignInCodeOut),
        (status = 202, description = "Requested; a second administrator must approve it", body = SignInCodeOut),
        (status = 400, description = "Not a JSON document", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not for this member now (yourself, codes not allowed for them, or codes off)", body = ErrorBody),
        (status = 422, description = "A term is outside the rules; `field` names it", body = ErrorBody),
    )
)]
async fn issue_sign_in_code(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RouteId(id): RouteId,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::SignInCodesIssue)?;
    let terms: IssueSignInCode = if body.iter().all(u8::is_ascii_whitespace) {
        IssueSignInCode::default()
    } else {
        read_json(&body)?
    };
    let cmd = caller.command(&state);
    let member = domain::accounts::member(&state.db, id)
        .await?
        .filter(|member| member.org_id == caller.bearer.member.org_id)
        .ok_or_else(|| ApiError::not_found("Your organization has no member with that id."))?;
    let choice = domain::org_policy::issued_codes::CodeChoice {
        lifetime_minutes: terms.lifetime_minutes,
        starts_at: terms.starts_at,
        uses: terms.uses,
    };
    let request = domain::recovery_codes::request(&cmd, &member.email, choice).await?;
    if request.state == domain::recovery_codes::RecoveryState::AwaitingApproval {
        let out = SignInCodeOut::of(&request, None);
        return Ok((StatusCode::ACCEPTED, Json(out)).into_response());
    }
    reveal(&state, &cmd, request.id).await
}

/// Reveals the code of a request this token's owner made, once a second administrator has
/// approved it.
#[utoipa::path(
    post, path = "/api/v1/sign-in-codes/{id}/reveal", tag = "sign-in codes",
    params(("id" = i32, Path, description = "The request's id, from the call that made it")),
    security(("token" = ["sign_in_codes:issue"])),
    responses(
        (status = 201, description = "The code, in this answer only", body = SignInCodeOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not approved yet, or revealed already", body = ErrorBody),
    )
)]
async fn reveal_sign_in_code(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RouteId(id): RouteId,
) -> Result<Response, ApiError> {
    caller.require(Scope::SignInCodesIssue)?;
    reveal(&state, &caller.command(&state), id).await
}

async fn reveal(
    state: &AppState,
    cmd: &Command<'_>,
    request_id: i32,
) -> Result<Response, ApiError> {
    let (request, code) = domain::recovery_codes::reveal(cmd, &state.codes, request_id).await?;
    let out = SignInCodeOut::of(&request, Some(code.grouped()));
    let mut response = (StatusCode::CREATED, Json(out)).into_response();
    // The code is in this answer: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

// ---- Policy ----

/// The organization's backup-code policy: every setting, typed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// `not_allowed`, `allowed` or `required`.
    pub backup_codes: String,
    /// Codes in a set (5–20).
    pub codes_per_set: u32,
    /// Days a set lasts; 0: sets never expire.
    pub max_set_age_days: u32,
    /// At or below this many unused codes, a member is low.
    pub low_codes_threshold: u32,
    /// Wrong codes that lock backup-code sign-in.
    pub lockout_attempts: u32,
    /// Minutes a lock lasts.
    pub lockout_minutes: u32,
    /// `any` (any unused code) or `numbered` (the numbered code the sign-in asks for).
    pub code_entry: String,
    /// After a backup-code sign-in, only MFA settings until the member sets up again.
    pub restrict_after_backup_sign_in: bool,
    /// Sign-in codes need a second administrator's approval.
    pub recovery_code_approval: bool,
    /// Administrators, not only owners, may request data backups.
    pub admins_request_backups: bool,
    /// A backup-code sign-in that leaves the member at or below `low_codes_threshold`
    /// requires a new set before anything else (off: a warning).
    pub replace_when_low: bool,
    /// Under `required`, the day (`YYYY-MM-DD`, from 00:00 UTC) from which a member with MFA
    /// who holds no working code can use only their MFA settings until they generate a set;
    /// `null` or absent: "Required" is reported and limits no session.
    pub required_from: Option<String>,
    /// Days a member has from joining before `required_from` binds them, when that is later
    /// (0–365); absent: 0.
    #[serde(default)]
    pub grace_days: u32,
    /// Sign-in codes administrators issue: who may issue them, their lifetimes and uses;
    /// absent in a save: the rules in force stay as they are (a client written before the
    /// rules existed does not turn codes back on).
    #[serde(default)]
    pub sign_in_codes: Option<SignInCodeRules>,
}

/// The organization's rules for sign-in codes administrators issue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInCodeRules {
    /// `nobody` (codes off: issued codes stop working too), `owners`, `admins` (owners and
    /// administrators) or `helpdesk` (those and the help desk).
    pub issuers: String,
    /// The shortest lifetime an issuer may choose, in minutes (10–43200).
    pub shortest_minutes: u32,
    /// The longest, in minutes (10–43200, at least `shortest_minutes`).
    pub longest_minutes: u32,
    /// The lifetime when the issuer chooses none, in minutes, from shortest to longest.
    pub default_minutes: u32,
    /// The most sign-ins one code may allow (1–10; 1: one-time codes only).
    pub max_uses: u32,
}

impl From<&domain::org_policy::RecoveryCodeRules> for SignInCodeRules {
    fn from(rules: &domain::org_policy::RecoveryCodeRules) -> Self {
        Self {
            issuers: rules.issuers.as_str().to_owned(),
            shortest_minutes: rules.shortest_minutes,
            longest_minutes: rules.longest_minutes,
            default_minutes: rules.default_minutes,
            max_uses: rules.max_uses.into(),
        }
    }
}

impl From<&domain::org_policy::OrgPolicy> for PolicySettings {
    fn from(policy: &domain::org_policy::OrgPolicy) -> Self {
        Self {
            backup_codes: policy.codes.as_str().to_owned(),
            codes_per_set: policy.codes_per_set.into(),
            max_set_age_days: policy.max_set_age_days.into(),
            low_codes_threshold: policy.low_codes_threshold.into(),
            lockout_attempts: policy.lockout_attempts.into(),
            lockout_minutes: policy.lockout_minutes.into(),
            code_entry: policy.code_entry.as_str().to_owned(),
            restrict_after_backup_sign_in: policy.restrict_after_backup_sign_in,
            recovery_code_approval: policy.recovery_code_approval,
            admins_request_backups: policy.admins_request_backups,
            replace_when_low: policy.replace_when_low,
            required_from: policy.required_from.map(|day| {
                day.format(domain::org_policy::form::DATE_FORMAT)
                    .to_string()
            }),
            grace_days: policy.grace_days.into(),
            sign_in_codes: Some((&policy.recovery_codes).into()),
        }
    }
}

impl PolicySettings {
    /// The console's form with these settings, so that one parser holds every bound; the
    /// sign-in code rules absent are `in_force`.
    fn form(
        &self,
        in_force: &domain::org_policy::RecoveryCodeRules,
    ) -> domain::org_policy::form::PolicyForm {
        let tick = |on: bool| on.then(|| "on".to_owned());
        let codes = self
            .sign_in_codes
            .clone()
            .unwrap_or_else(|| in_force.into());
        domain::org_policy::form::PolicyForm {
            backup_codes: self.backup_codes.clone(),
            codes_per_set: self.codes_per_set.to_string(),
            max_set_age_days: self.max_set_age_days.to_string(),
            low_codes_threshold: self.low_codes_threshold.to_string(),
            lockout_attempts: self.lockout_attempts.to_string(),
            lockout_minutes: self.lockout_minutes.to_string(),
            code_entry: self.code_entry.clone(),
            restrict_after_backup_sign_in: tick(self.restrict_after_backup_sign_in),
            recovery_code_approval: tick(self.recovery_code_approval),
            admins_request_backups: tick(self.admins_request_backups),
            replace_when_low: tick(self.replace_when_low),
            required_from: self.required_from.clone().unwrap_or_default(),
            grace_days: self.grace_days.to_string(),
            recovery_code_issuers: codes.issuers,
            recovery_code_shortest: minutes(codes.shortest_minutes),
            recovery_code_longest: minutes(codes.longest_minutes),
            recovery_code_default: minutes(codes.default_minutes),
            recovery_code_max_uses: codes.max_uses.to_string(),
        }
    }
}

/// Minutes as the form types a lifetime, `90m`; 0 stays a value the form refuses, not a
/// blank it would read as the default.
fn minutes(minutes: u32) -> String {
    format!("{minutes}m")
}

/// One setting a version changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    pub setting: String,
    pub before: String,
    pub after: String,
}

/// A version of the policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyOut {
    /// 0 is the default nobody saved yet.
    pub version: i32,
    pub saved_by: Option<String>,
    pub saved_at: Option<DateTime<Utc>>,
    pub policy: PolicySettings,
    /// What this version changed from the one before.
    pub changes: Vec<ChangeOut>,
}

impl From<domain::org_policy::PolicyVersion> for PolicyOut {
    fn from(version: domain::org_policy::PolicyVersion) -> Self {
        Self {
            policy: PolicySettings::from(&version.policy),
            version: version.version,
            saved_by: version.saved_by,
            saved_at: version.saved_at,
            changes: version
                .changes
                .into_iter()
                .map(|change| ChangeOut {
                    setting: change.field,
                    before: change.before,
                    after: change.after,
                })
                .collect(),
        }
    }
}

/// The versions of the policy, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyHistoryOut {
    pub versions: Vec<PolicyOut>,
}

/// A change to the policy, against the version it was read at.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavePolicy {
    /// The `version` the change was made against: if another change was saved since, the
    /// call gets 409 and nothing is written.
    pub expected_version: i32,
    pub policy: PolicySettings,
}

/// The policy in force.
#[utoipa::path(
    get, path = "/api/v1/policy", tag = "policy",
    security(("token" = ["policy:read"])),
    responses(
        (status = 200, description = "The policy in force", body = PolicyOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
async fn get_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PolicyOut>, ApiError> {
    caller.require(Scope::PolicyRead)?;
    let member = &caller.bearer.member;
    state
        .authz
        .require(member, member.org_id, domain::authz::Action::ViewPolicy)
        .await?;
    let version = domain::org_policy::current(&state.db, member.org_id).await?;
    Ok(Json(version.into()))
}

/// Every saved version of the policy, newest first, with what each changed.
#[utoipa::path(
    get, path = "/api/v1/policy/history", tag = "policy",
    security(("token" = ["policy:read"])),
    responses(
        (status = 200, body = PolicyHistoryOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
async fn policy_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PolicyHistoryOut>, ApiError> {
    caller.require(Scope::PolicyRead)?;
    let versions =
        domain::org_policy::history(&state.db, &state.authz, &caller.bearer.member).await?;
    Ok(Json(PolicyHistoryOut {
        versions: versions.into_iter().map(PolicyOut::from).collect(),
    }))
}

/// Saves the policy, as the console's policy page does: the same bounds, the same record,
/// the same notices to members whose codes stop working.
#[utoipa::path(
    put, path = "/api/v1/policy", tag = "policy",
    request_body = SavePolicy,
    security(("token" = ["policy:write"])),
    responses(
        (status = 200, description = "Saved (or unchanged); the version in force", body = PolicyOut),
        (status = 400, description = "Not a JSON document", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Changed since `expected_version`", body = ErrorBody),
        (status = 422, description = "A setting is wrong; `field` names it", body = ErrorBody),
    )
)]
async fn save_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<PolicyOut>, ApiError> {
    caller.require(Scope::PolicyWrite)?;
    let change: SavePolicy = read_json(&body)?;
    let in_force = domain::org_policy::current(&state.db, caller.bearer.member.org_id)
        .await?
        .policy
        .recovery_codes;
    let policy = change
        .policy
        .form(&in_force)
        .parse()
        .map_err(domain::org_policy::PolicyChangeError::from)?;
    let saved =
        domain::org_policy::save(&caller.command(&state), change.expected_version, &policy).await?;
    Ok(Json(saved.into()))
}

// ---- Audit ----

/// One event of the audit log, with its place in the organization's chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventOut {
    /// Its place in the organization's chain: 1, 2, 3, … with no gaps.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// e.g. `backup_code.redeemed`.
    pub action: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub actor_id: Option<i32>,
    pub actor: Option<String>,
    pub target_id: Option<i32>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// The `hash` of the event before it (`seq - 1`); the first event's is the genesis value.
    pub prev_hash: String,
    /// This event's link, keyed with the server's secret: a consumer checks that each
    /// event's `prev_hash` is the previous event's `hash` and that `seq` has no gaps.
    pub hash: String,
}

/// Events after a cursor, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventsOut {
    pub events: Vec<AuditEventOut>,
    /// Pass as `after` next time: the last event's `seq` (the same `after` when there was
    /// nothing new).
    pub next_after: i64,
    /// Whether more events are waiting now.
    pub more: bool,
}

/// Where to read the log from.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `seq` of the last event already read; 0 or absent: from the first.
    #[param(value_type = Option<i64>)]
    after: Option<String>,
}

/// The organization's audit events after a cursor, oldest first, for a SIEM that polls:
/// each call is itself on the record (`api_token.used`), so every poll sees one event of its
/// own.
#[utoipa::path(
    get, path = "/api/v1/audit/events", tag = "audit",
    params(AuditQuery),
    security(("token" = ["audit:read"])),
    responses(
        (status = 200, description = "Up to 1,000 events after the cursor", body = AuditEventsOut),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn audit_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditEventsOut>, ApiError> {
    caller.require(Scope::AuditRead)?;
    let params = query(params)?;
    let after: i64 = number("after", params.after.as_deref())?.unwrap_or(0);
    let events = domain::audit::export_chunk_seen_by(
        &state.db,
        &state.authz,
        &caller.bearer.member,
        &domain::audit::Filter::default(),
        after,
    )
    .await?;
    let more = events.len() as u64 >= AUDIT_PAGE;
    let next_after = events.last().map_or(after, |event| event.seq);
    Ok(Json(AuditEventsOut {
        events: events
            .into_iter()
            .map(|event| AuditEventOut {
                seq: event.seq,
                at: event.at,
                action: event.action,
                outcome: event.outcome,
                actor_id: event.actor_id,
                actor: event.actor,
                target_id: event.target_id,
                target: event.target,
                ip: event.source.ip,
                user_agent: event.source.user_agent,
                details: event.details,
                prev_hash: event.prev_hash,
                hash: event.hash,
            })
            .collect(),
        next_after,
        more,
    }))
}

// ---- The document ----

/// The API's OpenAPI 3.1 document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lifeline API",
        description = "Members' MFA and backup-code standing, the backup-code policy and the \
                       audit log, for integrations. Authenticate with a personal access token \
                       made on the console's API tokens page: `Authorization: Bearer \
                       lifeline_pat_…`. Each call needs the scope its operation names, and is \
                       then decided as the token's owner, as the console would.",
    ),
    paths(
        list_members, get_member, revoke_codes, reset_mfa, issue_sign_in_code,
        reveal_sign_in_code, get_policy, policy_history, save_policy, audit_events,
    ),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

/// The token scheme every operation names.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(format!(
                        "A personal access token. Scopes: {}.",
                        Scope::ALL
                            .iter()
                            .map(|scope| format!("`{}` ({})", scope.as_str(), scope.words()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                    .build(),
            ),
        );
    }
}

/// The document, as served and as `docs/openapi.json` holds it.
pub fn document() -> String {
    let mut openapi = ApiDoc::openapi();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    openapi.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /api/v1/openapi.json`.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// Any other address under `/api/v1`.
async fn no_such_endpoint() -> ApiError {
    ApiError::not_found(
        "There is no such endpoint: the API's endpoints are listed at /api/v1/openapi.json.",
    )
}
