//! A reverse proxy for registry tests: bearer tokens, injected faults (one by one, or at random in
//! chaos mode), and a record of every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::StreamExt;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer with this status (and `Retry-After` seconds) instead of forwarding.
    Status { code: u16, retry_after: Option<u64> },
    /// Forward, but cut the connection after this many bytes of the response body.
    CutBodyAfter(usize),
    /// Forward, but flip one byte in the middle of the response body.
    CorruptBody,
    /// Forward without the request's `Range` header, as servers that ignore it do.
    IgnoreRange,
    /// Answer 401 with a fresh challenge, as when a token was revoked.
    Unauthorized,
    /// Forward, pass on this many bytes of the response body, then send nothing more while keeping
    /// the connection open.
    StallBodyAfter(usize),
    /// Take the request and never answer, keeping the connection open.
    BlackHole,
    /// Forward the request, so the registry acts on it, then never answer: the answer is lost, as
    /// when the registry dies between doing the work and replying.
    AnswerLost,
    /// Forward with the request body damaged in transit: a manifest gets a trailing newline (still
    /// valid JSON, another digest), any other body one flipped byte.
    AlterRequestBody,
    /// Forward after waiting this long.
    Delay(std::time::Duration),
    /// Answer with this status and a registry error of this code and message (a registry refusing
    /// something, such as an immutable tag).
    Refuse {
        code: u16,
        error: &'static str,
        message: String,
    },
}

/// A fault for the next `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: Option<Method>,
    /// Matched against the path and the query (`/v2/a/blobs/uploads/?mount=…`).
    pub path_contains: String,
    pub times: usize,
    pub action: FaultAction,
}

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Record {
    pub method: String,
    pub path: String,
    /// The query string, empty if none.
    pub query: String,
    pub status: u16,
}

/// Bearer authentication issued by the proxy itself.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub username: String,
    pub password: String,
    /// Seconds a token is valid.
    pub lifetime: u64,
}

/// The kinds of fault chaos mode deals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChaosKind {
    /// 503 Service Unavailable.
    Unavailable,
    /// The connection cut inside the response body.
    Cut,
    /// The response body stalls with the connection open.
    Stall,
    /// A byte of the response body flipped.
    Corrupt,
    /// The request body damaged on its way to the registry.
    DamagedRequest,
}

impl ChaosKind {
    /// Every kind.
    pub const ALL: [ChaosKind; 5] = [
        ChaosKind::Unavailable,
        ChaosKind::Cut,
        ChaosKind::Stall,
        ChaosKind::Corrupt,
        ChaosKind::DamagedRequest,
    ];

    /// By name: `unavailable`, `cut`, `stall`, `corrupt`, `damaged-request`.
    pub fn parse(name: &str) -> Option<ChaosKind> {
        ChaosKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ChaosKind::Unavailable => "unavailable",
            ChaosKind::Cut => "cut",
            ChaosKind::Stall => "stall",
            ChaosKind::Corrupt => "corrupt",
            ChaosKind::DamagedRequest => "damaged-request",
        }
    }

    fn action(self, blob: bool) -> FaultAction {
        let into_body = if blob { 4096 } else { 10 };
        match self {
            ChaosKind::Unavailable => FaultAction::Status {
                code: 503,
                retry_after: None,
            },
            ChaosKind::Cut => FaultAction::CutBodyAfter(into_body),
            ChaosKind::Stall => FaultAction::StallBodyAfter(into_body),
            ChaosKind::Corrupt => FaultAction::CorruptBody,
            ChaosKind::DamagedRequest => FaultAction::AlterRequestBody,
        }
    }
}

/// Faults at random: each request meets one with this probability.
struct Chaos {
    percent: u32,
    kinds: Vec<ChaosKind>,
    rng: rand::rngs::SmallRng,
    /// Faults dealt so far.
    dealt: usize,
}

struct ProxyState {
    upstream: String,
    public: String,
    client: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
    chaos: Mutex<Option<Chaos>>,
    /// Turns true when the proxy stops: stalled requests end then.
    stopping: tokio::sync::watch::Receiver<bool>,
    log: Mutex<Vec<Record>>,
    auth: Option<TokenAuth>,
    /// Issued tokens and the scopes they carry.
    tokens: Mutex<HashMap<String, Vec<String>>>,
    issued: AtomicUsize,
}

