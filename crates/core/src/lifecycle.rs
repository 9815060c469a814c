//! Credential lifecycle rules, as a pure state machine.
//!
//! ```text
//!            suspend            revoke
//!   Active ───────────▶ Suspended ──────▶ Revoked (final)
//!     ▲  ◀─────────────     │
//!     │       resume        │ expire
//!     └── revoke / expire ──┴──────────▶ Expired (final)
//! ```
//!
//! Cascades are planned here too, as data ([`Plan`]), and applied atomically
//! by the registry:
//! * revoking a credential revokes every credential derived from it (a card's
//!   certificates → the phone certificates made from them), transitively;
//! * a change of any basic-four item revokes every signing-class credential
//!   of the holder (reason `affiliationChanged`) and leaves authentication ones;
//! * renewal revokes the old credential (reason `superseded`) and its
//!   descendants; the registry links old to new.
//!
//! Suspension does not cascade: a suspended card certificate leaves the phone
//! usable (the phone is a separate device the holder still has).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Serial, Timestamp};

/// The two JPKI trust roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Root {
    /// 署名用 (digital signature) root.
    Sign,
    /// 利用者証明用 (user authentication) root.
    Auth,
}

impl Root {
    /// Short name used in URLs and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sign => "sign",
            Self::Auth => "auth",
        }
    }
}

/// Credential classes, each with its own status list (公的個人認証法 keeps
/// card and mobile-device certificates apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertClass {
    /// 個人番号カード用署名用電子証明書.
    CardSign,
    /// 個人番号カード用利用者証明用電子証明書.
    CardAuth,
    /// 移動端末設備用署名用電子証明書.
    PhoneSign,
    /// 移動端末設備用利用者証明用電子証明書.
    PhoneAuth,
}

impl CertClass {
    /// Every class, in a fixed order.
    pub const ALL: [Self; 4] = [
        Self::CardSign,
        Self::CardAuth,
        Self::PhoneSign,
        Self::PhoneAuth,
    ];

    /// The root that issues this class.
    pub fn root(self) -> Root {
        match self {
            Self::CardSign | Self::PhoneSign => Root::Sign,
            Self::CardAuth | Self::PhoneAuth => Root::Auth,
        }
    }

    /// Whether the certificate carries the basic four (signing classes do).
    pub fn carries_basic_four(self) -> bool {
        self.root() == Root::Sign
    }

    /// Whether it lives on a phone.
    pub fn is_phone(self) -> bool {
        matches!(self, Self::PhoneSign | Self::PhoneAuth)
    }

    /// Short name used in URLs, file names and the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardSign => "card-sign",
            Self::CardAuth => "card-auth",
            Self::PhoneSign => "phone-sign",
            Self::PhoneAuth => "phone-auth",
        }
    }
}

impl FromStr for CertClass {
    type Err = LifecycleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(LifecycleError::UnknownClass)
    }
}

/// CRL reason codes (RFC 5280 §5.3.1), named as in the JSON API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    /// 0
    Unspecified,
    /// 1
    KeyCompromise,
    /// 2
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// 3: a basic-four item changed.
    AffiliationChanged,
    /// 4: renewed, or replaced by a new phone.
    Superseded,
    /// 5: no longer needed.
    CessationOfOperation,
    /// 6: on hold (used on CRLs for suspended certificates).
    CertificateHold,
    /// 9
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The RFC 5280 `CRLReason` code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    /// From the RFC 5280 code.
    pub fn from_code(code: u8) -> Option<Self> {
        [
            Self::Unspecified,
            Self::KeyCompromise,
            Self::CaCompromise,
            Self::AffiliationChanged,
            Self::Superseded,
            Self::CessationOfOperation,
            Self::CertificateHold,
            Self::PrivilegeWithdrawn,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The JSON name (`keyCompromise`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
}

impl FromStr for RevocationReason {
    type Err = LifecycleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        (0..=10)
            .filter_map(Self::from_code)
            .find(|r| r.as_str() == s)
            .ok_or(LifecycleError::UnknownReason)
    }
}

/// Status of one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    /// Good.
    Active,
    /// On hold; may be resumed.
    Suspended,
    /// Final.
    Revoked,
    /// Past notAfter. Final.
    Expired,
}

