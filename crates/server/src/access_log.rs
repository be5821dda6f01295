//! One structured record per request: a tracing event, the metrics, and optionally a JSON line in a
//! file (which tests and benchmarks read to count requests at the server).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Body as _;
use serde_json::json;

use crate::AppState;
use crate::auth::User;

/// An append-only file of JSON lines, written by a thread of its own so that no request waits on the
/// disk; the thread writes each line as it comes.
pub struct AccessLog {
    lines: mpsc::Sender<Message>,
}

enum Message {
    Line(String),
    /// Answered once every line sent before it is written.
    Flush(mpsc::Sender<()>),
}

impl AccessLog {
    /// Opens (creating) the file for appending.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (lines, received) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                for message in received {
                    match message {
                        Message::Line(line) => {
                            if let Err(e) = file.write_all(line.as_bytes()) {
                                tracing::warn!("cannot write the access log: {e}");
                            }
                        }
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(AccessLog { lines })
    }

    fn write(&self, record: &serde_json::Value) {
        let mut line = record.to_string();
        line.push('\n');
        // Fails only when the writer thread is gone, and it has said why.
        let _ = self.lines.send(Message::Line(line));
    }

    /// Waits until every line recorded so far is written (for shutdown).
    pub async fn flush(&self) {
        let (done, written) = mpsc::channel();
        if self.lines.send(Message::Flush(done)).is_ok() {
            let _ = tokio::task::spawn_blocking(move || written.recv()).await;
        }
    }
}

pub async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let sent = header_number(request.headers(), "content-length");
    let route = crate::api::route_name(&path);
    let upload = route == "uploads" && method != "GET" && method != "HEAD";
    if upload {
        state.metrics.upload_started();
    }
    let response = next.run(request).await;
    if upload {
        state.metrics.upload_ended();
    }
    let status = response.status().as_u16();
    let user = response.extensions().get::<User>().map(|u| u.0.clone());
    let millis = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    let answered = header_number(response.headers(), "content-length")
        .or_else(|| response.body().size_hint().exact());
    state.metrics.record(
        route,
        &method,
        status,
        sent.unwrap_or(0),
        answered.unwrap_or(0),
    );
    tracing::info!(target: "wharf_server::access", %method, %path, status, millis, "request");
    if let Some(log) = &state.access_log {
        log.write(&json!({
            "method": method,
            "path": path,
            "query": query,
            "status": status,
            "requestBytes": sent,
            "responseBytes": answered,
            "user": user,
            "millis": millis,
        }));
    }
    response
}

fn header_number(headers: &axum::http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}
