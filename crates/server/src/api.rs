//! The distribution API: one dispatcher that reads the endpoint from the right-hand end of the path, and
//! a handler per endpoint.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wharf_oci::{Descriptor, Digest, ImageIndex, MANIFEST_MAX_BYTES, media_type};

use crate::AppState;
use crate::auth::User;
use crate::error::{ApiError, ApiResult, Code};
use crate::storage::{ChunkRange, Session, blob_unknown};

const DIGEST_HEADER: &str = "docker-content-digest";
const OCI_SUBJECT: &str = "oci-subject";
const OCI_TAG: &str = "oci-tag";
const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";
const OCI_CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";
const UPLOAD_UUID: &str = "docker-upload-uuid";

/// What a `/v2/...` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Referrers(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
}

/// The route a path is counted under in the metrics.
pub fn route_name(path: &str) -> &'static str {
    match endpoint(path) {
        Some(Endpoint::Base) => "base",
        Some(Endpoint::Catalog) => "catalog",
        Some(Endpoint::Tags(_)) => "tags",
        Some(Endpoint::Manifest(..)) => "manifests",
        Some(Endpoint::Referrers(..)) => "referrers",
        Some(Endpoint::Blob(..)) => "blobs",
        Some(Endpoint::Uploads(_) | Endpoint::Upload(..)) => "uploads",
        None => match path {
            "/healthz" => "healthz",
            "/metrics" => "metrics",
            _ => "other",
        },
    }
}

/// Reads the endpoint from the end of the path, so repository names may contain any valid component.
fn endpoint(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Endpoint::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Endpoint::Catalog);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let name = |tail: usize| segments[..segments.len() - tail].join("/");
    match segments.as_slice() {
        [.., _, "tags", "list"] => Some(Endpoint::Tags(name(2))),
        [.., _, "blobs", "uploads", ""] => Some(Endpoint::Uploads(name(3))),
        [.., _, "blobs", "uploads"] => Some(Endpoint::Uploads(name(2))),
        [.., _, "blobs", "uploads", id] => Some(Endpoint::Upload(name(3), (*id).to_owned())),
        [.., _, "manifests", reference] => {
            Some(Endpoint::Manifest(name(2), (*reference).to_owned()))
        }
        [.., _, "referrers", digest] => Some(Endpoint::Referrers(name(2), (*digest).to_owned())),
        [.., _, "blobs", digest] => Some(Endpoint::Blob(name(2), (*digest).to_owned())),
        _ => None,
    }
}

/// True if `path` addresses an upload session (`/v2/<name>/blobs/uploads/<id>`).
pub fn is_upload_session(path: &str) -> bool {
    matches!(endpoint(path), Some(Endpoint::Upload(..)))
}