impl CertStatus {
    /// Revoked and expired are final.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Revoked | Self::Expired)
    }

    /// Registry spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for CertStatus {
    type Err = LifecycleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Active, Self::Suspended, Self::Revoked, Self::Expired]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(LifecycleError::UnknownStatus)
    }
}

/// What someone asks to happen to one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Put on hold.
    Suspend,
    /// Lift a hold.
    Resume,
    /// End for good.
    Revoke(RevocationReason),
    /// Mark as past its notAfter.
    Expire,
}

/// A refused lifecycle step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The credential is revoked or expired: nothing more can happen to it.
    Final {
        /// Its final status.
        status: CertStatus,
    },
    /// Suspending something already suspended.
    AlreadySuspended,
    /// Resuming something that is not suspended.
    NotSuspended,
    /// `certificateHold` is how suspension is published, not a revocation reason.
    HoldIsNotRevocation,
    /// The serial is not in the set the plan was asked about.
    UnknownSerial,
    /// Not a known credential class.
    UnknownClass,
    /// Not a known status.
    UnknownStatus,
    /// Not a known revocation reason.
    UnknownReason,
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Final { status } => {
                write!(f, "certificate is {} and cannot change", status.as_str())
            }
            Self::AlreadySuspended => f.write_str("certificate is already suspended"),
            Self::NotSuspended => f.write_str("certificate is not suspended"),
            Self::HoldIsNotRevocation => {
                f.write_str("certificateHold is not a revocation reason: suspend instead")
            }
            Self::UnknownSerial => f.write_str("no such certificate"),
            Self::UnknownClass => f.write_str("unknown certificate class"),
            Self::UnknownStatus => f.write_str("unknown certificate status"),
            Self::UnknownReason => f.write_str("unknown revocation reason"),
        }
    }
}

impl std::error::Error for LifecycleError {}

/// The transition function: where `action` takes a credential in `status`.
pub fn transition(status: CertStatus, action: Action) -> Result<CertStatus, LifecycleError> {
    use CertStatus::*;
    if status.is_final() {
        return Err(LifecycleError::Final { status });
    }
    match (status, action) {
        (_, Action::Revoke(RevocationReason::CertificateHold)) => {
            Err(LifecycleError::HoldIsNotRevocation)
        }
        (Active, Action::Suspend) => Ok(Suspended),
        (Suspended, Action::Suspend) => Err(LifecycleError::AlreadySuspended),
        (Suspended, Action::Resume) => Ok(Active),
        (Active, Action::Resume) => Err(LifecycleError::NotSuspended),
        (Active | Suspended, Action::Revoke(_)) => Ok(Revoked),
        (Active | Suspended, Action::Expire) => Ok(Expired),
        (Revoked | Expired, _) => Err(LifecycleError::Final { status }),
    }
}

/// What the planner needs to know about one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Its serial.
    pub serial: Serial,
    /// Its class.
    pub class: CertClass,
    /// Its current status as stored.
    pub status: CertStatus,
    /// Its notAfter.
    pub not_after: Timestamp,
    /// The credential it was derived from (a phone certificate's card certificate).
    pub parent: Option<Serial>,
}

impl Credential {
    /// The status as of `now`: a stored active or suspended credential past
    /// its notAfter is expired.
    pub fn status_at(&self, now: Timestamp) -> CertStatus {
        if !self.status.is_final() && now > self.not_after {
            CertStatus::Expired
        } else {
            self.status
        }
    }
}

/// One status change the registry must apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// Which credential.
    pub serial: Serial,
    /// Status before.
    pub from: CertStatus,
    /// Status after.
    pub to: CertStatus,
    /// Set when `to` is `Revoked`.
    pub reason: Option<RevocationReason>,
}

/// A set of changes to apply together, or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, the requested one first.
    pub changes: Vec<StatusChange>,
}

