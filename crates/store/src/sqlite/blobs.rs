//! Blob content beside SQLite: files under `blobs/`, named by rows.

use std::sync::Arc;
use std::time::Duration;

use super::Sqlite;
use crate::blob::FsBlobs;
use crate::sql::{Shape, params};
use crate::*;

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(format!("blob task failed: {e}"))
}

/// Only the file is written here; the row that names it is written in the
/// same transaction as the message (or queue entry) row, which checks under
/// the write lock that the file is still there. A sweep unlinks only under
/// that lock, so between them a blob is never lost, and each message costs
/// one commit, not two.
pub(super) async fn put(blobs: &FsBlobs, data: Arc<Vec<u8>>) -> Result<BlobHash> {
    let blobs = blobs.clone();
    let hash = BlobHash::of(&data);
    tokio::task::spawn_blocking(move || blobs.put(&hash, &data))
        .await
        .map_err(task_failed)??;
    Ok(hash)
}

/// Reads blobs, each verified: a few small ones on the calling thread (from
/// the page cache that takes microseconds, less than a trip to the blocking
/// pool and back), others in one trip to the blocking pool.
pub(super) async fn read(
    blobs: &FsBlobs,
    hashes: Vec<BlobHash>,
    small: bool,
) -> Result<Vec<Vec<u8>>> {
    if small {
        return hashes.iter().map(|h| blobs.read(h)).collect();
    }
    let blobs = blobs.clone();
    tokio::task::spawn_blocking(move || hashes.iter().map(|h| blobs.read(h)).collect())
        .await
        .map_err(task_failed)?
}

/// Files with no row are blobs stored but never named (the append failed,
/// or the process died in between); rows with refcount 0 are blobs no
/// longer named. Both go once older than the grace period, unlinked while
/// the write lock is held so that no append can name them in between
/// (append checks for the file under the same lock).
pub(super) async fn sweep(store: &Sqlite, grace: Duration) -> Result<u64> {
    let blobs = store.blobs.clone();
    let cutoff = now_millis() - grace.as_millis() as i64;
    blobs.clean_tmp(grace)?;
    let orphans = {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || blobs.files_older_than(grace))
            .await
            .map_err(task_failed)??
    };
    use crate::sql::Backend;
    store
        .write(
            Shape::Transaction,
            Box::new(move |c| {
                Box::pin(async move {
                    let mut hashes: Vec<String> = Vec::new();
                    for mut r in c
                        .query(
                            "SELECT hash FROM blobs WHERE refcount = 0 AND last_put_at <= $1",
                            params![cutoff],
                        )
                        .await?
                    {
                        let hex = r.text(0)?;
                        // A file refreshed by a put_blob just now is about to be named again.
                        if BlobHash::from_hex(&hex)
                            .is_ok_and(|h| blobs.modified_before(&h, grace) || !blobs.exists(&h))
                        {
                            hashes.push(hex);
                        }
                    }
                    for hash in orphans {
                        let named = c
                            .query_opt(
                                "SELECT 1 FROM blobs WHERE hash = $1",
                                params![hash.to_hex()],
                            )
                            .await?
                            .is_some();
                        if !named && blobs.modified_before(&hash, grace) {
                            hashes.push(hash.to_hex());
                        }
                    }
                    hashes.sort();
                    hashes.dedup();
                    for hex in &hashes {
                        blobs.remove(&BlobHash::from_hex(hex)?)?;
                        c.execute("DELETE FROM blobs WHERE hash = $1", params![hex.as_str()])
                            .await?;
                    }
                    Ok(hashes.len() as u64)
                })
            }),
        )
        .await
}