/// Every `/v2` request lands here.
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some(endpoint) = endpoint(&path) else {
        return ApiError::new(Code::NameInvalid, format!("no API endpoint at {path}"))
            .with_status(StatusCode::NOT_FOUND)
            .into_response();
    };
    let method = request.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD);
    if writes && state.options.read_only {
        return ApiError::new(Code::Unsupported, "this registry is read-only").into_response();
    }
    match handle(&state, endpoint, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(state: &AppState, endpoint: Endpoint, request: Request) -> ApiResult<Response> {
    // `Parts` can be held across awaits (a request's body cannot be shared between threads).
    let (parts, body) = request.into_parts();
    let request = &parts;
    let method = parts.method.clone();
    match endpoint {
        Endpoint::Base => match method {
            Method::GET | Method::HEAD => Ok(json_response(StatusCode::OK, json!({}))),
            _ => Err(unsupported(&method)),
        },
        Endpoint::Catalog => match method {
            Method::GET => catalog(state, request).await,
            _ => Err(unsupported(&method)),
        },
        Endpoint::Tags(repo) => {
            let repo = repository(&repo)?;
            match method {
                Method::GET => tags(state, repo, request).await,
                _ => Err(unsupported(&method)),
            }
        }
        Endpoint::Manifest(repo, reference) => {
            let repo = repository(&repo)?;
            match method {
                Method::GET | Method::HEAD => get_manifest(state, repo, &reference, request).await,
                Method::PUT => put_manifest(state, repo, &reference, request, body).await,
                Method::DELETE => {
                    state.storage.delete_manifest(repo, &reference).await?;
                    Ok(StatusCode::ACCEPTED.into_response())
                }
                _ => Err(unsupported(&method)),
            }
        }
        Endpoint::Referrers(repo, digest) => {
            let repo = repository(&repo)?;
            match method {
                Method::GET => referrers(state, repo, &digest, request).await,
                _ => Err(unsupported(&method)),
            }
        }
        Endpoint::Blob(repo, digest) => {
            let repo = repository(&repo)?;
            let digest = digest_param(&digest)?;
            match method {
                Method::GET | Method::HEAD => get_blob(state, repo, &digest, request).await,
                Method::DELETE => {
                    state.storage.unlink_blob(repo, &digest).await?;
                    Ok(StatusCode::ACCEPTED.into_response())
                }
                _ => Err(unsupported(&method)),
            }
        }
        Endpoint::Uploads(repo) => {
            let repo = repository(&repo)?;
            match method {
                Method::POST => start_upload(state, repo, request, body).await,
                _ => Err(unsupported(&method)),
            }
        }
        Endpoint::Upload(repo, id) => {
            let repo = repository(&repo)?;
            let session = Session {
                repo,
                id: &id,
                user: user_of(request),
            };
            match method {
                Method::GET => {
                    let offset = state.storage.upload_offset(&session).await?;
                    Ok(upload_response(StatusCode::NO_CONTENT, repo, &id, offset))
                }
                Method::PATCH => patch_upload(state, &session, request, body).await,
                Method::PUT => put_upload(state, &session, request, body).await,
                Method::DELETE => {
                    state.storage.cancel_upload(&session).await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(unsupported(&method)),
            }
        }
    }
}

/// The user the request authenticated as, if any.
fn user_of(request: &Parts) -> Option<&str> {
    request.extensions.get::<User>().map(|u| u.0.as_str())
}

fn unsupported(method: &Method) -> ApiError {
    ApiError::new(Code::Unsupported, format!("{method} is not supported here"))
}

fn repository(name: &str) -> ApiResult<&str> {
    wharf_oci::validate_repository(name)
        .map_err(|e| ApiError::new(Code::NameInvalid, e.to_string()))?;
    Ok(name)
}

fn digest_param(text: &str) -> ApiResult<Digest> {
    Digest::parse(text).map_err(|e| ApiError::new(Code::DigestInvalid, e.to_string()))
}

fn query(request: &Parts, key: &str) -> Option<String> {
    let query = request.uri.query()?;
    form_pairs(query).find(|(k, _)| k == key).map(|(_, v)| v)
}

/// `a=1&b=2` with percent-decoding. A literal `+` stays a `+`: media types are full of them.
fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((percent_decode(k)?, percent_decode(v)?))
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: impl AsRef<str>) {
    if let Ok(value) = HeaderValue::from_str(value.as_ref()) {
        headers.insert(name, value);
    }
}

/// `n` and `last` pagination over a sorted list; the `Link` header points at the next page.
fn paginate(
    items: Vec<String>,
    request: &Parts,
    path: &str,
) -> ApiResult<(Vec<String>, Option<String>)> {
    let n = match query(request, "n") {
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::new(Code::Unsupported, format!("n={n} is not a number"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    let last = query(request, "last");
    let mut page: Vec<String> = items
        .into_iter()
        .filter(|item| {
            last.as_ref()
                .is_none_or(|last| item.as_str() > last.as_str())
        })
        .collect();
    let mut link = None;
    if let Some(n) = n
        && page.len() > n
    {
        page.truncate(n);
        if let Some(last) = page.last() {
            link = Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""));
        }
    }
    Ok((page, link))
}

async fn catalog(state: &AppState, request: &Parts) -> ApiResult<Response> {
    let repositories = state.storage.repositories().await?;
    let (page, link) = paginate(repositories, request, "/v2/_catalog")?;
    let mut response = json_response(StatusCode::OK, json!({"repositories": page}));
    if let Some(link) = link {
        set(response.headers_mut(), "link", link);
    }
    Ok(response)
}

async fn tags(state: &AppState, repo: &str, request: &Parts) -> ApiResult<Response> {
    if !state.storage.repository_exists(repo).await {
        return Err(ApiError::new(
            Code::NameUnknown,
            format!("repository {repo} is not known"),
        ));
    }
    let tags = state.storage.tags(repo).await?;
    let (page, link) = paginate(tags, request, &format!("/v2/{repo}/tags/list"))?;
    let mut response = json_response(StatusCode::OK, json!({"name": repo, "tags": page}));
    if let Some(link) = link {
        set(response.headers_mut(), "link", link);
    }
    Ok(response)
}

/// True if an `Accept` header admits `media_type` (no header admits everything).
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut values = headers.get_all(header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    let (kind, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(media_type::essence)
        .any(|accepted| {
            accepted == media_type || accepted == "*/*" || accepted == format!("{kind}/*")
        })
}

async fn get_manifest(
    state: &AppState,
    repo: &str,
    reference: &str,
    request: &Parts,
) -> ApiResult<Response> {
    let stored = state.storage.manifest(repo, reference).await?;
    if !accepts(&request.headers, &stored.media_type) {
        return Err(ApiError::new(
            Code::ManifestUnknown,
            format!(
                "manifest {reference} is a {}, which the request's Accept header does not list",
                stored.media_type
            ),
        ));
    }
    let length = stored.bytes.len();
    let body = if request.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(stored.bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    set(headers, "content-type", &stored.media_type);
    set(headers, "content-length", length.to_string());
    set(headers, DIGEST_HEADER, stored.digest.as_str());
    Ok(response)
}

async fn put_manifest(
    state: &AppState,
    repo: &str,
    reference: &str,
    request: &Parts,
    body: Body,
) -> ApiResult<Response> {
    let content_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(body, MANIFEST_MAX_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                Code::SizeInvalid,
                format!("manifest exceeds the {MANIFEST_MAX_BYTES}-byte limit"),
            )
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        })?;
    // `?tag=` (distribution spec 1.2): tags to set along with a push by digest.
    let also_tag: Vec<String> = request
        .uri
        .query()
        .map(|q| {
            form_pairs(q)
                .filter(|(k, _)| k == "tag")
                .map(|(_, v)| v)
                .collect()
        })
        .unwrap_or_default();
    let pushed = state
        .storage
        .put_manifest(repo, reference, &also_tag, content_type.as_deref(), bytes)
        .await?;
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    set(
        headers,
        "location",
        format!("/v2/{repo}/manifests/{}", pushed.digest),
    );
    set(headers, DIGEST_HEADER, pushed.digest.as_str());
    if let Some(subject) = pushed.subject {
        set(headers, OCI_SUBJECT, subject.as_str());
    }
    if !also_tag.is_empty() {
        set(headers, OCI_TAG, pushed.tags.join(", "));
    }
    Ok(response)
}

/// Referrers listed in one response at most: a page of entries with annotations stays well below
/// the 4 MiB clients accept for an index.
const REFERRERS_PAGE: usize = 1000;

async fn referrers(
    state: &AppState,
    repo: &str,
    digest: &str,
    request: &Parts,
) -> ApiResult<Response> {
    let subject = digest_param(digest)?;
    let filter = query(request, "artifactType");
    let n = match query(request, "n") {
        Some(n) => n.parse::<usize>().map_err(|_| {
            ApiError::new(Code::Unsupported, format!("n={n} is not a number"))
                .with_status(StatusCode::BAD_REQUEST)
        })?,
        None => REFERRERS_PAGE,
    }
    .clamp(1, REFERRERS_PAGE);
    let last = query(request, "last");
    let mut entries: Vec<Descriptor> = state
        .storage
        .referrers(repo, &subject)
        .await?
        .into_iter()
        .filter(|d| {
            filter
                .as_ref()
                .is_none_or(|wanted| d.artifact_type.as_deref() == Some(wanted.as_str()))
        })
        .filter(|d| {
            last.as_ref()
                .is_none_or(|last| d.digest.as_str() > last.as_str())
        })
        .collect();
    let more = entries.len() > n;
    entries.truncate(n);
    let mut index = ImageIndex::new();
    index.manifests = entries;
    let next = match index.manifests.last() {
        Some(last) if more => {
            let mut link = format!("</v2/{repo}/referrers/{subject}?n={n}&last={}", last.digest);
            if let Some(filter) = &filter {
                link += &format!("&artifactType={}", percent_encode(filter));
            }
            Some(link + ">; rel=\"next\"")
        }
        _ => None,
    };
    let body = serde_json::to_vec(&index).expect("index serialises");
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    set(headers, "content-type", media_type::OCI_INDEX);
    if filter.is_some() {
        set(headers, OCI_FILTERS_APPLIED, "artifactType");
    }
    if let Some(next) = next {
        set(headers, "link", next);
    }
    Ok(response)
}

/// A query value with everything but unreserved characters percent-encoded.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `size` bytes: the inclusive range to send.
fn byte_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (start, "") => (start.parse().ok()?, size.checked_sub(1)?),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && end < size).then_some((start, end))
}

