//! Errors in the distribution spec's JSON envelope, with the spec's codes and statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The distribution spec's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The blob is not in the repository.
    BlobUnknown,
    /// The upload failed or was malformed.
    BlobUploadInvalid,
    /// The upload session does not exist.
    BlobUploadUnknown,
    /// The content does not match the digest given.
    DigestInvalid,
    /// A manifest references a blob that is not in the repository.
    ManifestBlobUnknown,
    /// The manifest is malformed.
    ManifestInvalid,
    /// The manifest or tag is not in the repository.
    ManifestUnknown,
    /// The repository name is invalid.
    NameInvalid,
    /// The repository does not exist.
    NameUnknown,
    /// Content too large or with the wrong length.
    SizeInvalid,
    /// Credentials missing or wrong.
    Unauthorized,
    /// The operation is not allowed.
    Denied,
    /// The operation is not supported.
    Unsupported,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
        }
    }

    fn default_status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{} {message}", code.as_str())]
pub struct ApiError {
    /// The spec's code.
    pub code: Code,
    /// The HTTP status (the code's usual one unless the spec says otherwise).
    pub status: StatusCode,
    /// What happened, for people.
    pub message: String,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            status: code.default_status(),
            message: message.into(),
        }
    }

    /// The same error with another status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// A server-side failure (disk, I/O).
    pub fn internal(context: &str, e: impl std::fmt::Display) -> ApiError {
        tracing::error!("{context}: {e}");
        ApiError {
            code: Code::Unsupported,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{context}: internal storage error"),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal("storage", e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code.as_str(), "message": self.message}]});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.code == Code::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wharf\""),
            );
        }
        response
    }
}

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;