impl Plan {
    /// Plans `action` on `target` with its cascades, over the holder's
    /// credentials `all` (which must contain `target`).
    pub fn for_action(
        all: &[Credential],
        target: &Serial,
        action: Action,
        now: Timestamp,
    ) -> Result<Self, LifecycleError> {
        let cred = all
            .iter()
            .find(|c| &c.serial == target)
            .ok_or(LifecycleError::UnknownSerial)?;
        let from = cred.status_at(now);
        let to = transition(from, action)?;
        let reason = match action {
            Action::Revoke(r) => Some(r),
            _ => None,
        };
        let mut plan = Plan {
            changes: vec![StatusChange {
                serial: target.clone(),
                from,
                to,
                reason,
            }],
        };
        if let Action::Revoke(r) = action {
            plan.revoke_descendants(all, target, r, now);
        }
        Ok(plan)
    }

    /// Plans a change of the holder's basic four: every live signing-class
    /// credential is revoked with `affiliationChanged`; authentication ones stay.
    pub fn for_basic_four_change(all: &[Credential], now: Timestamp) -> Self {
        let mut plan = Plan::default();
        for c in all.iter().filter(|c| c.class.carries_basic_four()) {
            plan.push_revoke(c, RevocationReason::AffiliationChanged, now);
        }
        plan
    }

    /// Plans revoking every live credential of a card (and so everything
    /// derived from it), e.g. when the card itself is reported lost for good.
    pub fn for_card_revocation(
        card_credentials: &[Credential],
        all: &[Credential],
        reason: RevocationReason,
        now: Timestamp,
    ) -> Self {
        let mut plan = Plan::default();
        for c in card_credentials {
            plan.push_revoke(c, reason, now);
            plan.revoke_descendants(all, &c.serial, reason, now);
        }
        plan
    }

    /// Plans renewal of `old`: it and its descendants are revoked as `superseded`.
    pub fn for_renewal(
        all: &[Credential],
        old: &Serial,
        now: Timestamp,
    ) -> Result<Self, LifecycleError> {
        Self::for_action(all, old, Action::Revoke(RevocationReason::Superseded), now)
    }

    fn revoke_descendants(
        &mut self,
        all: &[Credential],
        root: &Serial,
        reason: RevocationReason,
        now: Timestamp,
    ) {
        let mut frontier = vec![root.clone()];
        while let Some(parent) = frontier.pop() {
            for child in all.iter().filter(|c| c.parent.as_ref() == Some(&parent)) {
                if self.push_revoke(child, reason, now) {
                    frontier.push(child.serial.clone());
                }
            }
        }
    }

