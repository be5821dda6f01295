//! A store in memory, for tests and for content wharf assembles before pushing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use wharf_oci::{Descriptor, Digest};

use crate::{
    ByteStream, ErrorKind, ManifestRole, Namespace, Op, ReadStore, Result, Store, StoreError,
    check_bytes, referrers_among, verified,
};

/// Content and tags held in memory.
pub struct MemoryStore {
    /// `memory:N`: each store is a place of its own.
    name: String,
    state: RwLock<State>,
}

/// Numbers the stores of a process.
static STORES: AtomicUsize = AtomicUsize::new(0);

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            name: format!("memory:{}", STORES.fetch_add(1, Ordering::Relaxed)),
            state: RwLock::default(),
        }
    }
}

#[derive(Default)]
struct State {
    content: HashMap<Digest, Bytes>,
    descriptors: HashMap<Digest, Descriptor>,
    /// Tags in the order they were first set.
    tags: Vec<(String, Descriptor)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, descriptor: &Descriptor, bytes: Bytes) {
        let mut state = self.write();
        state.content.insert(descriptor.digest.clone(), bytes);
        state
            .descriptors
            .insert(descriptor.digest.clone(), descriptor.clone());
    }

    fn not_found(&self, op: Op, what: &str) -> StoreError {
        StoreError::new(
            op,
            format!("{} {what}", self.location()),
            ErrorKind::NotFound(None),
        )
    }
}

#[async_trait]
impl ReadStore for MemoryStore {
    fn location(&self) -> String {
        self.name.clone()
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let state = self.read();
        if let Ok(digest) = Digest::parse(reference) {
            return state
                .descriptors
                .get(&digest)
                .filter(|d| d.is_manifest())
                .cloned()
                .ok_or_else(|| self.not_found(Op::Resolve, reference));
        }
        state
            .tags
            .iter()
            .find(|(tag, _)| tag == reference)
            .map(|(_, d)| d.clone())
            .ok_or_else(|| self.not_found(Op::Resolve, reference))
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let bytes = self
            .read()
            .content
            .get(&descriptor.digest)
            .cloned()
            .ok_or_else(|| self.not_found(Op::Fetch, descriptor.digest.as_str()))?;
        Ok(Box::pin(stream::once(async { Ok(bytes) })))
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        Ok(self.read().content.contains_key(&descriptor.digest))
    }

    async fn tags(&self) -> Result<Vec<String>> {
        Ok(self.read().tags.iter().map(|(t, _)| t.clone()).collect())
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let mut candidates: Vec<Descriptor> = self.read().descriptors.values().cloned().collect();
        candidates.sort_by(|a, b| a.digest.cmp(&b.digest));
        referrers_among(self, candidates, subject, artifact_type).await
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn push(&self, descriptor: &Descriptor, body: ByteStream) -> Result<()> {
        let target = format!("{} blob {}", self.location(), descriptor.digest);
        let mut body = verified(descriptor, Op::Push, target, body);
        let mut bytes = BytesMut::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        self.insert(descriptor, bytes.freeze());
        Ok(())
    }

    async fn push_manifest(
        &self,
        descriptor: &Descriptor,
        raw: Bytes,
        role: ManifestRole<'_>,
    ) -> Result<()> {
        let target = format!("{} manifest {}", self.location(), descriptor.digest);
        check_bytes(descriptor, &raw, &target)?;
        self.insert(descriptor, raw);
        if let ManifestRole::Tag(tag) = role {
            let mut state = self.write();
            match state.tags.iter_mut().find(|(t, _)| t == tag) {
                Some(entry) => entry.1 = descriptor.clone(),
                None => state.tags.push((tag.to_owned(), descriptor.clone())),
            }
        }
        Ok(())
    }
}

/// Repositories in memory, created on first use; for tests.
#[derive(Default)]
pub struct MemoryNamespace {
    repositories: Mutex<BTreeMap<String, Arc<MemoryStore>>>,
}

impl MemoryNamespace {
    /// An empty namespace.
    pub fn new() -> MemoryNamespace {
        MemoryNamespace::default()
    }

    fn repository(&self, name: &str) -> Arc<MemoryStore> {
        self.repositories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

#[async_trait]
impl Namespace for MemoryNamespace {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    fn read(&self, repository: &str) -> Result<Arc<dyn ReadStore>> {
        Ok(self.repository(repository))
    }

    fn write(&self, repository: &str) -> Result<Arc<dyn Store>> {
        Ok(self.repository(repository))
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let repositories = self
            .repositories
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut names = Vec::new();
        for (name, store) in repositories {
            if !store.read().tags.is_empty() {
                names.push(name);
            }
        }
        Ok(names)
    }
}