async fn get_blob(
    state: &AppState,
    repo: &str,
    digest: &Digest,
    request: &Parts,
) -> ApiResult<Response> {
    let size = state
        .storage
        .blob_size(repo, digest)
        .await?
        .ok_or_else(|| blob_unknown(digest))?;
    if request.method == Method::GET
        && let Some(valid_for) = state.options.redirect
        && let Some(url) = state.storage.blob_url(digest, valid_for)
    {
        // The bytes come from the object store itself; the client follows the redirect.
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        set(response.headers_mut(), "location", url.as_str());
        set(response.headers_mut(), DIGEST_HEADER, digest.as_str());
        return Ok(response);
    }
    let range = request
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| byte_range(v, size).ok_or(()));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(Ok((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(Err(())) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            set(
                response.headers_mut(),
                "content-range",
                format!("bytes */{size}"),
            );
            return Ok(response);
        }
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let body = if request.method == Method::HEAD || length == 0 {
        Body::empty()
    } else {
        Body::from_stream(state.storage.read_blob(digest, start, length).await?)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    set(headers, "content-type", "application/octet-stream");
    set(headers, "content-length", length.to_string());
    set(headers, "accept-ranges", "bytes");
    set(headers, DIGEST_HEADER, digest.as_str());
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            headers,
            "content-range",
            format!("bytes {start}-{end}/{size}"),
        );
    }
    Ok(response)
}

