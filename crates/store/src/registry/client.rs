//! One connection context per registry host: URL scheme, authentication, retries.
//!
//! Every request goes through [`Host::send`]: it attaches credentials for the scopes the request needs
//! (basic, or a bearer token fetched from the challenge's realm and cached per scope set), answers a 401
//! by learning the new challenge and trying once more, and retries network errors, 408, 429 and 5xx with
//! exponential backoff and jitter (honouring `Retry-After`) as long as the request body can be sent
//! again. No exchange may stall: when no byte moves in either direction for the host's idle timeout
//! (`--idle-timeout`), the request fails as a network error and is retried like one. [`Host::send_read`]
//! reads small answers (manifests, tag lists, referrers) whole, and asks again when the connection
//! breaks inside the body.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::challenge::{self, Challenge};
use super::credentials::{CredentialSource, Credentials};
use super::quirks::{self, Quirks};
use super::throttle::Throttle;
use crate::error::ErrorKind;

/// Attempts per request before giving up on retryable failures.
const MAX_ATTEMPTS: u32 = 5;
/// First backoff; doubled per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest wait between attempts, whatever `Retry-After` says.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Tokens are renewed this long before they expire (or at three quarters of a shorter lifetime).
const TOKEN_SLACK: Duration = Duration::from_secs(10);
/// Token lifetime when the token service does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Largest error body read to report a registry's message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A stream of request body bytes.
pub type BodyStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A request body.
pub enum Body {
    /// No body.
    Empty,
    /// Bytes that can be sent again on retry.
    Bytes(Bytes),
    /// A stream that can be sent once.
    Stream(Option<BodyStream>),
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(_))
    }

    /// The body for one attempt; every chunk a stream hands over counts as activity.
    fn take(&mut self, activity: &Arc<Activity>) -> Option<reqwest::Body> {
        match self {
            Body::Empty => None,
            Body::Bytes(bytes) => Some(reqwest::Body::from(bytes.clone())),
            Body::Stream(stream) => stream.take().map(|stream| {
                let activity = activity.clone();
                reqwest::Body::wrap_stream(stream.inspect(move |_| activity.touch()))
            }),
        }
    }
}

/// A request to a registry host.
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    /// Token scopes the request needs (`repository:name:pull`).
    pub scopes: Vec<String>,
}

