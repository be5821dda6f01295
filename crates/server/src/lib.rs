//! wharf's embedded OCI registry: the distribution spec 1.1 pull, push, content discovery and management
//! API over filesystem storage.
//!
//! [`Registry::bind`] opens the [`storage`] and binds one or more addresses (one process reachable under
//! several URLs); [`Registry::run`] serves them until a shutdown future completes, then drains open
//! requests. Options cover basic authentication from an htpasswd file, anonymous reads, TLS, read-only
//! mode and an access log of JSON lines. No client can hold it up: silent connections and stalled
//! bodies time out, at the connection limit the idlest connection makes room, unread request bodies
//! are drained or the connection closed, and abandoned upload sessions expire.
//!
//! Its [`storage`] is a set of objects in a local directory or an S3-compatible bucket ([`s3`]),
//! upload sessions included, so several instances can serve one bucket. What it leaves out: token
//! authentication and deletion-time garbage collection (run [`storage::Storage::gc`] offline).
//!
//! ```no_run
//! # async fn demo() -> Result<(), wharf_server::ServeError> {
//! use wharf_server::{Registry, ServeOptions};
//! let options = ServeOptions::new(vec!["127.0.0.1:0".parse().unwrap()]);
//! let registry = Registry::bind("./registry-data", options).await?;
//! println!("listening on {:?}", registry.local_addrs());
//! registry.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
//! # Ok(()) }
//! ```

mod access_log;
mod api;
mod auth;
mod connections;
mod error;
mod listen;
mod metrics;
mod request_body;
pub mod s3;
pub mod storage;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use auth::User;
pub use error::{ApiError, Code};
pub use listen::{Registry, ServeError};
use storage::Storage;

/// How the registry serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Addresses to listen on (port 0 picks a free port).
    pub listen: Vec<SocketAddr>,
    /// An htpasswd file with bcrypt entries: every request needs valid basic credentials.
    pub htpasswd: Option<PathBuf>,
    /// With `htpasswd`: let GET and HEAD through without credentials.
    pub anonymous_read: bool,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse every write.
    pub read_only: bool,
    /// Append one JSON line per request to this file.
    pub access_log: Option<PathBuf>,
    /// Advertise `OCI-Chunk-Min-Length` and enforce it on chunked uploads.
    pub chunk_min_length: Option<u64>,
    /// A connection silent this long is closed, and a request body that stalls this long fails.
    pub idle_timeout: Duration,
    /// Upload sessions untouched this long are removed.
    pub upload_expiry: Duration,
    /// Answer blob GETs with a redirect to a URL of the object store valid this long, where the
    /// storage can sign one.
    pub redirect: Option<Duration>,
}

/// How long a connection or request body may be silent, unless the options say otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an untouched upload session is kept, unless the options say otherwise.
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

impl ServeOptions {
    /// Plain HTTP on `listen`, no authentication, writable.
    pub fn new(listen: Vec<SocketAddr>) -> ServeOptions {
        ServeOptions {
            listen,
            htpasswd: None,
            anonymous_read: false,
            tls: None,
            read_only: false,
            access_log: None,
            chunk_min_length: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
            redirect: None,
        }
    }
}

/// What every request handler shares.
struct AppState {
    storage: Storage,
    options: ServeOptions,
    htpasswd: Option<auth::Htpasswd>,
    access_log: Option<access_log::AccessLog>,
    metrics: metrics::Metrics,
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(api::dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access_log::record,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_body::finish,
        ))
        .layer(middleware::map_response(api_version))
        .with_state(state)
}

/// `GET /healthz`: the registry is up and its storage directory is there (no credentials needed).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state.storage.is_available().await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n").into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Every answer says which API it speaks, as distribution's do; some clients look for it.
async fn api_version(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(htpasswd) = &state.htpasswd else {
        return next.run(request).await;
    };
    // Load balancers and orchestrators probe health without credentials.
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    match htpasswd.check(request.headers()) {
        Some(user) => {
            let user = User(user);
            request.extensions_mut().insert(user.clone());
            let mut response = next.run(request).await;
            response.extensions_mut().insert(user);
            response
        }
        // An upload's status is its owner's business, even where pulls need no credentials.
        None if state.options.anonymous_read
            && auth::is_read(request.method())
            && !api::is_upload_session(request.uri().path()) =>
        {
            next.run(request).await
        }
        None => ApiError::new(Code::Unauthorized, "authentication required").into_response(),
    }
}