fn upload_response(status: StatusCode, repo: &str, id: &str, offset: u64) -> Response {
    let mut response = status.into_response();
    let headers = response.headers_mut();
    set(
        headers,
        "location",
        format!("/v2/{repo}/blobs/uploads/{id}"),
    );
    set(headers, "range", format!("0-{}", offset.saturating_sub(1)));
    set(headers, UPLOAD_UUID, id);
    set(headers, "content-length", "0");
    response
}

fn blob_created(repo: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    set(headers, "location", format!("/v2/{repo}/blobs/{digest}"));
    set(headers, DIGEST_HEADER, digest.as_str());
    set(headers, "content-length", "0");
    response
}

async fn start_upload(
    state: &AppState,
    repo: &str,
    request: &Parts,
    body: Body,
) -> ApiResult<Response> {
    if let Some(mount) = query(request, "mount") {
        let digest = digest_param(&mount)?;
        if let Some(from) = query(request, "from") {
            let from = repository(&from)?;
            if state.storage.mount(repo, from, &digest).await? {
                return Ok(blob_created(repo, &digest));
            }
        }
        // Unknown blob or no source: the spec says to answer with an ordinary upload session.
    }
    let digest = query(request, "digest")
        .map(|d| digest_param(&d))
        .transpose()?;
    let user = user_of(request);
    let id = state.storage.start_upload(repo, user).await?;
    if let Some(digest) = digest {
        let session = Session {
            repo,
            id: &id,
            user,
        };
        let body = body.into_data_stream();
        state.storage.finish_upload(&session, &digest, body).await?;
        return Ok(blob_created(repo, &digest));
    }
    let mut response = upload_response(StatusCode::ACCEPTED, repo, &id, 0);
    if let Some(min) = state.options.chunk_min_length {
        set(
            response.headers_mut(),
            OCI_CHUNK_MIN_LENGTH,
            min.to_string(),
        );
    }
    Ok(response)
}

