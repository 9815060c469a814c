//! The records the registry stores and returns.

use shomei_core::{
    BasicFour, CertClass, CertStatus, Credential, Plan, RevocationReason, Serial, Timestamp,
};

/// A holder (名義人) and their basic four.
///
/// `Debug` is safe to log: [`BasicFour`] redacts itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderRecord {
    /// Caller-chosen identifier (never the 個人番号 itself).
    pub id: String,
    /// Name, address, birth date, sex: personal data.
    pub basic_four: BasicFour,
    /// When the holder was enrolled.
    pub created_at: Timestamp,
    /// When the basic four last changed (`created_at` until then).
    pub updated_at: Timestamp,
}

/// A card issued to a holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardRecord {
    /// Caller-chosen card identifier.
    pub id: String,
    /// Whose card it is.
    pub holder_id: String,
    /// When it was issued.
    pub created_at: Timestamp,
}

/// Where a phone stands at the authority.
///
/// ```text
/// active ──(a newer phone is provisioned)──▶ superseded ──┐
///   │ ────(reported lost: remote wipe)─────▶ lost ────────┤ (the phone confirms)
///   └─────(remote wipe / self-retire)──────▶ wipe_pending ┴───────────────────▶ wiped
/// ```
///
/// A wipe is queued exactly when the phone is not active
/// ([`DeviceRecord::wipe_requested_at`] is set); it stays queued until the
/// phone confirms it ([`crate::Registry::confirm_wiped`]). `wiped` is final.
/// The schema enforces the vocabulary and at most one active phone per holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    /// The holder's current phone.
    Active,
    /// Replaced by a newer phone of the same holder.
    Superseded,
    /// Reported lost or stolen.
    Lost,
    /// A remote wipe was asked for (operator, holder, or the phone retiring itself).
    WipePending,
    /// The phone confirmed it erased its credentials. Final.
    Wiped,
}

impl DeviceStatus {
    /// Every status, in life order.
    pub const ALL: [Self; 5] = [
        Self::Active,
        Self::Superseded,
        Self::Lost,
        Self::WipePending,
        Self::Wiped,
    ];

    /// Registry and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Superseded => "superseded",
            Self::Lost => "lost",
            Self::WipePending => "wipe_pending",
            Self::Wiped => "wiped",
        }
    }

    /// Whether the phone must still erase its credentials.
    pub fn wipe_queued(self) -> bool {
        matches!(self, Self::Superseded | Self::Lost | Self::WipePending)
    }
}

impl core::fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for DeviceStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|d| d.as_str() == s).ok_or(())
    }
}

/// A phone (移動端末設備) registered to a holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device identifier (the authority's; unique over all phones ever registered).
    pub id: String,
    /// Whose phone it is.
    pub holder_id: String,
    /// Short code for the kind of device (e.g. `"android"`, `"ios"`; 1–32 bytes); not interpreted here.
    pub kind: String,
    /// Where it stands.
    pub status: DeviceStatus,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When `status` last changed; `None` while it is still as registered.
    pub status_changed_at: Option<Timestamp>,
    /// When a wipe was queued (set exactly when `status` is not `Active`).
    pub wipe_requested_at: Option<Timestamp>,
    /// When the phone confirmed the wipe (set exactly when `status` is `Wiped`).
    pub wiped_at: Option<Timestamp>,
}

/// Everything provisioning a phone writes, in one transaction
/// ([`crate::Registry::provision_device`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProvisioning {
    /// The new phone (status `Active`).
    pub device: DeviceRecord,
    /// SHA-256 of the device's bearer token (32 bytes); the token itself is never stored.
    pub token_hash: Vec<u8>,
    /// The phone's certificates (each naming `device.id` and the holder).
    pub certs: Vec<CertRecord>,
    /// Status changes to apply with compare-and-set, normally revoking every
    /// live phone certificate of the holder as `superseded`.
    pub plan: Plan,
    /// Earlier phones of the holder to mark `superseded` with a wipe queued;
    /// each must be `Active` when the transaction runs.
    pub wipe: Vec<String>,
    /// The holder's notification contact, if the request set one.
    pub contact: Option<HolderContact>,
}

