//! The simulated device's hardware: what a real secure element keeps in
//! fuses and ROM (device id, sealing key, factory attestation identity) and
//! in replay-protected storage (RPMB on a phone): the write counter, the
//! data-sealing epoch and whether the app has stored sealed data.
//!
//! Here it is a separate file, `DEVICE.key` (mode 0600, JSON), **standing in
//! for the hardware**: whoever can read it can unseal the element's storage,
//! and whoever can roll it back together with the sealed file defeats the
//! rollback check. On a real phone neither is possible from the OS. Tests
//! inject the hardware with [`MemoryDeviceRoot`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use shomei_secure_element::{DeviceId, SeError};
use zeroize::Zeroizing;

use crate::storage::{io_error, write_atomic};

/// Length of the fused sealing key (AES-256).
pub const SEALING_KEY_LEN: usize = 32;

/// The fixed part of the hardware, set at manufacture and never changed
/// (not even by a wipe).
#[derive(Clone)]
pub struct FusedIdentity {
    device_id: DeviceId,
    sealing_key: Zeroizing<[u8; SEALING_KEY_LEN]>,
    attestation_key: Zeroizing<Vec<u8>>,
    device_cert: Vec<u8>,
    root_cert: Vec<u8>,
}

impl FusedIdentity {
    /// Assembles an identity: the device id, the sealing key, the device
    /// attestation key (PKCS#8, P-256), its certificate and the manufacturer
    /// root that issued it. Normally made by
    /// [`crate::SimManufacturer::new_device`].
    pub fn new(
        device_id: DeviceId,
        sealing_key: Zeroizing<[u8; SEALING_KEY_LEN]>,
        attestation_key_pkcs8: Zeroizing<Vec<u8>>,
        device_cert: Vec<u8>,
        root_cert: Vec<u8>,
    ) -> Self {
        Self {
            device_id,
            sealing_key,
            attestation_key: attestation_key_pkcs8,
            device_cert,
            root_cert,
        }
    }

    /// The device id.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The device attestation certificate (DER).
    pub fn device_cert(&self) -> &[u8] {
        &self.device_cert
    }

    /// The manufacturer root certificate (DER).
    pub fn root_cert(&self) -> &[u8] {
        &self.root_cert
    }

    pub(crate) fn sealing_key(&self) -> &[u8; SEALING_KEY_LEN] {
        &self.sealing_key
    }

    pub(crate) fn attestation_key(&self) -> &[u8] {
        &self.attestation_key
    }
}

impl core::fmt::Debug for FusedIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FusedIdentity")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// The hardware an element runs on: its fused identity and a monotonic
/// counter that survives power loss (the rollback check).
pub trait DeviceRoot: Send {
    /// The fused identity.
    fn identity(&self) -> &FusedIdentity;

    /// The counter's current value (0 before the first write).
    fn counter(&self) -> Result<u64, SeError>;

    /// Durably raises the counter to `to` (never lowers it).
    fn advance_counter(&mut self, to: u64) -> Result<(), SeError>;

    /// The epoch of the app's data-sealing key (0 until the first requested
    /// wipe). Kept here, beside the counter, so that a wipe after tampering
    /// (which loses the sealed image) keeps the app's data readable, while
    /// an earlier epoch can never come back.
    fn data_epoch(&self) -> Result<u64, SeError>;

    /// Durably raises the data-sealing epoch to `to` (never lowers it).
    fn advance_data_epoch(&mut self, to: u64) -> Result<(), SeError>;

    /// Whether the app has stored data sealed by this element (false until
    /// [`DeviceRoot::mark_sealed_data_stored`]; never false again). Kept
    /// here, not in the sealed image, so that a wipe after tampering (which
    /// loses the image) cannot reopen the app's one-time migration from
    /// plain data.
    fn sealed_data_stored(&self) -> Result<bool, SeError>;

    /// Durably records that the app has stored sealed data.
    fn mark_sealed_data_stored(&mut self) -> Result<(), SeError>;
}

/// The hardware as a file (`DEVICE.key`, mode 0600), rewritten atomically
/// when the counter moves. See the module documentation for what it stands for.
pub struct FileDeviceRoot {
    path: PathBuf,
    identity: FusedIdentity,
    counter: u64,
    data_epoch: u64,
    sealed_data_stored: bool,
}

const DEVICE_FILE_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct DeviceFile {
    format: u32,
    device_id: String,
    sealing_key: String,
    attestation_key: String,
    device_cert: String,
    root_cert: String,
    counter: u64,
    /// Absent in files written before the app's sealed data existed.
    #[serde(default)]
    data_epoch: u64,
    /// Absent (false) in files written before the app stored sealed data.
    #[serde(default)]
    sealed_data_stored: bool,
}

