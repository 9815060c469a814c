//! Where the sealed image lives: a small trait with a file implementation
//! (atomic replace) and an in-memory one for tests (with simulated power loss).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use shomei_secure_element::SeError;

/// Durable storage of the one sealed image.
pub trait SealedStore: Send {
    /// The last committed image, or `None` if nothing was ever committed.
    fn load(&self) -> Result<Option<Vec<u8>>, SeError>;

    /// Durably and atomically replaces the image. When it returns `Err`, the
    /// store holds either the old or the new image, never a mix.
    fn commit(&mut self, sealed: &[u8]) -> Result<(), SeError>;
}

/// The sealed image in one file, replaced atomically: a temporary file in
/// the same directory (mode 0600) is written and fsynced, renamed over the
/// old one, and the directory is fsynced.
///
/// [`FileStore::exclusive`] also holds an advisory lock on `.NAME.lock` for
/// as long as the store lives, so two processes never interleave commits
/// (which could refund a PIN try).
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    _lock: Option<File>,
}

impl FileStore {
    /// The image at `path` (the file need not exist yet), without the
    /// inter-process lock.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            _lock: None,
        }
    }

    /// The image at `path`, held exclusively by this process until dropped.
    pub fn exclusive(path: impl Into<PathBuf>) -> Result<Self, SeError> {
        let path: PathBuf = path.into();
        let lock_path = sibling(&path, ".", ".lock")?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&lock_path)
            .map_err(|e| io_error("open", &lock_path, &e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                path,
                _lock: Some(file),
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(SeError::Storage(format!(
                "the secure element {} is in use by another process",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error("lock", &lock_path, &e)),
        }
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SealedStore for FileStore {
    fn load(&self) -> Result<Option<Vec<u8>>, SeError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &self.path, &e)),
        }
    }

    fn commit(&mut self, sealed: &[u8]) -> Result<(), SeError> {
        write_atomic(&self.path, sealed)
    }
}

/// Replaces `path` with `bytes` atomically and durably (temporary file
/// `.NAME.tmp` with mode 0600, fsync, rename, fsync of the directory).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SeError> {
    let tmp = sibling(path, ".", ".tmp")?;
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .map_err(|e| io_error("create", &tmp, &e))?;
    // A stale temporary file may have been created with other permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io_error("restrict", &tmp, &e))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &tmp, &e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| io_error("replace", path, &e))?;
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("sync directory of", path, &e))?;
    }
    Ok(())
}

/// `dir/{prefix}NAME{suffix}` for `dir/NAME`.
fn sibling(path: &Path, prefix: &str, suffix: &str) -> Result<PathBuf, SeError> {
    let name = path
        .file_name()
        .ok_or_else(|| SeError::Storage(format!("{} has no file name", path.display())))?;
    let mut other = std::ffi::OsString::from(prefix);
    other.push(name);
    other.push(suffix);
    Ok(path.with_file_name(other))
}

pub(crate) fn io_error(what: &str, path: &Path, e: &std::io::Error) -> SeError {
    SeError::Storage(format!("cannot {what} {}: {e}", path.display()))
}

/// The sealed image in RAM (tests, benches). Clones share the same storage,
/// so a test can keep a handle, "pull the power" and reopen;
/// [`MemoryStore::fail_after`] makes later commits fail as a crash would.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    sealed: Option<Vec<u8>>,
    commits_left: Option<usize>,
    commits: usize,
}

impl MemoryStore {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Storage holding a copy of `other`'s current image (and nothing else shared).
    pub fn snapshot_of(other: &Self) -> Self {
        let store = Self::new();
        store.lock().sealed = other.sealed();
        store
    }

    /// Lets `n` more commits succeed; every later one fails without storing
    /// anything (as if the power was cut mid-write).
    pub fn fail_after(&self, n: usize) {
        self.lock().commits_left = Some(n);
    }

    /// Makes commits succeed again.
    pub fn heal(&self) {
        self.lock().commits_left = None;
    }

    /// How many commits have succeeded.
    pub fn commits(&self) -> usize {
        self.lock().commits
    }

    /// A copy of the stored (sealed) bytes.
    pub fn sealed(&self) -> Option<Vec<u8>> {
        self.lock().sealed.clone()
    }

    /// Replaces the stored bytes behind the element's back (tamper tests).
    pub fn set_sealed(&self, sealed: Option<Vec<u8>>) {
        self.lock().sealed = sealed;
    }

    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        // The guarded data is always consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("len", &inner.sealed.as_ref().map(Vec::len))
            .field("commits", &inner.commits)
            .finish_non_exhaustive()
    }
}

impl SealedStore for MemoryStore {
    fn load(&self) -> Result<Option<Vec<u8>>, SeError> {
        Ok(self.lock().sealed.clone())
    }

    fn commit(&mut self, sealed: &[u8]) -> Result<(), SeError> {
        let mut inner = self.lock();
        if let Some(left) = inner.commits_left.as_mut() {
            if *left == 0 {
                return Err(SeError::Storage(
                    "simulated power loss during commit".into(),
                ));
            }
            *left -= 1;
        }
        inner.sealed = Some(sealed.to_vec());
        inner.commits += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_replaces_atomically_with_mode_0600_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("se.sealed");
        let mut s = FileStore::exclusive(&p).unwrap();
        assert_eq!(s.load().unwrap(), None);
        s.commit(b"one").unwrap();
        s.commit(b"two").unwrap();
        assert_eq!(s.load().unwrap().unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".se.sealed.lock", "se.sealed"]);
        let err = FileStore::exclusive(&p).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(s);
        FileStore::exclusive(&p).unwrap();
    }

    #[test]
    fn memory_store_fails_after_n_commits_and_keeps_the_old_image() {
        let mut m = MemoryStore::new();
        m.fail_after(1);
        m.commit(b"one").unwrap();
        assert!(m.commit(b"two").is_err());
        assert_eq!(m.load().unwrap().unwrap(), b"one");
        m.heal();
        m.clone().commit(b"three").unwrap();
        assert_eq!(m.sealed().unwrap(), b"three");
        assert_eq!(m.commits(), 2);
    }
}
