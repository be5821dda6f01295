//! An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, moto), reached with presigned requests:
//! rusty-s3 signs each one, reqwest sends it, bodies stream both ways. It is where `wharf serve` keeps
//! a registry on object storage: objects under a key prefix, written whole, read whole or by range,
//! listed by prefix, large ones in multipart uploads, and `If-None-Match: *` for writes that must not
//! replace what another instance wrote.
//!
//! Settings come from the standard variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`, else the profile `AWS_PROFILE` (default `default`) of
//! `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`); `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`, default `us-east-1`); `AWS_ENDPOINT_URL` for stores other than AWS, which
//! are then addressed path-style, over plain HTTP only when the endpoint says `http://`.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use instant_xml::FromXml;
use reqwest::StatusCode;
use rusty_s3::actions::{
    CompleteMultipartUpload, CreateMultipartUpload, ListObjectsV2, ListParts, S3Action, UploadPart,
};
use rusty_s3::{Credentials, UrlStyle};
use url::Url;
use wharf_oci::Digest;

use crate::storage::{ObjectStore, ObjectStream};

/// Parts of multipart uploads: at least S3's minimum of 5 MiB.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// The most one CopyObject or UploadPartCopy copies.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// The least a part of a multipart upload holds, but the last.
const MIN_PART: u64 = 5 * 1024 * 1024;

/// The most parts a multipart upload has.
const MAX_PARTS: usize = 10_000;

/// What `x-amz-copy-source` escapes of a key: everything but unreserved characters and `/`.
const COPY_SOURCE_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// How long a signature is valid for a request sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// Why the bucket cannot be used, or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The storage URL or the settings are unusable.
    #[error("{0}")]
    Settings(String),
    /// The store answered with an error.
    #[error("{operation} {key}: {status} {code}{message}")]
    Answer {
        /// What was asked (`put`, `get`, …).
        operation: &'static str,
        /// The object, or the bucket.
        key: String,
        /// The HTTP status.
        status: u16,
        /// The S3 error code (`NoSuchBucket`, `AccessDenied`, …).
        code: String,
        /// The store's message, after `: `, if any.
        message: String,
    },
    /// The store could not be reached, or the answer could not be read.
    #[error("{operation} {key}: {error}")]
    Network {
        /// What was asked.
        operation: &'static str,
        /// The object, or the bucket.
        key: String,
        /// What went wrong.
        error: String,
    },
}

/// An object found by [`Bucket::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The key, without the bucket's prefix.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, as the store says it (RFC 3339).
    pub modified: String,
}

/// A page of `ListMultipartUploads`.
#[derive(FromXml)]
#[xml(rename = "ListMultipartUploadsResult", ns(S3_XML_NS))]
struct UnfinishedUploads {
    uploads: Vec<UnfinishedUpload>,
    #[xml(rename = "IsTruncated")]
    truncated: Option<bool>,
    #[xml(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[xml(rename = "NextUploadIdMarker")]
    next_upload_marker: Option<String>,
}

/// A multipart upload begun and neither completed nor aborted.
#[derive(FromXml)]
#[xml(rename = "Upload", ns(S3_XML_NS))]
struct UnfinishedUpload {
    #[xml(rename = "Key")]
    key: String,
    #[xml(rename = "UploadId")]
    upload_id: String,
    #[xml(rename = "Initiated")]
    initiated: String,
}

/// The part copies (key, start, end) that join `parts` (keys and sizes) in order: ranges of at
/// most 5 GiB, each but the last at least 5 MiB, at most 10,000; `None` when S3 cannot join them.
fn copy_plan(parts: &[(String, u64)]) -> Option<Vec<(&str, u64, u64)>> {
    let mut ranges = Vec::new();
    for (key, size) in parts {
        let mut start = 0;
        while start < *size {
            let end = (start + COPY_LIMIT).min(*size);
            ranges.push((key.as_str(), start, end));
            start = end;
        }
    }
    let joinable = !ranges.is_empty()
        && ranges.len() <= MAX_PARTS
        && ranges
            .iter()
            .rev()
            .skip(1)
            .all(|(_, start, end)| end - start >= MIN_PART);
    joinable.then_some(ranges)
}