/// A proxy running on its own thread until dropped.
pub struct TestProxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestProxy {
    /// Proxies to `upstream` (`127.0.0.1:PORT`); with `auth`, demands its own bearer tokens.
    pub fn start(upstream: &str, auth: Option<TokenAuth>) -> TestProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let state = Arc::new(ProxyState {
            upstream: format!("http://{upstream}"),
            public: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            faults: Mutex::new(Vec::new()),
            chaos: Mutex::new(None),
            stopping,
            log: Mutex::new(Vec::new()),
            auth,
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicUsize::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(handle).with_state(served);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                        let _ = stopping_tx.send(true);
                    })
                    .await
                    .expect("proxy serves");
            });
        });
        TestProxy {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push(fault);
    }

    /// From now on, each request (but the ping and token requests) meets a fault with probability
    /// `percent`%, one of `kinds` at random. `seed` makes a run repeatable.
    pub fn chaos(&self, percent: u32, kinds: &[ChaosKind], seed: u64) {
        use rand::SeedableRng;
        *self.state.chaos.lock().unwrap() = Some(Chaos {
            percent,
            kinds: kinds.to_vec(),
            rng: rand::rngs::SmallRng::seed_from_u64(seed),
            dealt: 0,
        });
    }

    /// Faults chaos mode has dealt so far.
    pub fn chaos_dealt(&self) -> usize {
        self.state
            .chaos
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |c| c.dealt)
    }

    /// Every request so far.
    pub fn records(&self) -> Vec<Record> {
        self.state.log.lock().unwrap().clone()
    }

    /// Forgets the record.
    pub fn clear_records(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let response = respond(&state, request).await;
    state.log.lock().unwrap().push(Record {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

async fn respond(state: &ProxyState, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(auth) = &state.auth {
        if path == "/token" {
            return issue_token(state, auth, request).await;
        }
        if !token_admits(state, &request) {
            return challenge(state, &path, request.method());
        }
    }
    let fault = {
        let target = request
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str());
        let mut faults = state.faults.lock().unwrap();
        let found = faults.iter_mut().find(|f| {
            f.times > 0
                && target.contains(&f.path_contains)
                && f.method.as_ref().is_none_or(|m| m == request.method())
        });
        found.map(|f| {
            f.times -= 1;
            f.action.clone()
        })
    };
    let fault = fault.or_else(|| chaos_fault(state, &path));
    match fault {
        Some(FaultAction::Status { code, retry_after }) => {
            let mut response = (
                StatusCode::from_u16(code).expect("valid status"),
                axum::Json(serde_json::json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "injected"}]})),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        Some(FaultAction::Refuse {
            code,
            error,
            message,
        }) => (
            StatusCode::from_u16(code).expect("valid status"),
            axum::Json(serde_json::json!({"errors": [{"code": error, "message": message}]})),
        )
            .into_response(),
        Some(FaultAction::Unauthorized) => challenge(state, &path, request.method()),
        Some(FaultAction::Delay(wait)) => {
            tokio::time::sleep(wait).await;
            forward(state, request, None).await
        }
        Some(FaultAction::AnswerLost) => {
            drop(forward(state, request, None).await);
            stalled(state).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Some(FaultAction::BlackHole) => {
            stalled(state).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Some(action) => forward(state, request, Some(action)).await,
        None => forward(state, request, None).await,
    }
}

/// The repository a `/v2/<name>/...` path addresses.
fn repository(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let end = segments
        .iter()
        .rposition(|s| matches!(*s, "blobs" | "manifests" | "tags" | "referrers"))?;
    Some(segments[..end].join("/"))
}

fn needed_scope(path: &str, method: &Method) -> Option<String> {
    let repo = repository(path)?;
    let actions = if matches!(*method, Method::GET | Method::HEAD) {
        "pull"
    } else {
        "pull,push"
    };
    Some(format!("repository:{repo}:{actions}"))
}

fn challenge(state: &ProxyState, path: &str, method: &Method) -> Response {
    let scope = needed_scope(path, method).map_or(String::new(), |s| format!(",scope=\"{s}\""));
    let value = format!(
        "Bearer realm=\"{}/token\",service=\"testkit\"{scope}",
        state.public
    );
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "token required"}]}),
        ),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&value).expect("header"),
    );
    response
}

/// True if the request carries a token issued here whose scopes cover what the request does.
fn token_admits(state: &ProxyState, request: &Request) -> bool {
    let path = request.uri().path();
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let granted = token.and_then(|t| state.tokens.lock().unwrap().get(t).cloned());
    let Some(granted) = granted else {
        return false;
    };
    let Some(needed) = needed_scope(path, request.method()) else {
        return true; // /v2/ and the catalog need any valid token
    };
    let (repo, actions) = needed.rsplit_once(':').expect("scope form");
    actions.split(',').all(|action| {
        granted.iter().any(|g| {
            g.rsplit_once(':')
                .is_some_and(|(r, a)| r == repo && a.split(',').any(|x| x == action || x == "*"))
        })
    })
}

async fn issue_token(state: &ProxyState, auth: &TokenAuth, request: Request) -> Response {
    let basic = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    if basic != Some(format!("{}:{}", auth.username, auth.password)) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let scopes: Vec<String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .map(|s| {
            s.replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",")
                .replace('+', " ")
        })
        .collect();
    let n = state.issued.fetch_add(1, Ordering::SeqCst);
    let token = format!("token-{n}");
    state.tokens.lock().unwrap().insert(token.clone(), scopes);
    axum::Json(serde_json::json!({"token": token, "expires_in": auth.lifetime})).into_response()
}