impl Request {
    pub fn new(method: Method, url: Url, scopes: Vec<String>) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            scopes,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Request {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    pub fn body(mut self, body: Body) -> Request {
        self.body = body;
        self
    }

    /// The same request again, if its body can be sent again.
    fn replay(&self) -> Option<Request> {
        let body = match &self.body {
            Body::Empty => Body::Empty,
            Body::Bytes(bytes) => Body::Bytes(bytes.clone()),
            Body::Stream(_) => return None,
        };
        Some(Request {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            scopes: self.scopes.clone(),
        })
    }
}

/// When a byte last moved on an exchange, in either direction.
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Runs `work` until it ends or nothing has moved for `limit`; `None` when it stalled.
async fn unless_idle<T>(
    activity: &Activity,
    limit: Duration,
    work: impl Future<Output = T>,
) -> Option<T> {
    let watchdog = async {
        loop {
            let idle = activity.idle();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    };
    tokio::select! {
        biased;
        out = work => Some(out),
        () = watchdog => None,
    }
}

/// The error of an exchange on which nothing moved for `limit`.
fn stalled(host: &str, limit: Duration) -> ErrorKind {
    ErrorKind::Network(format!(
        "{host} sent nothing for {} s (--idle-timeout)",
        limit.as_secs_f32()
    ))
}

/// A registry's answer: status and headers at once, the body read with the idle timeout.
pub struct Response {
    inner: reqwest::Response,
    host: String,
    idle: Duration,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The body as it arrives; a pause longer than the idle timeout ends it with a network error.
    pub fn bytes_stream(self) -> BoxStream<'static, Result<Bytes, ErrorKind>> {
        let Response { inner, host, idle } = self;
        futures_util::stream::unfold(
            (inner.bytes_stream(), host, idle, false),
            |(mut body, host, idle, failed)| async move {
                if failed {
                    return None;
                }
                let item = match tokio::time::timeout(idle, body.next()).await {
                    Err(_) => Err(stalled(&host, idle)),
                    Ok(None) => return None,
                    Ok(Some(Ok(chunk))) => Ok(chunk),
                    Ok(Some(Err(e))) => Err(network_error(&host, &e)),
                };
                let failed = item.is_err();
                Some((item, (body, host, idle, failed)))
            },
        )
        .boxed()
    }

    /// The whole body of a small answer, refusing more than `limit` bytes.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, ErrorKind> {
        let announced = self
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(length) = announced
            && length > limit
        {
            return Err(wharf_oci::ManifestError::TooLarge(length).into());
        }
        let mut stream = self.bytes_stream();
        let mut out = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(wharf_oci::ManifestError::TooLarge(out.len() + chunk.len()).into());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}

/// A small answer read whole.
pub struct Buffered {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Buffered {
    /// The error this answer reports.
    pub fn error(&self) -> ErrorKind {
        error_from(self.status, &self.body)
    }
}

/// A bearer token and the moment to renew it.
type TokenSlot = Arc<tokio::sync::Mutex<Option<(String, Instant)>>>;

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by their space-joined scopes. Each slot has its own lock, held while a token is
    /// fetched, so concurrent requests for the same scopes share one fetch.
    tokens: HashMap<String, TokenSlot>,
}

/// How wharf talks to one registry host.
pub struct Host {
    /// The host as references name it (`docker.io`, `localhost:5000`).
    pub name: String,
    pub quirks: Quirks,
    client: reqwest::Client,
    /// Plain HTTP is allowed (loopback or marked insecure); HTTPS is still tried first.
    allow_http: bool,
    base: OnceCell<Url>,
    credentials: OnceCell<Option<Credentials>>,
    explicit: Option<Credentials>,
    source: CredentialSource,
    auth: Mutex<AuthState>,
    /// No byte moving for this long fails a request.
    idle: Duration,
    /// How many blob downloads this host serves at once. Downloads and uploads have separate windows,
    /// so a copy within one registry never waits on itself.
    pub pull_throttle: Arc<Throttle>,
    /// How many blob uploads this host takes at once.
    pub push_throttle: Arc<Throttle>,
    /// The largest request body the host (or a proxy in front of it) takes, learned from 413
    /// answers: [`FACT_UNREAD`] until the blob cache was asked, 0 while no limit is known.
    pub body_limit: AtomicUsize,
    /// Whether the host mounts blobs across repositories: one of the `MOUNTS_` values.
    pub mounts: AtomicU8,
    /// Mounts of blobs known to be in the source repository that the host refused, this run.
    pub mount_refusals: AtomicUsize,
}

/// A host fact not yet looked up in the blob cache.
pub const FACT_UNREAD: usize = usize::MAX;
/// [`Host::mounts`]: not yet looked up in the blob cache.
pub const MOUNTS_UNREAD: u8 = 0;
/// [`Host::mounts`]: not known.
pub const MOUNTS_UNKNOWN: u8 = 1;
/// [`Host::mounts`]: the host mounts.
pub const MOUNTS_YES: u8 = 2;
/// [`Host::mounts`]: the host refused to mount a blob known to be where it was asked to take it.
pub const MOUNTS_NO: u8 = 3;

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Host {
    pub fn new(
        name: &str,
        client: reqwest::Client,
        allow_http: bool,
        explicit: Option<Credentials>,
        source: CredentialSource,
        idle: Duration,
    ) -> Host {
        Host {
            name: name.to_owned(),
            quirks: quirks::for_host(name),
            client,
            allow_http,
            base: OnceCell::new(),
            credentials: OnceCell::new(),
            explicit,
            source,
            auth: Mutex::new(AuthState::default()),
            idle,
            pull_throttle: Arc::default(),
            push_throttle: Arc::default(),
            body_limit: AtomicUsize::new(FACT_UNREAD),
            mounts: AtomicU8::new(MOUNTS_UNREAD),
            mount_refusals: AtomicUsize::new(0),
        }
    }

    fn api_host(&self) -> &str {
        self.quirks.api_host.unwrap_or(&self.name)
    }

    /// `https://host/` (or `http://` where allowed and HTTPS fails), found by pinging `/v2/` once;
    /// the ping also learns how the host wants to be authenticated.
    pub async fn base(&self) -> Result<&Url, ErrorKind> {
        self.base
            .get_or_try_init(|| async {
                let https = Url::parse(&format!("https://{}/", self.api_host()))
                    .map_err(|e| ErrorKind::Invalid(format!("registry host {}: {e}", self.name)))?;
                match self.ping(&https).await {
                    Ok(()) => Ok(https),
                    // It speaks TLS: plain HTTP would only add noise to the message.
                    Err(https_error) if is_certificate_problem(&https_error) => Err(https_error),
                    Err(https_error) if self.allow_http => {
                        tracing::debug!(host = %self.name, "HTTPS failed ({https_error}); trying HTTP");
                        let http =
                            Url::parse(&format!("http://{}/", self.api_host())).expect("valid");
                        match self.ping(&http).await {
                            Ok(()) => Ok(http),
                            // The same failure both ways (nothing listening) is said once.
                            Err(http_error) if http_error.to_string() == https_error.to_string() => {
                                Err(https_error)
                            }
                            // Report both: the HTTPS failure is usually the one that explains.
                            Err(http_error) => Err(ErrorKind::Network(format!(
                                "{https_error}; over plain HTTP: {http_error}"
                            ))),
                        }
                    }
                    Err(e) => Err(e),
                }
            })
            .await
    }

    async fn ping(&self, base: &Url) -> Result<(), ErrorKind> {
        let url = base.join("v2/").expect("valid path");
        let response = self
            .exchange(self.client.get(url), &Activity::new())
            .await?;
        match response.status() {
            StatusCode::UNAUTHORIZED => {
                self.learn(response.headers());
                Ok(())
            }
            status if status.is_success() => Ok(()),
            status if status.is_server_error() => Err(status_error(response).await),
            // Some registries answer /v2/ with 404 yet serve the API; carry on.
            _ => Ok(()),
        }
    }

    /// A URL on this host.
    pub async fn url(&self, path: &str) -> Result<Url, ErrorKind> {
        let base = self.base().await?;
        base.join(path.trim_start_matches('/'))
            .map_err(|e| ErrorKind::Invalid(format!("bad path {path}: {e}")))
    }

    /// Resolves a `Location` header against the host.
    pub async fn resolve_location(&self, location: &str) -> Result<Url, ErrorKind> {
        self.base().await?.join(location).map_err(|e| {
            ErrorKind::Invalid(format!(
                "registry sent an invalid Location {location:?}: {e}"
            ))
        })
    }

    fn learn(&self, headers: &HeaderMap) {
        let challenge = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(challenge::parse);
        if let Some(challenge) = challenge {
            let mut auth = self.auth.lock().unwrap_or_else(|e| e.into_inner());
            auth.challenge = Some(challenge);
        }
    }

    async fn credentials(&self) -> Result<Option<Credentials>, ErrorKind> {
        if let Some(explicit) = &self.explicit {
            return Ok(Some(explicit.clone()));
        }
        self.credentials
            .get_or_try_init(|| async {
                self.source
                    .lookup(&self.name)
                    .await
                    .map_err(ErrorKind::from)
            })
            .await
            .cloned()
    }

    /// The `Authorization` header for `scopes`, fetching a token if needed.
    async fn authorization(&self, scopes: &[String]) -> Result<Option<HeaderValue>, ErrorKind> {
        let challenge = self
            .auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .challenge
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credentials().await? {
                Some(Credentials::Basic { username, password }) => {
                    let value = format!(
                        "Basic {}",
                        STANDARD.encode(format!("{username}:{password}"))
                    );
                    Ok(HeaderValue::from_str(&value).ok())
                }
                _ => Ok(None),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let slot = {
                    let mut auth = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                    auth.tokens.entry(scopes.join(" ")).or_default().clone()
                };
                let mut slot = slot.lock().await;
                let fresh = slot
                    .as_ref()
                    .filter(|(_, renew_at)| Instant::now() < *renew_at)
                    .map(|(token, _)| token.clone());
                let token = match fresh {
                    Some(token) => token,
                    None => {
                        let (token, lifetime) =
                            self.fetch_token(&realm, service.as_deref(), scopes).await?;
                        let renew_at = Instant::now() + lifetime - TOKEN_SLACK.min(lifetime / 4);
                        *slot = Some((token.clone(), renew_at));
                        token
                    }
                };
                Ok(HeaderValue::from_str(&format!("Bearer {token}")).ok())
            }
        }
    }