/// The answer to UploadPartCopy.
#[derive(FromXml)]
#[xml(rename = "CopyPartResult", ns(S3_XML_NS))]
struct CopyPartResult {
    #[xml(rename = "ETag")]
    etag: String,
}

/// The body of an answer that is an error unless it says otherwise: S3 may answer a copy or the
/// completion of a multipart upload with 200 and an error document when it failed late.
async fn checked_answer(
    operation: &'static str,
    key: &str,
    response: reqwest::Response,
) -> Result<String, S3Error> {
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| network(operation, key, &e))?;
    if status.is_success() && !text.contains("<Error>") {
        Ok(text)
    } else {
        Err(error_document(operation, key, status, &text))
    }
}

/// The namespace of S3's XML documents.
const S3_XML_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// A bucket, and the key prefix everything lives under.
#[derive(Debug, Clone)]
pub struct Bucket {
    bucket: rusty_s3::Bucket,
    credentials: Option<Credentials>,
    prefix: String,
    client: reqwest::Client,
}

impl Bucket {
    /// The bucket `s3://BUCKET[/PREFIX]` names, with settings read through `env` (the process
    /// environment in production).
    pub fn open(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Bucket, S3Error> {
        let settings = |message: String| S3Error::Settings(format!("storage {url:?}: {message}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| settings("expected s3://BUCKET[/PREFIX]".into()))?;
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() {
            return Err(settings("no bucket named".into()));
        }
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let (endpoint, style) = match env("AWS_ENDPOINT_URL") {
            Some(endpoint) => (endpoint, UrlStyle::Path),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                UrlStyle::VirtualHost,
            ),
        };
        let endpoint = Url::parse(&endpoint)
            .map_err(|e| settings(format!("AWS_ENDPOINT_URL {endpoint:?}: {e}")))?;
        let bucket = rusty_s3::Bucket::new(endpoint, style, name.to_owned(), region)
            .map_err(|e| settings(e.to_string()))?;
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => Some(match env("AWS_SESSION_TOKEN") {
                Some(token) => Credentials::new_with_token(key, secret, token),
                None => Credentials::new(key, secret),
            }),
            _ => profile_credentials(&env).map_err(settings)?,
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| settings(e.to_string()))?;
        Ok(Bucket {
            bucket,
            credentials,
            prefix: prefix.trim_matches('/').to_owned(),
            client,
        })
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        self.bucket.name()
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// A key as listed, without the bucket's prefix.
    fn unprefixed(&self, key: &str) -> String {
        let skip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        key[skip.min(key.len())..].to_owned()
    }

    /// Checks that the bucket exists and the credentials may read it; the error names which.
    pub async fn check(&self) -> Result<(), S3Error> {
        let url = self
            .bucket
            .head_bucket(self.credentials.as_ref())
            .sign(SIGNED_FOR);
        let response = self
            .send("check", self.name(), self.client.head(url))
            .await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(S3Error::Settings(format!(
                "bucket {} does not exist at {}",
                self.name(),
                self.bucket.base_url()
            ))),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Err(S3Error::Settings(format!(
                "bucket {}: the credentials were refused (AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
                self.name()
            ))),
            _ => Err(answer("check", self.name(), response).await),
        }
    }

    /// Writes an object whole. With `if_absent`, an object already there is left alone and the
    /// answer is false (the store's `If-None-Match: *`).
    pub async fn put(&self, key: &str, body: Bytes, if_absent: bool) -> Result<bool, S3Error> {
        let full = self.key(key);
        let url = self
            .bucket
            .put_object(self.credentials.as_ref(), &full)
            .sign(SIGNED_FOR);
        let mut request = self.client.put(url).body(body);
        if if_absent {
            request = request.header("if-none-match", "*");
        }
        let response = self.send("put", key, request).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT if if_absent => Ok(false),
            _ => Err(answer("put", key, response).await),
        }
    }

