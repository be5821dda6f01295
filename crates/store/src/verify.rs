//! Checking bytes against their descriptor while they stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use wharf_oci::{Descriptor, Digester};

use crate::ByteStream;
use crate::error::{ErrorKind, Op, StoreError};

/// Wraps `body` so it ends with an error instead of `None` when the bytes do not match `expected`:
/// as soon as more than `size` bytes arrive, or at the end when the size or digest differ.
///
/// The last chunk is held back until the digest is known, so a consumer never sees all of the content
/// when it is wrong: an upload whose length is announced cannot complete with bad bytes, and a consumer
/// that commits only after the stream ends cleanly never commits them.
pub fn verified(
    expected: &Descriptor,
    op: Op,
    target: impl Into<String>,
    body: ByteStream,
) -> ByteStream {
    Box::pin(Verified {
        inner: body,
        op,
        held: None,
        digester: Some(Digester::new(expected.digest.algorithm())),
        expected: expected.clone(),
        target: target.into(),
    })
}

struct Verified {
    inner: ByteStream,
    /// The operation named in errors: a fetch that checks what it reads, a push what it receives.
    op: Op,
    /// The chunk most recently read, passed on once the next one (or a verified end) arrives.
    held: Option<Bytes>,
    /// `None` once the stream has finished or failed.
    digester: Option<Digester>,
    expected: Descriptor,
    target: String,
}

impl Verified {
    fn fail(&mut self, kind: ErrorKind) -> Poll<Option<Result<Bytes, StoreError>>> {
        self.digester = None;
        Poll::Ready(Some(Err(StoreError::new(
            self.op,
            std::mem::take(&mut self.target),
            kind,
        ))))
    }
}

impl Stream for Verified {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(digester) = this.digester.as_mut() else {
                // Finished: after a verified end, the held-back chunk goes out last.
                return Poll::Ready(this.held.take().map(Ok));
            };
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    digester.update(&chunk);
                    if digester.bytes() > this.expected.size {
                        let actual = digester.bytes();
                        this.held = None;
                        return this.fail(ErrorKind::SizeMismatch {
                            expected: this.expected.size,
                            actual,
                            truncated: true,
                        });
                    }
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.digester = None;
                    this.held = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let digester = this.digester.take().expect("checked above");
                    let kind = if digester.bytes() != this.expected.size {
                        Some(ErrorKind::SizeMismatch {
                            expected: this.expected.size,
                            actual: digester.bytes(),
                            truncated: false,
                        })
                    } else {
                        let actual = digester.finish();
                        (actual != this.expected.digest).then(|| ErrorKind::DigestMismatch {
                            expected: this.expected.digest.clone(),
                            actual,
                        })
                    };
                    if let Some(kind) = kind {
                        this.held = None;
                        return this.fail(kind);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{StreamExt, stream};
    use wharf_oci::media_type;

    use super::*;

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        Box::pin(stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        ))
    }

    async fn drain(s: ByteStream) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn passes_matching_bytes() {
        let d = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"hello world");
        let out = drain(verified(&d, Op::Fetch, "t", body(&[b"hello ", b"world"])))
            .await
            .unwrap();
        assert_eq!(out, b"hello world");
    }

    #[tokio::test]
    async fn holds_back_the_last_chunk_of_wrong_content() {
        let d = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"hello world");
        let mut s = verified(&d, Op::Fetch, "t", body(&[b"hello", b" worle"]));
        assert_eq!(s.next().await.unwrap().unwrap(), "hello");
        assert!(
            s.next().await.unwrap().is_err(),
            "the wrong last chunk never goes out"
        );
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn fails_on_wrong_digest_size_or_overflow() {
        let d = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"hello world");
        let err = drain(verified(&d, Op::Fetch, "t", body(&[b"hello", b" worle"])))
            .await
            .unwrap_err();
        assert!(
            matches!(*err.kind, ErrorKind::DigestMismatch { .. }),
            "{err:?}"
        );
        let err = drain(verified(&d, Op::Fetch, "t", body(&[b"hello"])))
            .await
            .unwrap_err();
        assert!(matches!(
            *err.kind,
            ErrorKind::SizeMismatch {
                actual: 5,
                truncated: false,
                ..
            }
        ));
        let err = drain(verified(
            &d,
            Op::Fetch,
            "t",
            body(&[b"hello world", b"!", b"never read"]),
        ))
        .await
        .unwrap_err();
        assert!(matches!(
            *err.kind,
            ErrorKind::SizeMismatch {
                actual: 12,
                truncated: true,
                ..
            }
        ));
    }
}