    fn forget_token(&self, scopes: &[String]) {
        let mut auth = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        auth.tokens.remove(&scopes.join(" "));
    }

    /// Asks the realm for a token: OAuth2 refresh-token POST for identity tokens, else GET with
    /// basic credentials (or anonymously).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(String, Duration), ErrorKind> {
        let mut url = Url::parse(realm).map_err(|e| {
            ErrorKind::Unauthorized(format!(
                "the registry's token realm {realm:?} is not a URL: {e}"
            ))
        })?;
        let credentials = self.credentials().await?;
        let request = match &credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "wharf"),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let scope = scopes.join(" ");
                if !scope.is_empty() {
                    form.push(("scope", &scope));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", form_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in scopes {
                        query.append_pair("scope", scope);
                    }
                }
                let request = self.client.get(url);
                match other {
                    Some(Credentials::Basic { username, password }) => {
                        request.basic_auth(username, Some(password))
                    }
                    _ => request,
                }
            }
        };
        let response = self.exchange(request, &Activity::new()).await?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            return Err(self.refused().await);
        }
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        let body = response.bytes(ERROR_BODY_LIMIT).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            ErrorKind::Unauthorized(format!(
                "the token service at {realm} sent an unreadable answer: {e}"
            ))
        })?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ErrorKind::Unauthorized(format!("the token service at {realm} sent no token"))
            })?;
        let lifetime = parsed
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Ok((token, lifetime))
    }

    /// Sends one request and waits for the answer's headers, failing when nothing moves for the idle
    /// timeout (an upload's body chunks count as movement).
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        activity: &Activity,
    ) -> Result<Response, ErrorKind> {
        match unless_idle(activity, self.idle, request.send()).await {
            None => Err(stalled(&self.name, self.idle)),
            Some(Err(e)) => Err(network_error(&self.name, &e)),
            Some(Ok(inner)) => Ok(Response {
                inner,
                host: self.name.clone(),
                idle: self.idle,
            }),
        }
    }

    /// The registry turned a request away for want of credentials: in words, with what to do.
    async fn refused(&self) -> ErrorKind {
        let advice = format!("run `wharf login {0}` or pass --creds", self.name);
        ErrorKind::Unauthorized(match self.credentials().await {
            Ok(Some(_)) => format!("credentials rejected by {} ({advice})", self.name),
            _ => format!("{} requires credentials ({advice})", self.name),
        })
    }

    /// Sends a request with authentication and retries; see the module documentation.
    pub async fn send(&self, mut request: Request) -> Result<Response, ErrorKind> {
        self.base().await?;
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let activity = Activity::new();
            let mut builder = self
                .client
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone());
            if let Some(value) = self.authorization(&request.scopes).await? {
                builder = builder.header(AUTHORIZATION, value);
            }
            if let Some(body) = request.body.take(&activity) {
                builder = builder.body(body);
            }
            let can_retry = request.body.replayable() && attempt < MAX_ATTEMPTS;
            let response = match self.exchange(builder, &activity).await {
                Ok(response) => response,
                Err(e) if can_retry => {
                    let wait = backoff(attempt);
                    tracing::debug!(url = %request.url, "request failed ({e}); retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                reauthenticated = true;
                self.learn(response.headers());
                self.forget_token(&request.scopes);
                if request.body.replayable() {
                    continue;
                }
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(self.refused().await);
            }
            let throttle = if matches!(request.method, Method::GET | Method::HEAD) {
                &self.pull_throttle
            } else {
                &self.push_throttle
            };
            if matches!(status.as_u16(), 429 | 503) {
                throttle.congested();
            } else if status.is_success() {
                throttle.succeeded();
            }
            let retryable = matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504);
            if retryable && can_retry {
                let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                tracing::debug!(url = %request.url, %status, "retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(response);
        }
    }

    /// Sends a request without a streamed body and reads the whole answer (at most `limit` bytes of a
    /// success), asking again when the connection breaks or stalls inside the body.
    pub async fn send_read(&self, request: Request, limit: usize) -> Result<Buffered, ErrorKind> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let this_attempt = request.replay().ok_or_else(|| {
                ErrorKind::Invalid("a streamed request cannot be read whole".into())
            })?;
            let response = self.send(this_attempt).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let limit = if status.is_success() {
                limit
            } else {
                ERROR_BODY_LIMIT
            };
            match response.bytes(limit).await {
                Ok(body) => {
                    return Ok(Buffered {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    let wait = backoff(attempt);
                    tracing::debug!(url = %request.url, "answer cut short ({e}); asking again in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Exponential backoff with up to 50% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    let jitter_range = (base.as_millis() / 2).max(1) as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (base + Duration::from_millis(nanos % jitter_range)).min(BACKOFF_CAP)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and falls back to backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(BACKOFF_CAP))
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A connection-level failure, without the request URL's query (which may carry state tokens).
pub fn network_error(target: &str, error: &reqwest::Error) -> ErrorKind {
    let mut message = format!("cannot reach {target}");
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut deepest = None;
    while let Some(e) = source {
        deepest = Some(e.to_string());
        source = e.source();
    }
    if let Some(problem) = deepest.as_deref().and_then(certificate_problem) {
        return ErrorKind::Network(format!(
            "{target} answered with a certificate that is not trusted ({problem}): put its CA \
             certificate (or the certificate itself) in a directory given with --cert-dir, or \
             skip the check with --tls-verify=false"
        ));
    }
    if let Some(cause) = deepest {
        message += &format!(": {cause}");
    } else if error.is_timeout() {
        message += ": timed out";
    }
    ErrorKind::Network(message)
}

/// A TLS certificate failure, in words, from the TLS library's message.
fn certificate_problem(cause: &str) -> Option<&'static str> {
    let detail = cause.strip_prefix("invalid peer certificate: ")?;
    Some(match detail {
        d if d.starts_with("UnknownIssuer") => "signed by an unknown authority",
        d if d.contains("CaUsedAsEndEntity") => "a CA certificate used as the server's own",
        d if d.starts_with("NotValidForName") => "not issued for this host name",
        d if d.starts_with("Expired") => "expired",
        d if d.starts_with("NotValidYet") => "not valid yet",
        d if d.starts_with("Revoked") => "revoked",
        _ => "rejected by the TLS library",
    })
}

/// True for an error that says the server speaks TLS with a certificate not trusted here.
pub fn is_certificate_problem(error: &ErrorKind) -> bool {
    matches!(error, ErrorKind::Network(m) if m.contains("a certificate that is not trusted"))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<String>,
    message: Option<String>,
}

/// Turns an error response into an [`ErrorKind`], reading the spec's error envelope when present.
pub async fn status_error(response: Response) -> ErrorKind {
    let status = response.status();
    let body = response.bytes(ERROR_BODY_LIMIT).await.unwrap_or_default();
    error_from(status, &body)
}

/// The [`ErrorKind`] of an error answer read whole.
pub fn error_from(status: StatusCode, body: &[u8]) -> ErrorKind {
    let entry = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next());
    let (code, message) = match entry {
        Some(entry) => (entry.code, entry.message.unwrap_or_default()),
        None => (
            None,
            status.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    if status == StatusCode::UNAUTHORIZED {
        return ErrorKind::Unauthorized(format!("authentication required: {message}"));
    }
    if status == StatusCode::FORBIDDEN {
        return ErrorKind::Unauthorized(format!("access denied: {message}"));
    }
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "{message} (the registry, or a proxy in front of it, limits request bodies: raise the \
             limit, such as nginx's client_max_body_size)"
        )
    } else {
        message
    };
    ErrorKind::Registry {
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= BACKOFF_BASE && backoff(1) < BACKOFF_BASE * 2);
        assert!(backoff(3) >= BACKOFF_BASE * 4);
        assert!(backoff(30) <= BACKOFF_CAP);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("9999"));
        assert_eq!(retry_after(&headers), Some(BACKOFF_CAP));
        assert_eq!(
            form_encode("repository:a/b:pull push"),
            "repository%3Aa%2Fb%3Apull+push"
        );
    }
}