/// `start-end` (the distribution form) or `bytes start-end/size` / `bytes=start-end`.
fn content_range(headers: &HeaderMap) -> ApiResult<Option<ChunkRange>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(Code::BlobUploadInvalid, "malformed Content-Range")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let text = text
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let text = text.split('/').next().unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.trim().parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    Ok(Some(ChunkRange { start, end }))
}

async fn patch_upload(
    state: &AppState,
    session: &Session<'_>,
    request: &Parts,
    body: Body,
) -> ApiResult<Response> {
    let range = content_range(&request.headers)?;
    let body = body.into_data_stream();
    let offset = state
        .storage
        .append_upload(session, range, state.options.chunk_min_length, body)
        .await?;
    Ok(upload_response(
        StatusCode::ACCEPTED,
        session.repo,
        session.id,
        offset,
    ))
}

async fn put_upload(
    state: &AppState,
    session: &Session<'_>,
    request: &Parts,
    body: Body,
) -> ApiResult<Response> {
    let digest = query(request, "digest").ok_or_else(|| {
        ApiError::new(
            Code::DigestInvalid,
            "the digest query parameter is required",
        )
    })?;
    let digest = digest_param(&digest)?;
    let mut body = body.into_data_stream();
    // A closing chunk with a range must continue the upload where it stands, like a PATCH; the
    // final one may be shorter than the minimum.
    if let Some(range) = content_range(&request.headers)? {
        state
            .storage
            .append_upload(session, Some(range), None, body)
            .await?;
        body = Body::empty().into_data_stream();
    }
    state.storage.finish_upload(session, &digest, body).await?;
    Ok(blob_created(session.repo, &digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_endpoints_from_the_right() {
        use Endpoint::*;
        let cases = [
            ("/v2/", Base),
            ("/v2", Base),
            ("/v2/_catalog", Catalog),
            ("/v2/a/b/tags/list", Tags("a/b".into())),
            (
                "/v2/a/manifests/x/manifests/v1",
                Manifest("a/manifests/x".into(), "v1".into()),
            ),
            ("/v2/a/blobs/uploads/", Uploads("a".into())),
            ("/v2/a/blobs/uploads", Uploads("a".into())),
            (
                "/v2/a/b/blobs/uploads/123",
                Upload("a/b".into(), "123".into()),
            ),
            ("/v2/a/blobs/sha256:x", Blob("a".into(), "sha256:x".into())),
            (
                "/v2/a/referrers/sha256:x",
                Referrers("a".into(), "sha256:x".into()),
            ),
            (
                "/v2/../x/blobs/sha256:x",
                Blob("../x".into(), "sha256:x".into()),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(endpoint(path), Some(want), "{path}");
        }
        assert_eq!(endpoint("/v2/a"), None);
        assert_eq!(endpoint("/v3/a/tags/list"), None);
    }

    #[test]
    fn parses_ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=5-1", 100), None);
        assert_eq!(byte_range("bytes=0-1,4-5", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
    }

    #[test]
    fn decodes_queries() {
        let pairs: Vec<_> =
            form_pairs("n=2&last=a%2Fb&artifactType=application%2Fvnd.x%2Bjson").collect();
        assert_eq!(pairs[1], ("last".into(), "a/b".into()));
        assert_eq!(pairs[2].1, "application/vnd.x+json");
    }
}