/// Why a wipe is asked for ([`crate::Registry::request_wipe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WipeReason {
    /// The phone was lost or stolen: an active phone becomes `Lost`.
    Lost,
    /// Any other remote wipe, or the phone retiring itself: an active phone
    /// becomes `WipePending`.
    Requested,
}

/// How to reach a holder with notifications.
///
/// The e-mail address is personal data: `Debug` redacts it, and it must
/// never be written to logs, errors or events.
#[derive(Clone, PartialEq, Eq)]
pub struct HolderContact {
    /// Whose contact it is.
    pub holder_id: String,
    /// Where to send e-mail notifications (3–254 bytes).
    pub email: Option<String>,
    /// Whether the holder wants e-mail notifications (needs `email`).
    pub notify_email: bool,
    /// When it was last set.
    pub updated_at: Timestamp,
}

impl core::fmt::Debug for HolderContact {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HolderContact")
            .field("holder_id", &self.holder_id)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("notify_email", &self.notify_email)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// One issued certificate and its current status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    /// Serial number (primary key; stored as upper-case hex).
    pub serial: Serial,
    /// Credential class; decides which CRL it appears on.
    pub class: CertClass,
    /// Whose certificate it is.
    pub holder_id: String,
    /// The card holding the key, for card classes.
    pub card_id: Option<String>,
    /// The phone holding the key, for phone classes.
    pub device_id: Option<String>,
    /// Current stored status. A stored `Active`/`Suspended` past `not_after`
    /// is expired in effect (see [`Credential::status_at`]).
    pub status: CertStatus,
    /// Set exactly when `status` is `Revoked` (never `CertificateHold`).
    pub reason: Option<RevocationReason>,
    /// When `status` last changed; `None` while it is still as issued.
    pub status_changed_at: Option<Timestamp>,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// CRL shard within the class.
    pub shard: u32,
    /// The credential this one was derived from (a phone certificate's card certificate).
    pub parent: Option<Serial>,
    /// The other half of a sign/auth pair issued together.
    pub pair: Option<Serial>,
    /// On renewal, or on the holder's next phone, the credential this one replaces.
    pub replaces: Option<Serial>,
    /// The certificate, DER-encoded.
    pub der: Vec<u8>,
    /// When it was issued.
    pub issued_at: Timestamp,
}

impl CertRecord {
    /// What the lifecycle planner needs to know about this certificate.
    pub fn credential(&self) -> Credential {
        Credential {
            serial: self.serial.clone(),
            class: self.class,
            status: self.status,
            not_after: self.not_after,
            parent: self.parent.clone(),
        }
    }
}

/// A relying party registered with the authority (may make linkage lookups).
///
/// Its bearer token is never stored: the registry keeps only its SHA-256
/// ([`crate::Registry::add_relying_party`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelyingPartyRecord {
    /// The authority's identifier (unique; keys the holder pseudonyms it sees).
    pub id: String,
    /// Unique display name (1–64 bytes), e.g. `"example-bank"`.
    pub name: String,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// Who did something recorded in the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An authority operator (窓口 staff or administrator), by operator id.
    Operator(String),
    /// The holder themself, by holder id.
    Holder(String),
    /// The authority acting on its own (expiry sweeps, CRL publication…).
    System,
    /// A registered relying party, by its name (e.g. a linkage lookup).
    RelyingParty(String),
}

impl Actor {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Operator(_) => "operator",
            Self::Holder(_) => "holder",
            Self::System => "system",
            Self::RelyingParty(_) => "relying_party",
        }
    }

    pub(crate) fn id(&self) -> Option<&str> {
        match self {
            Self::Operator(id) | Self::Holder(id) | Self::RelyingParty(id) => Some(id),
            Self::System => None,
        }
    }
}

