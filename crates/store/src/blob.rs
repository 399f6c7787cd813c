//! Content-addressed blobs: the hash type and the on-disk blob folder.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{Result, StoreError};

/// The BLAKE3 hash that names a blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// Hashes content.
    pub fn of(data: &[u8]) -> Self {
        BlobHash(*blake3::hash(data).as_bytes())
    }

    /// The lower-case hex form used in rows and file names.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| StoreError::Corrupt(format!("malformed blob hash {s:?} in store")))?;
        Ok(BlobHash(out))
    }

    /// Checks content against this hash.
    pub fn verify(&self, data: &[u8]) -> Result<()> {
        if BlobHash::of(data) == *self {
            Ok(())
        } else {
            Err(StoreError::BlobDamaged {
                hash: *self,
                reason: "content does not match its hash".into(),
            })
        }
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// Blob content kept as files under `DATA/blobs/ab/<hash>`.
///
/// A file is written to `tmp/`, synced, renamed into place and its directory
/// synced, so it is either whole or absent. Which blobs may be deleted is
/// decided by the database, never by the file system: see the SQLite backend's
/// `put_blob` and `sweep_blobs` for the protocol that keeps a concurrent writer
/// and a sweep (possibly in another process) from losing a blob.
#[derive(Debug, Clone)]
pub(crate) struct FsBlobs {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl FsBlobs {
    pub(crate) fn open(root: PathBuf) -> Result<Self> {
        fs::create_dir_all(root.join("tmp")).map_err(io_err(&root))?;
        Ok(FsBlobs { root })
    }

    fn path_of(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Writes and syncs the blob unless it is there already, in which case
    /// its modification time is refreshed so a sweep leaves it alone.
    pub(crate) fn put(&self, hash: &BlobHash, data: &[u8]) -> Result<()> {
        let path = self.path_of(hash);
        if let Ok(file) = fs::OpenOptions::new().append(true).open(&path) {
            return file.set_modified(SystemTime::now()).map_err(io_err(&path));
        }
        let dir = path.parent().expect("blob path has a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{}",
            hash.to_hex(),
            std::process::id(),
            rand_suffix()
        ));
        let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        file.write_all(data).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)
    }

    pub(crate) fn read(&self, hash: &BlobHash) -> Result<Vec<u8>> {
        let path = self.path_of(hash);
        let data = fs::read(&path).map_err(|e| StoreError::BlobDamaged {
            hash: *hash,
            reason: format!("{}: {e}", path.display()),
        })?;
        hash.verify(&data)?;
        Ok(data)
    }

    pub(crate) fn exists(&self, hash: &BlobHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Every stored blob whose file is older than `grace`.
    pub(crate) fn files_older_than(&self, grace: Duration) -> Result<Vec<BlobHash>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let dir = entry.map_err(io_err(&self.root))?.path();
            let is_fanout = dir.file_name().is_some_and(|n| {
                n.len() == 2 && n.to_string_lossy().bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !is_fanout || !dir.is_dir() {
                continue;
            }
            for file in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let file = file.map_err(io_err(&dir))?;
                if let Ok(hash) = BlobHash::from_hex(&file.file_name().to_string_lossy())
                    && self.modified_before(&hash, grace)
                {
                    out.push(hash);
                }
            }
        }
        Ok(out)
    }

    /// Whether the blob's file exists and was last written or refreshed more than `grace` ago.
    pub(crate) fn modified_before(&self, hash: &BlobHash, grace: Duration) -> bool {
        fs::metadata(self.path_of(hash))
            .and_then(|m| m.modified())
            .map(|m| SystemTime::now().duration_since(m).unwrap_or_default() >= grace)
            .unwrap_or(false)
    }

    /// Removes temp files of writers that died mid-write, older than `grace`.
    pub(crate) fn clean_tmp(&self, grace: Duration) -> Result<()> {
        let now = SystemTime::now();
        let tmp = self.root.join("tmp");
        for file in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
            let file = file.map_err(io_err(&tmp))?;
            let old = file
                .metadata()
                .and_then(|m| m.modified())
                .map(|m| now.duration_since(m).unwrap_or_default() >= grace)
                .unwrap_or(false);
            if old {
                let _ = fs::remove_file(file.path());
            }
        }
        Ok(())
    }

    pub(crate) fn remove(&self, hash: &BlobHash) -> Result<()> {
        let path = self.path_of(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos << 20) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}