    /// Reads an object, or the bytes `range` of it (`start..end`, end exclusive; `None` for the
    /// rest); `None` when there is no such object.
    pub async fn get(
        &self,
        key: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Option<reqwest::Response>, S3Error> {
        let full = self.key(key);
        let url = self
            .bucket
            .get_object(self.credentials.as_ref(), &full)
            .sign(SIGNED_FOR);
        let mut request = self.client.get(url);
        if let Some((start, end)) = range {
            let end = end.map(|e| (e - 1).to_string()).unwrap_or_default();
            request = request.header("range", format!("bytes={start}-{end}"));
        }
        let response = self.send("get", key, request).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response)),
            _ => Err(answer("get", key, response).await),
        }
    }

    /// Reads a small object whole; `None` when there is no such object.
    pub async fn read(&self, key: &str) -> Result<Option<Bytes>, S3Error> {
        let Some(response) = self.get(key, None).await? else {
            return Ok(None);
        };
        response
            .bytes()
            .await
            .map(Some)
            .map_err(|e| network("get", key, &e))
    }

    /// The headers of an object; `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<reqwest::header::HeaderMap>, S3Error> {
        let full = self.key(key);
        let url = self
            .bucket
            .head_object(self.credentials.as_ref(), &full)
            .sign(SIGNED_FOR);
        let response = self.send("check", key, self.client.head(url)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response.headers().clone())),
            _ => Err(answer("check", key, response).await),
        }
    }

    /// The size of an object; `None` when there is no such object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, S3Error> {
        // A HEAD answer's body is empty: the size is in its header.
        Ok(self.head(key).await?.map(|headers| {
            headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// Removes an object (nothing happens when there is none).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let full = self.key(key);
        let url = self
            .bucket
            .delete_object(self.credentials.as_ref(), &full)
            .sign(SIGNED_FOR);
        let response = self.send("delete", key, self.client.delete(url)).await?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(answer("delete", key, response).await)
        }
    }

    /// Every object whose key starts with `prefix`, in key order, all pages.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        Ok(self.list_pages(prefix, false).await?.0)
    }

    /// The objects and the deeper prefixes one level below `prefix/`, by name.
    pub async fn list_level(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let below = format!("{}/", prefix.trim_end_matches('/'));
        let (objects, prefixes) = self.list_pages(&below, true).await?;
        let name = |key: &str| {
            key[below.len().min(key.len())..]
                .trim_end_matches('/')
                .to_owned()
        };
        Ok(objects
            .iter()
            .map(|o| name(&o.key))
            .chain(prefixes.iter().map(|p| name(p)))
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// The objects below `prefix` and, with `by_level`, the prefixes one `/` deeper (without the
    /// bucket's own prefix).
    async fn list_pages(
        &self,
        prefix: &str,
        by_level: bool,
    ) -> Result<(Vec<Listed>, Vec<String>), S3Error> {
        let full = self.key(prefix);
        let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.bucket, self.credentials.as_ref());
            action.with_prefix(full.as_str());
            if by_level {
                action.with_delimiter("/");
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(SIGNED_FOR);
            let response = self.send("list", prefix, self.client.get(url)).await?;
            if !response.status().is_success() {
                return Err(answer("list", prefix, response).await);
            }
            let text = response
                .text()
                .await
                .map_err(|e| network("list", prefix, &e))?;
            let page = ListObjectsV2::parse_response(&text).map_err(|e| S3Error::Network {
                operation: "list",
                key: prefix.to_owned(),
                error: format!("unreadable listing: {e}"),
            })?;
            objects.extend(page.contents.into_iter().map(|c| Listed {
                key: self.unprefixed(&c.key),
                size: c.size.unwrap_or(0),
                modified: c.last_modified.unwrap_or_default(),
            }));
            prefixes.extend(
                page.common_prefixes
                    .into_iter()
                    .map(|p| self.unprefixed(&p.prefix)),
            );
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => return Ok((objects, prefixes)),
            }
        }
    }

    /// Starts a multipart upload of `key`; returns its id.
    pub async fn start_multipart(&self, key: &str) -> Result<String, S3Error> {
        let full = self.key(key);
        let url = CreateMultipartUpload::new(&self.bucket, self.credentials.as_ref(), &full)
            .sign(SIGNED_FOR);
        let response = self
            .send("start upload of", key, self.client.post(url))
            .await?;
        if !response.status().is_success() {
            return Err(answer("start upload of", key, response).await);
        }
        let text = response
            .text()
            .await
            .map_err(|e| network("start upload of", key, &e))?;
        CreateMultipartUpload::parse_response(&text)
            .map(|r| r.upload_id().to_owned())
            .map_err(|e| S3Error::Network {
                operation: "start upload of",
                key: key.to_owned(),
                error: format!("unreadable answer: {e}"),
            })
    }

    /// Uploads part `number` (from 1) of a multipart upload; returns its ETag.
    pub async fn put_part(
        &self,
        key: &str,
        upload: &str,
        number: u16,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let full = self.key(key);
        let url = UploadPart::new(
            &self.bucket,
            self.credentials.as_ref(),
            &full,
            number,
            upload,
        )
        .sign(SIGNED_FOR);
        let response = self
            .send("upload part of", key, self.client.put(url).body(body))
            .await?;
        if !response.status().is_success() {
            return Err(answer("upload part of", key, response).await);
        }
        response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| S3Error::Network {
                operation: "upload part of",
                key: key.to_owned(),
                error: "the answer has no ETag".into(),
            })
    }

    /// Completes a multipart upload from its parts' ETags, in order: the object appears whole.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        let full = self.key(key);
        let action = CompleteMultipartUpload::new(
            &self.bucket,
            self.credentials.as_ref(),
            &full,
            upload,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let body = CompleteMultipartUpload::new(
            &self.bucket,
            self.credentials.as_ref(),
            &full,
            upload,
            etags.iter().map(String::as_str),
        )
        .body();
        let response = self
            .send("complete upload of", key, self.client.post(url).body(body))
            .await?;
        checked_answer("complete upload of", key, response)
            .await
            .map(drop)
    }

    /// Gives up a multipart upload: its parts are removed and nothing appears.
    pub async fn abort_multipart(&self, key: &str, upload: &str) -> Result<(), S3Error> {
        let full = self.key(key);
        let url = self
            .bucket
            .abort_multipart_upload(self.credentials.as_ref(), &full, upload)
            .sign(SIGNED_FOR);
        let response = self
            .send("abort upload of", key, self.client.delete(url))
            .await?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(answer("abort upload of", key, response).await)
        }
    }

    /// `url` with `query` (sorted by name) signed for `method`, with `headers` (sorted, lowercase)
    /// among what is signed: for requests rusty-s3 has no action for.
    fn signed(
        &self,
        method: rusty_s3::Method,
        mut url: Url,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Url {
        match &self.credentials {
            Some(credentials) => rusty_s3::signing::sign(
                &jiff::Timestamp::now(),
                method,
                url,
                credentials.key(),
                credentials.secret(),
                credentials.token(),
                self.bucket.region(),
                SIGNED_FOR.as_secs(),
                query.iter().copied(),
                headers.iter().copied(),
            ),
            None => {
                url.query_pairs_mut().extend_pairs(query);
                url
            }
        }
    }

    /// Makes `to` the objects `parts` (keys and sizes) joined in order, inside the store: one
    /// CopyObject for a lone part within S3's 5 GiB, else a multipart upload of part copies. False,
    /// with nothing written, where the store cannot do it (a part but the last under 5 MiB, or a
    /// store refusing server-side copies); the caller then streams the bytes.
    pub async fn join(&self, parts: &[(String, u64)], to: &str) -> bool {
        let Some(ranges) = copy_plan(parts) else {
            return false;
        };
        let copied = match parts {
            [(key, size)] if *size <= COPY_LIMIT => self.copy_object(key, to).await,
            _ => self.copy_parts(&ranges, to).await,
        };
        copied
            .inspect_err(|e| tracing::warn!("{e}; the bytes are read and written instead"))
            .is_ok()
    }

    /// Copies `ranges` of objects into `to` as the parts of one multipart upload, completed only
    /// when every part is there (aborted otherwise).
    async fn copy_parts(&self, ranges: &[(&str, u64, u64)], to: &str) -> Result<(), S3Error> {
        let upload = self.start_multipart(to).await?;
        let copied = async {
            let mut etags = Vec::new();
            for (number, (key, start, end)) in ranges.iter().enumerate() {
                let number = u16::try_from(number + 1).expect("at most MAX_PARTS parts");
                etags.push(
                    self.copy_part(key, (*start, *end), to, &upload, number)
                        .await?,
                );
            }
            self.complete_multipart(to, &upload, &etags).await
        }
        .await;
        if copied.is_err()
            && let Err(e) = self.abort_multipart(to, &upload).await
        {
            tracing::warn!("{e}");
        }
        copied
    }

    /// The `x-amz-copy-source` of `key`: bucket and key, percent-encoded.
    fn copy_source(&self, key: &str) -> String {
        let full = self.key(key);
        let encoded = percent_encoding::utf8_percent_encode(&full, COPY_SOURCE_ESCAPES);
        format!("/{}/{encoded}", self.name())
    }

    /// Copies the object `from` to `to` inside the store (CopyObject).
    async fn copy_object(&self, from: &str, to: &str) -> Result<(), S3Error> {
        let source = self.copy_source(from);
        let url = self.signed(
            rusty_s3::Method::Put,
            self.bucket.object_url(&self.key(to)),
            &[],
            &[("x-amz-copy-source", &source)],
        );
        let request = self.client.put(url).header("x-amz-copy-source", &source);
        let response = self.send("copy into", to, request).await?;
        checked_answer("copy into", to, response).await.map(drop)
    }

    /// Copies the bytes `range` (`start..end`) of `from` as part `number` of the multipart upload
    /// `upload` of `to` (UploadPartCopy); returns its ETag.
    async fn copy_part(
        &self,
        from: &str,
        (start, end): (u64, u64),
        to: &str,
        upload: &str,
        number: u16,
    ) -> Result<String, S3Error> {
        let source = self.copy_source(from);
        let range = format!("bytes={start}-{}", end - 1);
        let number = number.to_string();
        let url = self.signed(
            rusty_s3::Method::Put,
            self.bucket.object_url(&self.key(to)),
            &[("partNumber", &number), ("uploadId", upload)],
            &[
                ("x-amz-copy-source", &source),
                ("x-amz-copy-source-range", &range),
            ],
        );
        let request = self
            .client
            .put(url)
            .header("x-amz-copy-source", &source)
            .header("x-amz-copy-source-range", &range);
        let response = self.send("copy part into", to, request).await?;
        let text = checked_answer("copy part into", to, response).await?;
        let result: CopyPartResult =
            instant_xml::from_str(&text).map_err(|e| S3Error::Network {
                operation: "copy part into",
                key: to.to_owned(),
                error: format!("unreadable answer: {e}"),
            })?;
        Ok(result.etag)
    }

    /// Aborts the multipart uploads of wharf's objects (under `blobs/` and `uploads/` below the
    /// prefix) that have not moved since before `cutoff` and were never completed: those of an
    /// instance killed while it wrote a large object, whose parts S3 keeps (and charges for) until
    /// someone aborts them. An upload is judged by its newest part, so a long upload still moving
    /// stays. Returns how many went.
    pub async fn abort_unfinished(&self, cutoff: SystemTime) -> Result<usize, S3Error> {
        let mut aborted = 0;
        for area in ["blobs/", "uploads/"] {
            for upload in self.unfinished(area).await? {
                let Ok(begun) = upload.initiated.parse::<jiff::Timestamp>() else {
                    tracing::warn!(key = %upload.key, "an unfinished upload with an unreadable start ({}) is left alone", upload.initiated);
                    continue;
                };
                let key = self.unprefixed(&upload.key);
                if SystemTime::from(begun) >= cutoff
                    || self.last_part(&key, &upload.upload_id).await? >= Some(cutoff)
                {
                    continue;
                }
                self.abort_multipart(&key, &upload.upload_id).await?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    /// The multipart uploads begun below `area` (within the prefix) and neither completed nor
    /// aborted (ListMultipartUploads, which rusty-s3 has no action for).
    async fn unfinished(&self, area: &str) -> Result<Vec<UnfinishedUpload>, S3Error> {
        const LISTING: &str = "list unfinished uploads in";
        let prefix = self.key(area);
        let (mut key_marker, mut upload_marker) = (String::new(), String::new());
        let mut uploads = Vec::new();
        loop {
            // Sorted by name, as the signature requires.
            let query = [
                ("key-marker", key_marker.as_str()),
                ("prefix", prefix.as_str()),
                ("upload-id-marker", upload_marker.as_str()),
                ("uploads", "1"),
            ];
            let url = self.signed(
                rusty_s3::Method::Get,
                self.bucket.base_url().clone(),
                &query,
                &[],
            );
            let response = self.send(LISTING, area, self.client.get(url)).await?;
            if !response.status().is_success() {
                return Err(answer(LISTING, area, response).await);
            }
            let text = response
                .text()
                .await
                .map_err(|e| network(LISTING, area, &e))?;
            let page: UnfinishedUploads =
                instant_xml::from_str(&text).map_err(|e| S3Error::Network {
                    operation: LISTING,
                    key: area.to_owned(),
                    error: format!("unreadable listing: {e}"),
                })?;
            uploads.extend(page.uploads);
            match (
                page.truncated,
                page.next_key_marker,
                page.next_upload_marker,
            ) {
                (Some(true), Some(key), Some(upload)) => {
                    (key_marker, upload_marker) = (key, upload);
                }
                _ => return Ok(uploads),
            }
        }
    }

    /// When the newest part of a multipart upload arrived; `None` when it has none (or the store
    /// does not say).
    async fn last_part(&self, key: &str, upload: &str) -> Result<Option<SystemTime>, S3Error> {
        const LISTING: &str = "list parts of";
        let full = self.key(key);
        let mut newest = None;
        let mut marker = None;
        loop {
            let mut action = ListParts::new(&self.bucket, self.credentials.as_ref(), &full, upload);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let response = self
                .send(LISTING, key, self.client.get(action.sign(SIGNED_FOR)))
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(newest);
            }
            if !response.status().is_success() {
                return Err(answer(LISTING, key, response).await);
            }
            let text = response
                .text()
                .await
                .map_err(|e| network(LISTING, key, &e))?;
            // moto names the document ListPartsResponse; S3, MinIO and Ceph ListPartsResult.
            let text = text
                .replace("<ListPartsResponse", "<ListPartsResult")
                .replace("</ListPartsResponse>", "</ListPartsResult>");
            let page = ListParts::parse_response(&text).map_err(|e| S3Error::Network {
                operation: LISTING,
                key: key.to_owned(),
                error: format!("unreadable listing: {e}"),
            })?;
            let times = page
                .parts
                .iter()
                .filter_map(|part| part.last_modified.parse::<jiff::Timestamp>().ok())
                .map(SystemTime::from);
            newest = newest.into_iter().chain(times).max();
            match page.next_part_number_marker {
                Some(next) => marker = Some(next),
                None => return Ok(newest),
            }
        }
    }

    /// When an object was last written; `None` when there is none.
    pub async fn modified(&self, key: &str) -> Result<Option<SystemTime>, S3Error> {
        Ok(self.head(key).await?.map(|headers| {
            headers
                .get("last-modified")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| jiff::fmt::rfc2822::parse(v).ok())
                .map(|t| SystemTime::from(t.timestamp()))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }))
    }

    /// Writes `body` to `key`, with `expected` only if its bytes have that digest, hashing as
    /// they stream: up to one part in memory, larger bodies as a multipart upload completed only
    /// once the body is whole (and the digest matches; aborted otherwise), so a partial or wrong
    /// body never appears. Returns the size written, or `None` when the digest did not match.
    pub async fn put_stream(
        &self,
        key: &str,
        mut body: ObjectStream,
        expected: Option<&Digest>,
    ) -> Result<Option<u64>, S3Error> {
        let mut digester = expected.map(|e| e.algorithm().digester());
        let mut buffer = BytesMut::new();
        let mut upload: Option<(String, Vec<String>)> = None;
        let mut size = 0u64;
        let outcome: Result<Option<u64>, S3Error> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| S3Error::Network {
                    operation: "put",
                    key: key.to_owned(),
                    error: e.to_string(),
                })?;
                if let Some(digester) = digester.as_mut() {
                    digester.update(&chunk);
                }
                size += chunk.len() as u64;
                buffer.extend_from_slice(&chunk);
                if buffer.len() >= PART_SIZE {
                    let (id, etags) = match &mut upload {
                        Some(upload) => upload,
                        None => upload.insert((self.start_multipart(key).await?, Vec::new())),
                    };
                    let part = buffer.split().freeze();
                    let number = etags.len() as u16 + 1;
                    etags.push(self.put_part(key, id, number, part).await?);
                }
            }
            if let (Some(digester), Some(expected)) = (digester, expected)
                && digester.finish() != *expected
            {
                return Ok(None);
            }
            match &mut upload {
                None => {
                    self.put(key, buffer.split().freeze(), false).await?;
                }
                Some((id, etags)) => {
                    if !buffer.is_empty() {
                        let number = etags.len() as u16 + 1;
                        etags.push(
                            self.put_part(key, id, number, buffer.split().freeze())
                                .await?,
                        );
                    }
                    self.complete_multipart(key, id, etags).await?;
                    upload = None;
                }
            }
            Ok(Some(size))
        }
        .await;
        if let Some((id, _)) = &upload {
            // Nothing appears of a body that failed or did not match.
            if let Err(e) = self.abort_multipart(key, id).await {
                tracing::warn!("{e}");
            }
        }
        outcome
    }

    /// A URL from which anyone may GET `key` for `valid_for` (for redirects).
    pub fn presigned_get(&self, key: &str, valid_for: Duration) -> Url {
        self.bucket
            .get_object(self.credentials.as_ref(), &self.key(key))
            .sign(valid_for)
    }

    async fn send(
        &self,
        operation: &'static str,
        key: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, S3Error> {
        request
            .send()
            .await
            .map_err(|e| network(operation, key, &e))
    }
}