    /// Adds a revocation of `c` unless it is final or already planned.
    fn push_revoke(&mut self, c: &Credential, reason: RevocationReason, now: Timestamp) -> bool {
        let from = c.status_at(now);
        if from.is_final() || self.changes.iter().any(|ch| ch.serial == c.serial) {
            return false;
        }
        self.changes.push(StatusChange {
            serial: c.serial.clone(),
            from,
            to: CertStatus::Revoked,
            reason: Some(reason),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const STATUSES: [CertStatus; 4] = [
        CertStatus::Active,
        CertStatus::Suspended,
        CertStatus::Revoked,
        CertStatus::Expired,
    ];

    fn actions() -> Vec<Action> {
        let mut v = vec![Action::Suspend, Action::Resume, Action::Expire];
        v.extend(
            (0..=10)
                .filter_map(RevocationReason::from_code)
                .map(Action::Revoke),
        );
        v
    }

    /// Every (status, action) pair, against the table written out by hand.
    #[test]
    fn transition_table_is_exhaustive() {
        use CertStatus::*;
        for s in STATUSES {
            for a in actions() {
                let got = transition(s, a);
                let want = match (s, a) {
                    (Revoked | Expired, _) => Err(LifecycleError::Final { status: s }),
                    (_, Action::Revoke(RevocationReason::CertificateHold)) => {
                        Err(LifecycleError::HoldIsNotRevocation)
                    }
                    (Active, Action::Suspend) => Ok(Suspended),
                    (Suspended, Action::Suspend) => Err(LifecycleError::AlreadySuspended),
                    (Suspended, Action::Resume) => Ok(Active),
                    (Active, Action::Resume) => Err(LifecycleError::NotSuspended),
                    (_, Action::Revoke(_)) => Ok(Revoked),
                    (_, Action::Expire) => Ok(Expired),
                };
                assert_eq!(got, want, "{s:?} + {a:?}");
            }
        }
    }

    #[test]
    fn final_states_accept_nothing() {
        for s in [CertStatus::Revoked, CertStatus::Expired] {
            assert!(actions().into_iter().all(|a| transition(s, a).is_err()));
        }
    }

    fn cred(n: u8, class: CertClass, parent: Option<u8>) -> Credential {
        Credential {
            serial: Serial::from_be_bytes(&[n]).unwrap(),
            class,
            status: CertStatus::Active,
            not_after: datetime!(2030-01-01 0:00 UTC),
            parent: parent.map(|p| Serial::from_be_bytes(&[p]).unwrap()),
        }
    }

    fn s(n: u8) -> Serial {
        Serial::from_be_bytes(&[n]).unwrap()
    }

    const NOW: Timestamp = datetime!(2026-11-21 0:00 UTC);

    fn holder() -> Vec<Credential> {
        vec![
            cred(1, CertClass::CardSign, None),
            cred(2, CertClass::CardAuth, None),
            cred(3, CertClass::PhoneSign, Some(1)),
            cred(4, CertClass::PhoneAuth, Some(2)),
        ]
    }

    #[test]
    fn revoking_card_certificate_revokes_derived_phone_certificate() {
        let plan = Plan::for_action(
            &holder(),
            &s(1),
            Action::Revoke(RevocationReason::KeyCompromise),
            NOW,
        )
        .unwrap();
        let serials: Vec<_> = plan.changes.iter().map(|c| c.serial.clone()).collect();
        assert_eq!(serials, vec![s(1), s(3)]);
        assert!(
            plan.changes.iter().all(|c| c.to == CertStatus::Revoked
                && c.reason == Some(RevocationReason::KeyCompromise))
        );
    }

    #[test]
    fn suspension_does_not_cascade() {
        let plan = Plan::for_action(&holder(), &s(1), Action::Suspend, NOW).unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].to, CertStatus::Suspended);
    }

    #[test]
    fn card_revocation_ends_every_credential() {
        let all = holder();
        let plan =
            Plan::for_card_revocation(&all[..2], &all, RevocationReason::CessationOfOperation, NOW);
        assert_eq!(plan.changes.len(), 4);
    }

    #[test]
    fn basic_four_change_revokes_signing_only() {
        let plan = Plan::for_basic_four_change(&holder(), NOW);
        let serials: Vec<_> = plan.changes.iter().map(|c| c.serial.clone()).collect();
        assert_eq!(serials, vec![s(1), s(3)]);
        assert!(
            plan.changes
                .iter()
                .all(|c| c.reason == Some(RevocationReason::AffiliationChanged))
        );
    }

    #[test]
    fn renewal_supersedes_old_and_descendants() {
        let plan = Plan::for_renewal(&holder(), &s(2), NOW).unwrap();
        assert_eq!(plan.changes.len(), 2);
        assert!(
            plan.changes
                .iter()
                .all(|c| c.reason == Some(RevocationReason::Superseded))
        );
    }

    #[test]
    fn expired_credentials_are_final_and_skipped_by_cascades() {
        let mut all = holder();
        all[2].not_after = datetime!(2020-01-01 0:00 UTC);
        assert_eq!(all[2].status_at(NOW), CertStatus::Expired);
        let plan = Plan::for_action(
            &all,
            &s(1),
            Action::Revoke(RevocationReason::Unspecified),
            NOW,
        )
        .unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            Plan::for_action(&all, &s(3), Action::Suspend, NOW),
            Err(LifecycleError::Final {
                status: CertStatus::Expired
            })
        );
    }

    #[test]
    fn revoked_parent_with_already_revoked_child_plans_no_duplicate() {
        let mut all = holder();
        all[2].status = CertStatus::Revoked;
        let plan = Plan::for_action(
            &all,
            &s(1),
            Action::Revoke(RevocationReason::Unspecified),
            NOW,
        )
        .unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            Plan::for_action(&all, &s(9), Action::Suspend, NOW),
            Err(LifecycleError::UnknownSerial)
        );
    }

    #[test]
    fn reason_names_round_trip() {
        for code in 0..=10 {
            if let Some(r) = RevocationReason::from_code(code) {
                assert_eq!(r.as_str().parse::<RevocationReason>().unwrap(), r);
                assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            }
        }
        assert!("removeFromCRL".parse::<RevocationReason>().is_err());
    }
}
