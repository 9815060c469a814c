//! Chip memory: where the card's non-volatile state lives between power cycles.
//!
//! The chip hands a whole serialised image to [`ChipMemory::commit`]; the
//! store must make it durable atomically (all of the new image or all of the
//! old one), because the retry counters depend on it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use zeroize::Zeroizing;

use crate::CardError;

/// Non-volatile memory of one chip.
pub trait ChipMemory {
    /// Reads the last committed image.
    fn load(&self) -> Result<Zeroizing<Vec<u8>>, CardError>;

    /// Durably and atomically replaces the image. When it returns `Err`, the
    /// store holds either the old or the new image, never a mix.
    fn commit(&mut self, image: &[u8]) -> Result<(), CardError>;
}

/// Chip memory in one file, replaced atomically: write a temporary file in
/// the same directory (mode 0600), fsync it, rename it over the old one, and
/// fsync the directory.
///
/// A chip is held by one reader at a time: [`FileMemory::exclusive`] takes an
/// advisory lock on a sidecar file (`.NAME.lock`) for as long as the memory
/// lives, so two processes can never interleave commits (which could refund a
/// PIN try).
#[derive(Debug, Clone)]
pub struct FileMemory {
    path: PathBuf,
    _lock: Option<std::sync::Arc<File>>,
}

impl FileMemory {
    /// Memory at `path` (the file need not exist until the first commit),
    /// without the inter-process lock (tests, single-process use).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            _lock: None,
        }
    }

    /// Memory at `path`, held exclusively by this process until dropped.
    /// Fails with [`CardError::Memory`] when another process holds the card.
    pub fn exclusive(path: impl Into<PathBuf>) -> Result<Self, CardError> {
        let path: PathBuf = path.into();
        let name = path
            .file_name()
            .ok_or_else(|| CardError::Memory("chip memory path has no file name".into()))?;
        let mut lock_name = std::ffi::OsString::from(".");
        lock_name.push(name);
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&lock_path)
            .map_err(|e| CardError::Memory(format!("cannot open {}: {e}", lock_path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                path,
                _lock: Some(std::sync::Arc::new(file)),
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(CardError::Memory(format!(
                "the card {} is in use by another process",
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(CardError::Memory(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            ))),
        }
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> CardError {
        CardError::Memory(format!("cannot {what} {}: {e}", self.path.display()))
    }
}

impl ChipMemory for FileMemory {
    fn load(&self) -> Result<Zeroizing<Vec<u8>>, CardError> {
        fs::read(&self.path)
            .map(Zeroizing::new)
            .map_err(|e| self.io_error("read", e))
    }

    fn commit(&mut self, image: &[u8]) -> Result<(), CardError> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| CardError::Memory("chip memory path has no file name".into()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);

        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|e| self.io_error("create", e))?;
        // A stale temporary file may have been created with other permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| self.io_error("restrict", e))?;
        }
        file.write_all(image)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io_error("write", e))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(|e| self.io_error("replace", e))?;
        #[cfg(unix)]
        {
            let dir = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io_error("sync directory of", e))?;
        }
        Ok(())
    }
}

/// Chip memory in RAM for tests and fuzzing. Clones share the same memory,
/// so a test can keep a handle, "pull the power" and [`crate::Card::open`]
/// the chip again; [`MemoryChip::fail_after`] makes later commits fail to
/// simulate a crash at a chosen point.
#[derive(Clone, Default)]
pub struct MemoryChip {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    image: Option<Zeroizing<Vec<u8>>>,
    commits_left: Option<usize>,
    commits: usize,
}

impl MemoryChip {
    /// Empty memory (nothing committed yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Memory holding `image` (e.g. a copy of another chip's image).
    pub fn with_image(image: &[u8]) -> Self {
        let chip = Self::new();
        chip.lock().image = Some(Zeroizing::new(image.to_vec()));
        chip
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

    /// A copy of the committed image, if any.
    pub fn image(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.lock().image.clone()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryInner> {
        // The guarded data is always consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl core::fmt::Debug for MemoryChip {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryChip")
            .field("image_len", &inner.image.as_ref().map(|i| i.len()))
            .field("commits", &inner.commits)
            .field("commits_left", &inner.commits_left)
            .finish()
    }
}

impl ChipMemory for MemoryChip {
    fn load(&self) -> Result<Zeroizing<Vec<u8>>, CardError> {
        self.lock()
            .image
            .clone()
            .ok_or_else(|| CardError::Memory("chip memory is empty".into()))
    }

    fn commit(&mut self, image: &[u8]) -> Result<(), CardError> {
        let mut inner = self.lock();
        if let Some(left) = inner.commits_left.as_mut() {
            if *left == 0 {
                return Err(CardError::Memory(
                    "simulated power loss during commit".into(),
                ));
            }
            *left -= 1;
        }
        inner.image = Some(Zeroizing::new(image.to_vec()));
        inner.commits += 1;
        Ok(())
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn second_exclusive_holder_is_refused_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.card");
        let first = FileMemory::exclusive(&p).unwrap();
        let err = FileMemory::exclusive(&p).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        FileMemory::exclusive(&p).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_chip_fails_after_n_commits_and_keeps_old_image() {
        let mut m = MemoryChip::new();
        assert!(matches!(m.load(), Err(CardError::Memory(_))));
        m.fail_after(1);
        m.commit(b"one").unwrap();
        assert!(matches!(m.commit(b"two"), Err(CardError::Memory(_))));
        assert_eq!(m.load().unwrap().as_slice(), b"one");
        m.heal();
        m.clone().commit(b"three").unwrap();
        assert_eq!(m.load().unwrap().as_slice(), b"three");
        assert_eq!(m.commits(), 2);
    }

    #[test]
    fn file_memory_replaces_atomically_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = FileMemory::new(dir.path().join("chip.json"));
        assert!(matches!(m.load(), Err(CardError::Memory(_))));
        m.commit(b"first").unwrap();
        m.commit(b"second").unwrap();
        assert_eq!(m.load().unwrap().as_slice(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["chip.json"]);
    }
}