impl Drop for DeviceFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.sealing_key.zeroize();
        self.attestation_key.zeroize();
    }
}

impl FileDeviceRoot {
    /// Writes a new hardware file at `path` with counter 0; fails if one exists.
    pub fn create(path: impl Into<PathBuf>, identity: FusedIdentity) -> Result<Self, SeError> {
        let path = path.into();
        if path
            .try_exists()
            .map_err(|e| io_error("inspect", &path, &e))?
        {
            return Err(SeError::AlreadyProvisioned);
        }
        let root = Self {
            path,
            identity,
            counter: 0,
            data_epoch: 0,
            sealed_data_stored: false,
        };
        root.write(0, 0, false)?;
        Ok(root)
    }

    /// Reads the hardware file at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, SeError> {
        let path = path.into();
        let bytes = Zeroizing::new(std::fs::read(&path).map_err(|e| io_error("read", &path, &e))?);
        let bad = |m: &str| SeError::Storage(format!("{}: {m}", path.display()));
        let file: DeviceFile =
            serde_json::from_slice(&bytes).map_err(|_| bad("not a device key file"))?;
        if file.format != DEVICE_FILE_FORMAT {
            return Err(bad("unsupported device key file format"));
        }
        let unhex = |s: &str| hex::decode(s).map_err(|_| bad("bad hex"));
        // (the decoded secrets are wrapped in `Zeroizing` right away)
        let device_id = <[u8; 16]>::try_from(unhex(&file.device_id)?.as_slice())
            .map_err(|_| bad("device id is not 16 bytes"))?;
        let key = Zeroizing::new(unhex(&file.sealing_key)?);
        let sealing_key = Zeroizing::new(
            <[u8; SEALING_KEY_LEN]>::try_from(key.as_slice())
                .map_err(|_| bad("sealing key is not 32 bytes"))?,
        );
        let identity = FusedIdentity::new(
            DeviceId::from_bytes(device_id),
            sealing_key,
            Zeroizing::new(unhex(&file.attestation_key)?),
            unhex(&file.device_cert)?,
            unhex(&file.root_cert)?,
        );
        Ok(Self {
            path,
            identity,
            counter: file.counter,
            data_epoch: file.data_epoch,
            sealed_data_stored: file.sealed_data_stored,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(
        &self,
        counter: u64,
        data_epoch: u64,
        sealed_data_stored: bool,
    ) -> Result<(), SeError> {
        let id = &self.identity;
        let file = DeviceFile {
            format: DEVICE_FILE_FORMAT,
            device_id: id.device_id.to_hex(),
            sealing_key: hex::encode(id.sealing_key.as_slice()),
            attestation_key: hex::encode(id.attestation_key.as_slice()),
            device_cert: hex::encode(&id.device_cert),
            root_cert: hex::encode(&id.root_cert),
            counter,
            data_epoch,
            sealed_data_stored,
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(&file)
                .map_err(|e| SeError::Storage(format!("cannot encode device key file: {e}")))?,
        );
        write_atomic(&self.path, &bytes)
    }
}

impl DeviceRoot for FileDeviceRoot {
    fn identity(&self) -> &FusedIdentity {
        &self.identity
    }

    fn counter(&self) -> Result<u64, SeError> {
        Ok(self.counter)
    }

    fn advance_counter(&mut self, to: u64) -> Result<(), SeError> {
        if to <= self.counter {
            return Ok(());
        }
        self.write(to, self.data_epoch, self.sealed_data_stored)?;
        self.counter = to;
        Ok(())
    }

    fn data_epoch(&self) -> Result<u64, SeError> {
        Ok(self.data_epoch)
    }

    fn advance_data_epoch(&mut self, to: u64) -> Result<(), SeError> {
        if to <= self.data_epoch {
            return Ok(());
        }
        self.write(self.counter, to, self.sealed_data_stored)?;
        self.data_epoch = to;
        Ok(())
    }

    fn sealed_data_stored(&self) -> Result<bool, SeError> {
        Ok(self.sealed_data_stored)
    }

    fn mark_sealed_data_stored(&mut self) -> Result<(), SeError> {
        if self.sealed_data_stored {
            return Ok(());
        }
        self.write(self.counter, self.data_epoch, true)?;
        self.sealed_data_stored = true;
        Ok(())
    }
}

impl core::fmt::Debug for FileDeviceRoot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FileDeviceRoot")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .field("counter", &self.counter)
            .field("data_epoch", &self.data_epoch)
            .field("sealed_data_stored", &self.sealed_data_stored)
            .finish()
    }
}

