//! Blob content and its reference counts. Where content lives is the
//! backend's (files beside SQLite, rows in PostgreSQL); the counts are
//! shared rows.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::sql::{Backend, Size, SqlStore, params};
use crate::*;

/// Content-addressed message and queue content.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores blob content durably (synced) and returns its hash. The blob is
    /// not yet named by any row; [`BlobStore::sweep_blobs`] may remove it after the
    /// grace period unless a message names it first. An append or enqueue that
    /// names a blob a sweep removed in between fails with
    /// [`StoreError::BlobDamaged`]; the caller puts it again and retries.
    async fn put_blob(&self, data: Arc<Vec<u8>>) -> Result<BlobHash>;
    /// Reads blob content, verifying it against its hash.
    async fn read_blob(&self, hash: BlobHash) -> Result<Vec<u8>>;
    /// Reads several blobs, each verified, in order, in one go.
    async fn read_blobs(&self, hashes: Vec<BlobHash>) -> Result<Vec<Vec<u8>>>;
    /// Reads a few small blobs (the caller knows their total is small);
    /// backends may read them on the calling thread.
    async fn read_small_blobs(&self, hashes: Vec<BlobHash>) -> Result<Vec<Vec<u8>>>;
    /// How many messages name the blob (0 when none).
    async fn blob_refcount(&self, hash: BlobHash) -> Result<u64>;
    /// Whether the blob's content is still held (named or not).
    async fn blob_stored(&self, hash: BlobHash) -> Result<bool>;
    /// Removes blob content that no row names and that is older than `grace`; returns how many.
    async fn sweep_blobs(&self, grace: Duration) -> Result<u64>;
}

#[async_trait]
impl<B: Backend> BlobStore for SqlStore<B> {
    async fn put_blob(&self, data: Arc<Vec<u8>>) -> Result<BlobHash> {
        self.backend.put_blob(data).await
    }

    async fn read_blob(&self, hash: BlobHash) -> Result<Vec<u8>> {
        self.backend
            .read_blobs(vec![hash], false)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("blob read returned nothing".into()))
    }

    async fn read_blobs(&self, hashes: Vec<BlobHash>) -> Result<Vec<Vec<u8>>> {
        self.backend.read_blobs(hashes, false).await
    }

    async fn read_small_blobs(&self, hashes: Vec<BlobHash>) -> Result<Vec<Vec<u8>>> {
        self.backend.read_blobs(hashes, true).await
    }

    async fn blob_refcount(&self, hash: BlobHash) -> Result<u64> {
        self.read(Size::Few, move |c| {
            Box::pin(async move {
                match c
                    .query_opt(
                        "SELECT refcount FROM blobs WHERE hash = $1",
                        params![hash.to_hex()],
                    )
                    .await?
                {
                    Some(r) => r.uint(0),
                    None => Ok(0),
                }
            })
        })
        .await
    }

    async fn blob_stored(&self, hash: BlobHash) -> Result<bool> {
        self.backend.blob_stored(hash).await
    }

    async fn sweep_blobs(&self, grace: Duration) -> Result<u64> {
        self.backend.sweep_blobs(grace).await
    }
}