impl From<S3Error> for io::Error {
    fn from(error: S3Error) -> io::Error {
        io::Error::other(error)
    }
}

#[async_trait]
impl ObjectStore for Bucket {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.name())
        } else {
            format!("s3://{}/{}", self.name(), self.prefix)
        }
    }

    async fn available(&self) -> bool {
        self.check().await.is_ok()
    }

    async fn size(&self, key: &str) -> io::Result<Option<u64>> {
        Ok(Bucket::size(self, key).await?)
    }

    async fn modified(&self, key: &str) -> io::Result<Option<SystemTime>> {
        Ok(Bucket::modified(self, key).await?)
    }

    async fn read(&self, key: &str) -> io::Result<Option<Bytes>> {
        Ok(Bucket::read(self, key).await?)
    }

    async fn read_range(&self, key: &str, start: u64, length: u64) -> io::Result<ObjectStream> {
        let response = self
            .get(key, Some((start, Some(start + length))))
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{key} is gone")))?;
        Ok(response.bytes_stream().map_err(io::Error::other).boxed())
    }

    async fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.put(key, Bytes::copy_from_slice(bytes), false).await?;
        Ok(())
    }

    async fn write_verified(
        &self,
        key: &str,
        body: ObjectStream,
        expected: &Digest,
    ) -> io::Result<Option<u64>> {
        Ok(self.put_stream(key, body, Some(expected)).await?)
    }

    async fn write_stream(&self, key: &str, body: ObjectStream) -> io::Result<u64> {
        Ok(self.put_stream(key, body, None).await?.unwrap_or(0))
    }

    async fn remove(&self, key: &str) -> io::Result<()> {
        Ok(self.delete(key).await?)
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        Ok(self.list_level(prefix).await?)
    }

    async fn remove_unfinished(&self, cutoff: SystemTime) -> io::Result<usize> {
        Ok(self.abort_unfinished(cutoff).await?)
    }

    async fn join(&self, parts: &[String], to: &str) -> io::Result<bool> {
        let mut sized = Vec::with_capacity(parts.len());
        for key in parts {
            let Some(size) = self.size(key).await? else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{key} is gone"),
                ));
            };
            sized.push((key.clone(), size));
        }
        Ok(Bucket::join(self, &sized, to).await)
    }

    fn presigned_get(&self, key: &str, valid_for: Duration) -> Option<Url> {
        Some(Bucket::presigned_get(self, key, valid_for))
    }
}

