//! One connection context per registry host: URL scheme, authentication, retries.
//!
//! Every request goes through [`Host::send`]: it attaches credentials for the scopes the request needs
//! (basic, or a bearer token fetched from the challenge's realm and cached per scope set), answers a 401
//! by learning the new challenge and trying once more, and retries network errors, 408, 429 and 5xx with
//! exponential backoff and jitter (honouring `Retry-After`) as long as the request body can be sent
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};
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

/// A request body.
pub enum Body {
    /// No body.
    Empty,
    /// Bytes that can be sent again on retry.
    Bytes(Bytes),
    /// A stream that can be sent once.
    Stream(Option<reqwest::Body>),
}

impl Body {
    fn replayable(&self) -> bool {
        !matches!(self, Body::Stream(_))
    }

    fn take(&mut self) -> Option<reqwest::Body> {
        match self {
            Body::Empty => None,
            Body::Bytes(bytes) => Some(reqwest::Body::from(bytes.clone())),
            Body::Stream(stream) => stream.take(),
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
    /// How many blob downloads this host serves at once. Downloads and uploads have separate windows,
    /// so a copy within one registry never waits on itself.
    pub pull_throttle: Arc<Throttle>,
    /// How many blob uploads this host takes at once.
    pub push_throttle: Arc<Throttle>,
}

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
            pull_throttle: Arc::default(),
            push_throttle: Arc::default(),
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
                    Err(https_error) if self.allow_http => {
                        tracing::debug!(host = %self.name, "HTTPS failed ({https_error}); trying HTTP");
                        let http =
                            Url::parse(&format!("http://{}/", self.api_host())).expect("valid");
                        match self.ping(&http).await {
                            Ok(()) => Ok(http),
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
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| network_error(&self.name, &e))?;
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
        let response = request.send().await.map_err(|e| network_error(realm, &e))?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
        {
            let why = if credentials.is_some() {
                format!(
                    "the token service at {realm} refused the credentials for {}",
                    self.name
                )
            } else {
                format!(
                    "{} requires credentials (use wharf login or --creds)",
                    self.name
                )
            };
            return Err(ErrorKind::Unauthorized(why));
        }
        if !response.status().is_success() {
            return Err(status_error(response).await);
        }
        let parsed: TokenResponse = response.json().await.map_err(|e| {
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

    /// Sends a request with authentication and retries; see the module documentation.
    pub async fn send(&self, mut request: Request) -> Result<Response, ErrorKind> {
        self.base().await?;
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = self
                .client
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone());
            if let Some(value) = self.authorization(&request.scopes).await? {
                builder = builder.header(AUTHORIZATION, value);
            }
            if let Some(body) = request.body.take() {
                builder = builder.body(body);
            }
            let can_retry = request.body.replayable() && attempt < MAX_ATTEMPTS;
            let response = match builder.send().await {
                Ok(response) => response,
                Err(e) if can_retry => {
                    let wait = backoff(attempt);
                    tracing::debug!(url = %request.url, "request failed ({e}); retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(network_error(&self.name, &e)),
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
    if let Some(cause) = deepest {
        message += &format!(": {cause}");
    } else if error.is_timeout() {
        message += ": timed out";
    }
    ErrorKind::Network(message)
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
    let body = response.bytes().await.unwrap_or_default();
    let entry = serde_json::from_slice::<ErrorEnvelope>(&body)
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
