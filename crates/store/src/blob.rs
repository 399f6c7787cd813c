//! Content-addressed blobs: the hash type and the on-disk blob folder.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    verified: Arc<Mutex<Verified>>,
}

/// How many files' checks are remembered; past it the memory starts over.
const VERIFIED_FILES: usize = 1 << 16;

/// Blob files whose content this process has checked against their hash,
/// with the file as it was then.
///
/// Hashing every blob on every read was a tenth of the server's CPU in a
/// full download. A file is checked again when anything about it changes:
/// its inode, size or change time (ctime, which a write, a rename or a
/// `touch` all move and which cannot be set back without the clock). Only
/// files that last changed seconds before are remembered (see `settled`).
#[derive(Debug, Default)]
struct Verified(HashMap<BlobHash, FileStamp>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl FileStamp {
    /// Whether the file last changed long enough ago that any later change
    /// gets another ctime: the kernel's clock for it moves in ticks of a
    /// few milliseconds, so a change right after this one could share it.
    fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        now - self.ctime.0 >= 2
    }
}

impl Verified {
    fn holds(&self, hash: &BlobHash, stamp: FileStamp) -> bool {
        self.0.get(hash) == Some(&stamp)
    }

    fn remember(&mut self, hash: BlobHash, stamp: FileStamp) {
        if self.0.len() >= VERIFIED_FILES {
            self.0.clear();
        }
        self.0.insert(hash, stamp);
    }
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
        Ok(FsBlobs {
            root,
            verified: Arc::default(),
        })
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

    /// The blob's content, checked against its hash unless this process
    /// checked the file before and it has not changed since.
    pub(crate) fn read(&self, hash: &BlobHash) -> Result<Vec<u8>> {
        let path = self.path_of(hash);
        let damaged = |e: std::io::Error| StoreError::BlobDamaged {
            hash: *hash,
            reason: format!("{}: {e}", path.display()),
        };
        let mut file = fs::File::open(&path).map_err(damaged)?;
        let stamp = FileStamp::of(&file.metadata().map_err(damaged)?);
        let mut data = Vec::with_capacity(usize::try_from(stamp.size).unwrap_or(0));
        file.read_to_end(&mut data).map_err(damaged)?;
        if data.len() as u64 == stamp.size && self.lock_verified().holds(hash, stamp) {
            return Ok(data);
        }
        hash.verify(&data)?;
        if stamp.settled() {
            self.lock_verified().remember(*hash, stamp);
        }
        Ok(data)
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, Verified> {
        // A panic elsewhere cannot leave the map wrong, only incomplete.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (FsBlobs, PathBuf) {
        let root = std::env::temp_dir().join(format!(
            "rampart-blob-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        (FsBlobs::open(root.clone()).unwrap(), root)
    }

    #[test]
    fn a_file_changed_after_its_check_is_checked_again() {
        let (blobs, root) = blobs();
        let data = b"Subject: hello\r\n\r\nbody\r\n".repeat(100);
        let hash = BlobHash::of(&data);
        blobs.put(&hash, &data).unwrap();
        // Old enough to be remembered once read.
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(blobs.read(&hash).unwrap(), data);
        assert!(blobs.lock_verified().0.contains_key(&hash), "remembered");
        assert_eq!(blobs.read(&hash).unwrap(), data, "read again unhashed");

        // Same size, same inode, other content: the ctime moved.
        let mut damaged = data.clone();
        damaged[10] ^= 1;
        fs::write(blobs.path_of(&hash), &damaged).unwrap();
        assert!(matches!(
            blobs.read(&hash),
            Err(StoreError::BlobDamaged { .. })
        ));

        // Replaced by another file of the same size.
        let other = blobs.root.join("tmp").join("other");
        fs::write(&other, &damaged).unwrap();
        fs::rename(&other, blobs.path_of(&hash)).unwrap();
        assert!(matches!(
            blobs.read(&hash),
            Err(StoreError::BlobDamaged { .. })
        ));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_fresh_file_is_hashed_on_every_read() {
        let (blobs, root) = blobs();
        let data = b"fresh".repeat(1000);
        let hash = BlobHash::of(&data);
        blobs.put(&hash, &data).unwrap();
        assert_eq!(blobs.read(&hash).unwrap(), data);
        assert!(
            !blobs.lock_verified().0.contains_key(&hash),
            "a change within the ctime's tick could go unseen"
        );
        let mut damaged = data.clone();
        damaged[0] = b'F';
        fs::write(blobs.path_of(&hash), &damaged).unwrap();
        assert!(blobs.read(&hash).is_err());
        fs::remove_dir_all(root).unwrap();
    }
}