/// Credentials of profile `AWS_PROFILE` in the shared credentials file, if there are any.
fn profile_credentials(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, String> {
    let file = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(file) => PathBuf::from(file),
        None => match env("HOME") {
            Some(home) => PathBuf::from(home).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(None);
    };
    let wanted = env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
    let mut section = String::new();
    let (mut key, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if section != wanted {
            continue;
        }
        let value = Some(value.trim().to_owned());
        match name.trim() {
            "aws_access_key_id" => key = value,
            "aws_secret_access_key" => secret = value,
            "aws_session_token" => token = value,
            _ => {}
        }
    }
    match (key, secret) {
        (Some(key), Some(secret)) => Ok(Some(match token {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        })),
        (None, None) if env("AWS_PROFILE").is_none() => Ok(None),
        _ => Err(format!(
            "profile {wanted:?} in {} has no aws_access_key_id and aws_secret_access_key",
            file.display()
        )),
    }
}

fn network(operation: &'static str, key: &str, error: &reqwest::Error) -> S3Error {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text = e.to_string();
        source = e.source();
    }
    S3Error::Network {
        operation,
        key: key.to_owned(),
        error: text,
    }
}

async fn answer(operation: &'static str, key: &str, response: reqwest::Response) -> S3Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    error_document(operation, key, status, &text)
}