/// A fault for this request, in chaos mode: never on the ping or the token endpoint, which every
/// client needs first.
fn chaos_fault(state: &ProxyState, path: &str) -> Option<FaultAction> {
    use rand::Rng;
    let mut chaos = state.chaos.lock().unwrap();
    let chaos = chaos.as_mut()?;
    if path == "/v2/"
        || path == "/token"
        || chaos.kinds.is_empty()
        || chaos.rng.random_range(0..100) >= chaos.percent
    {
        return None;
    }
    chaos.dealt += 1;
    let kind = chaos.kinds[chaos.rng.random_range(0..chaos.kinds.len())];
    Some(kind.action(path.contains("/blobs/")))
}

/// Waits until the proxy stops.
async fn stalled(state: &ProxyState) {
    let mut stopping = state.stopping.clone();
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// `body` damaged as [`FaultAction::AlterRequestBody`] says; `None` when it cannot be read.
async fn altered(body: Body, manifest: bool) -> Option<Bytes> {
    let bytes = axum::body::to_bytes(body, usize::MAX).await.ok()?;
    if bytes.is_empty() {
        return Some(bytes);
    }
    let mut bytes = bytes.to_vec();
    if manifest {
        bytes.push(b'\n');
    } else {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    Some(Bytes::from(bytes))
}

async fn forward(state: &ProxyState, request: Request, action: Option<FaultAction>) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", state.upstream);
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let skip = name == header::HOST
            || name == header::AUTHORIZATION
            || (name == header::RANGE && matches!(action, Some(FaultAction::IgnoreRange)));
        if !skip {
            headers.append(name.clone(), value.clone());
        }
    }
    let body = match action {
        Some(FaultAction::AlterRequestBody) => {
            let manifest = parts.uri.path().contains("/manifests/");
            let Some(bytes) = altered(body, manifest).await else {
                return (StatusCode::BAD_GATEWAY, "request body unreadable").into_response();
            };
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            reqwest::Body::from(bytes)
        }
        _ => reqwest::Body::wrap_stream(body.into_data_stream()),
    };
    let upstream = state
        .client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(response) => response,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = upstream.status();
    let mut response_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if name == header::LOCATION
            && let Ok(text) = value.to_str()
        {
            let rewritten = text.replace(&state.upstream, &state.public);
            response_headers.insert(
                name.clone(),
                HeaderValue::from_str(&rewritten).expect("header"),
            );
        } else {
            response_headers.append(name.clone(), value.clone());
        }
    }
    let stream = upstream.bytes_stream();
    let body = match action {
        Some(FaultAction::CutBodyAfter(limit)) => {
            let mut sent = 0usize;
            Body::from_stream(stream.map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                if sent + chunk.len() > limit {
                    return Err(std::io::Error::other("connection cut by the test proxy"));
                }
                sent += chunk.len();
                Ok(chunk)
            }))
        }
        Some(FaultAction::CorruptBody) => {
            let mut flipped = false;
            Body::from_stream(stream.map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                if flipped || chunk.is_empty() {
                    return Ok(chunk);
                }
                flipped = true;
                let mut bytes = chunk.to_vec();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                Ok::<_, std::io::Error>(Bytes::from(bytes))
            }))
        }
        Some(FaultAction::StallBodyAfter(limit)) => {
            enum Phase {
                Passing(usize),
                Stalling,
                Done,
            }
            let stopping = state.stopping.clone();
            Body::from_stream(futures_util::stream::unfold(
                (stream.boxed(), stopping, Phase::Passing(0)),
                move |(mut stream, mut stopping, phase)| async move {
                    match phase {
                        Phase::Done => None,
                        Phase::Stalling => {
                            // Nothing more, with the connection open, until the proxy stops.
                            let _ = stopping.wait_for(|stopping| *stopping).await;
                            let stopped = std::io::Error::other("the test proxy stopped");
                            Some((Err(stopped), (stream, stopping, Phase::Done)))
                        }
                        Phase::Passing(sent) => match stream.next().await? {
                            Err(e) => Some((
                                Err(std::io::Error::other(e)),
                                (stream, stopping, Phase::Done),
                            )),
                            Ok(chunk) if sent + chunk.len() > limit => {
                                let part = chunk.slice(..limit - sent);
                                Some((Ok(part), (stream, stopping, Phase::Stalling)))
                            }
                            Ok(chunk) => {
                                let sent = sent + chunk.len();
                                Some((Ok(chunk), (stream, stopping, Phase::Passing(sent))))
                            }
                        },
                    }
                },
            ))
        }
        _ => Body::from_stream(stream),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_repositories_and_scopes() {
        assert_eq!(repository("/v2/a/b/blobs/sha256:x").as_deref(), Some("a/b"));
        assert_eq!(repository("/v2/a/manifests/v1").as_deref(), Some("a"));
        assert_eq!(repository("/v2/"), None);
        assert_eq!(
            needed_scope("/v2/a/blobs/uploads/", &Method::POST).as_deref(),
            Some("repository:a:pull,push")
        );
    }
}