/// The hardware in RAM (tests): the identity is injected; clones share the
/// counter, so a test can reopen the element on the same "hardware";
/// [`MemoryDeviceRoot::fail_after`] makes later counter writes fail.
#[derive(Clone)]
pub struct MemoryDeviceRoot {
    identity: Arc<FusedIdentity>,
    counter: Arc<Mutex<CounterInner>>,
}

#[derive(Default)]
struct CounterInner {
    value: u64,
    data_epoch: u64,
    sealed_data_stored: bool,
    writes_left: Option<usize>,
}

impl MemoryDeviceRoot {
    /// Hardware with `identity` and counter 0.
    pub fn new(identity: FusedIdentity) -> Self {
        Self {
            identity: Arc::new(identity),
            counter: Arc::default(),
        }
    }

    /// The same identity with a separate counter set to `value` (e.g. a
    /// second copy of the same test fixture); the data-sealing epoch and
    /// whether sealed data was stored are copied.
    pub fn fork(&self, value: u64) -> Self {
        let (data_epoch, sealed_data_stored) = {
            let inner = self.lock();
            (inner.data_epoch, inner.sealed_data_stored)
        };
        Self {
            identity: Arc::clone(&self.identity),
            counter: Arc::new(Mutex::new(CounterInner {
                value,
                data_epoch,
                sealed_data_stored,
                writes_left: None,
            })),
        }
    }

    /// Lets `n` more counter writes succeed; later ones fail.
    pub fn fail_after(&self, n: usize) {
        self.lock().writes_left = Some(n);
    }

    /// Makes counter writes succeed again.
    pub fn heal(&self) {
        self.lock().writes_left = None;
    }

    /// Sets the counter behind the element's back (tests of a rolled-back counter).
    pub fn set_counter(&self, value: u64) {
        self.lock().value = value;
    }

    /// Sets whether the app has stored sealed data, behind the element's
    /// back (tests of an element from before sealed app data existed).
    pub fn set_sealed_data_stored(&self, value: bool) {
        self.lock().sealed_data_stored = value;
    }

    fn lock(&self) -> MutexGuard<'_, CounterInner> {
        self.counter.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DeviceRoot for MemoryDeviceRoot {
    fn identity(&self) -> &FusedIdentity {
        &self.identity
    }

    fn counter(&self) -> Result<u64, SeError> {
        Ok(self.lock().value)
    }

    fn advance_counter(&mut self, to: u64) -> Result<(), SeError> {
        let mut inner = self.lock();
        if let Some(left) = inner.writes_left.as_mut() {
            if *left == 0 {
                return Err(SeError::Storage(
                    "simulated power loss while writing the counter".into(),
                ));
            }
            *left -= 1;
        }
        inner.value = inner.value.max(to);
        Ok(())
    }

    fn data_epoch(&self) -> Result<u64, SeError> {
        Ok(self.lock().data_epoch)
    }

    fn advance_data_epoch(&mut self, to: u64) -> Result<(), SeError> {
        let mut inner = self.lock();
        spend_write(&mut inner)?;
        inner.data_epoch = inner.data_epoch.max(to);
        Ok(())
    }

    fn sealed_data_stored(&self) -> Result<bool, SeError> {
        Ok(self.lock().sealed_data_stored)
    }

    fn mark_sealed_data_stored(&mut self) -> Result<(), SeError> {
        let mut inner = self.lock();
        if inner.sealed_data_stored {
            return Ok(());
        }
        spend_write(&mut inner)?;
        inner.sealed_data_stored = true;
        Ok(())
    }
}

/// One write of [`MemoryDeviceRoot`]'s replay-protected storage: fails once
/// [`MemoryDeviceRoot::fail_after`]'s budget is spent.
fn spend_write(inner: &mut CounterInner) -> Result<(), SeError> {
    if let Some(left) = inner.writes_left.as_mut() {
        if *left == 0 {
            return Err(SeError::Storage(
                "simulated power loss while writing the counter".into(),
            ));
        }
        *left -= 1;
    }
    Ok(())
}

impl core::fmt::Debug for MemoryDeviceRoot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (counter, data_epoch, sealed_data_stored) = {
            let inner = self.lock();
            (inner.value, inner.data_epoch, inner.sealed_data_stored)
        };
        f.debug_struct("MemoryDeviceRoot")
            .field("identity", &self.identity)
            .field("counter", &counter)
            .field("data_epoch", &data_epoch)
            .field("sealed_data_stored", &sealed_data_stored)
            .finish()
    }
}