/// An S3 error document (`<Error><Code>…</Code><Message>…</Message></Error>`), read loosely.
fn error_document(operation: &'static str, key: &str, status: StatusCode, text: &str) -> S3Error {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_owned())
    };
    S3Error::Answer {
        operation,
        key: key.to_owned(),
        status: status.as_u16(),
        code: field("Code").unwrap_or_else(|| status.to_string()),
        message: field("Message")
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn joins_parts_in_copies_s3_accepts() {
        const MIB: u64 = 1024 * 1024;
        let parts = |sizes: &[u64]| -> Vec<(String, u64)> {
            sizes
                .iter()
                .enumerate()
                .map(|(n, size)| (format!("c{n}"), *size))
                .collect()
        };
        let whole = parts(&[6 * MIB, 5 * MIB, 1]);
        assert_eq!(
            copy_plan(&whole).unwrap(),
            [("c0", 0, 6 * MIB), ("c1", 0, 5 * MIB), ("c2", 0, 1)]
        );
        let huge = parts(&[12 * 1024 * MIB]);
        assert_eq!(
            copy_plan(&huge).unwrap(),
            [
                ("c0", 0, COPY_LIMIT),
                ("c0", COPY_LIMIT, 2 * COPY_LIMIT),
                ("c0", 2 * COPY_LIMIT, 12 * 1024 * MIB)
            ]
        );
        assert_eq!(
            copy_plan(&parts(&[MIB, 6 * MIB])),
            None,
            "a small part first"
        );
        assert_eq!(copy_plan(&parts(&[5 * MIB + 1, 1])).unwrap().len(), 2);
        assert_eq!(copy_plan(&parts(&[])), None);
        assert_eq!(
            copy_plan(&parts(&[6 * MIB; 10_001])),
            None,
            "too many parts"
        );
    }

    #[test]
    fn reads_the_url_and_the_standard_variables() {
        let vars = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        let bucket = Bucket::open("s3://images/site/a/", &env(&vars)).unwrap();
        assert_eq!(bucket.name(), "images");
        assert_eq!(bucket.key("blobs/x"), "site/a/blobs/x");
        assert_eq!(
            bucket.bucket.base_url().as_str(),
            "http://127.0.0.1:9000/images/",
            "path style with an endpoint"
        );
        let aws = Bucket::open("s3://images", &env(&[("AWS_REGION", "eu-west-1")])).unwrap();
        assert_eq!(
            aws.bucket.base_url().as_str(),
            "https://images.s3.eu-west-1.amazonaws.com/"
        );
        for (bad, why) in [
            ("gs://images", "expected s3://BUCKET"),
            ("s3:///x", "no bucket named"),
        ] {
            let error = Bucket::open(bad, &env(&[])).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn reads_a_profile_of_the_shared_credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = a\naws_secret_access_key = b\n\n[ci]\naws_access_key_id=c\naws_secret_access_key=d\naws_session_token=t\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let vars = [("AWS_SHARED_CREDENTIALS_FILE", path), ("AWS_PROFILE", "ci")];
        let credentials = profile_credentials(&env(&vars)).unwrap().unwrap();
        assert_eq!((credentials.key(), credentials.token()), ("c", Some("t")));
        let vars = [
            ("AWS_SHARED_CREDENTIALS_FILE", path),
            ("AWS_PROFILE", "none"),
        ];
        let error = profile_credentials(&env(&vars)).unwrap_err();
        assert!(error.contains("profile \"none\""), "{error}");
    }
}