/// One audit-trail entry: who did what, when, to which holder or certificate.
///
/// **Never put personal data in an event**: no name, address, birth date,
/// sex, PIN or 個人番号 in `action` or `detail`. The trail is kept longer and
/// read more widely than the holder table; refer to holders by id and to
/// certificates by serial. (A basic-four change is recorded as "changed",
/// not as old and new values.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: Actor,
    /// What was done, as a short code (`"enrol"`, `"revoke"`, `"suspend"`…).
    pub action: String,
    /// The holder concerned, if any.
    pub holder_id: Option<String>,
    /// The certificate concerned, if any.
    pub serial: Option<Serial>,
    /// Further non-personal detail (reason codes, request ids…), as JSON.
    pub detail: serde_json::Value,
}

/// Everything a first issuance writes, stored together or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolment {
    /// The new holder.
    pub holder: HolderRecord,
    /// The new card's id; the card's `created_at` is `holder.created_at`.
    pub card_id: String,
    /// The card's certificates (each must name `holder.id`).
    pub certificates: Vec<CertRecord>,
    /// Audit entries for the enrolment.
    pub events: Vec<Event>,
}

/// One entry of a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate.
    pub serial: Serial,
    /// When it was revoked or suspended.
    pub at: Timestamp,
    /// Why; a suspended certificate appears as `CertificateHold`.
    pub reason: RevocationReason,
}

/// One certificate's status, for warming an in-memory OCSP cache:
/// serial, class, stored status, reason (when revoked), and when the status
/// last changed.
pub type StatusRow = (
    Serial,
    CertClass,
    CertStatus,
    Option<RevocationReason>,
    Option<Timestamp>,
);

/// Counters of the group-commit writer behind [`crate::Registry::enrol`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Transactions the writer committed (or tried to).
    pub transactions: u64,
    /// Enrolments those transactions carried.
    pub enrolments: u64,
    /// The most enrolments carried by one transaction.
    pub largest_batch: u64,
}

/// Largest portrait kept with a mobile ID (the card face's photo limit).
pub const MAX_MDOC_PORTRAIT: usize = 24 * 1024;

/// A phone's mobile ID (ISO 18013-5 mdoc) at the authority: its index in
/// the Token Status List, the attested device key it is bound to, and the
/// portrait the holder brought from the card, if any (personal data: the
/// `Debug` output only says whether there is one).
#[derive(Clone, PartialEq, Eq)]
pub struct MdocRecord {
    /// Index in the status list.
    pub idx: u64,
    /// The phone.
    pub device_id: String,
    /// The device key (P-256 SubjectPublicKeyInfo, DER).
    pub device_key: Vec<u8>,
    /// When the index was allocated.
    pub created_at: Timestamp,
    /// The card face's photo (1 to [`MAX_MDOC_PORTRAIT`] bytes), if the
    /// holder brought it at provisioning.
    pub portrait: Option<Vec<u8>>,
}

impl core::fmt::Debug for MdocRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MdocRecord")
            .field("idx", &self.idx)
            .field("device_id", &self.device_id)
            .field("device_key", &self.device_key)
            .field("created_at", &self.created_at)
            .field(
                "portrait",
                &self.portrait.as_ref().map(|_| "<personal data>"),
            )
            .finish()
    }
}

/// What the status list is built from: one mobile ID, its phone's status
/// and how many of the phone's certificates are suspended or revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdocStatusRow {
    /// Index in the status list.
    pub idx: u64,
    /// The phone.
    pub device_id: String,
    /// The phone's status.
    pub device_status: DeviceStatus,
    /// The phone's suspended certificates.
    pub suspended: u64,
    /// The phone's revoked certificates.
    pub revoked: u64,
}

/// A revoked reader authentication certificate (issued by the reader CA to
/// a relying party's mdoc reader): one entry of the reader CA's CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderRevocation {
    /// The certificate's serial.
    pub serial: Serial,
    /// The relying party it was issued to.
    pub relying_party_id: String,
    /// Why (RFC 5280 CRLReason).
    pub reason: RevocationReason,
    /// When it was revoked.
    pub revoked_at: Timestamp,
    /// When the certificate expires (it leaves the CRL after that).
    pub not_after: Timestamp,
}
