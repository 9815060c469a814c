//! Key attestation: Shōmei's certificate extensions, and the verifier the
//! authority runs before it certifies a phone key.
//!
//! # Chain
//!
//! `[key attestation certificate, device attestation certificate,
//! manufacturer root]`, leaf first. The manufacturer root is a self-signed
//! CA; the device certificate is a CA with `pathLen 0` made at manufacture
//! time for one device's attestation key; the key certificate's subject key
//! is the attested key, and it carries the key description below.
//!
//! # Object identifiers
//!
//! `1.3.6.1.4.1.55555` is a **placeholder** private-enterprise arc used as
//! Shōmei's: it is not registered to this project and must be replaced by a
//! real IANA PEN before anything leaves the lab.
//!
//! * `1.3.6.1.4.1.55555.1.1` — key description (non-critical, in the key
//!   attestation certificate):
//!
//! ```asn1
//! ShomeiKeyDescription ::= SEQUENCE {
//!     version           INTEGER (1),
//!     challenge         OCTET STRING (SIZE (0..128)),  -- the authority's nonce
//!     deviceId          OCTET STRING (SIZE (16)),
//!     keyKind           ENUMERATED { rsa2048 (1), ecP256 (2) },
//!     origin            ENUMERATED { generatedInside (1), imported (2) },
//!     exportable        BOOLEAN,                       -- FALSE: no API exports it
//!     unlockGate        ENUMERATED { authPin (1), signPassword (2) },
//!     biometricAllowed  BOOLEAN,                       -- only with authPin
//!     presenceAllowed   [0] IMPLICIT BOOLEAN DEFAULT FALSE
//!                                                      -- only with authPin
//! }
//! ```
//!
//! `presenceAllowed` (a user-presence confirmation unlocks the key,
//! [`KeyPolicy::MDOC_PRESENCE`]) came later: descriptions without it read as
//! before, and, as DER requires of a DEFAULT, it is written only when TRUE
//! (an encoded FALSE is refused).
//!
//! * `1.3.6.1.4.1.55555.1.2` — device identity (non-critical, in the device
//!   attestation certificate): `ShomeiDeviceId ::= OCTET STRING (SIZE (16))`.

use core::fmt;

use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode, Enumerated, Sequence};
use shomei_core::Timestamp;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

use crate::{DeviceId, GateId, KeyKind, KeyPolicy, MAX_CHALLENGE_LEN};

/// Shōmei's placeholder private arc (see the module documentation).
pub const SHOMEI_ARC: &str = "1.3.6.1.4.1.55555";
/// The key description extension.
pub const KEY_DESCRIPTION_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55555.1.1");
/// The device identity extension.
pub const DEVICE_ID_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.55555.1.2");
/// [`KEY_DESCRIPTION_OID`] as arcs (for rcgen).
pub const KEY_DESCRIPTION_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1, 1];
/// [`DEVICE_ID_OID`] as arcs (for rcgen).
pub const DEVICE_ID_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 55555, 1, 2];

/// Longest chain the verifier reads.
pub const MAX_CHAIN_LEN: usize = 5;
/// Largest certificate the verifier reads.
pub const MAX_CERT_LEN: usize = 16 * 1024;

const KEY_DESCRIPTION_VERSION: u8 = 1;
const ID_CE_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const ID_CE_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");

/// What the key description extension says about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescription {
    /// The attestation challenge given at creation.
    pub challenge: Vec<u8>,
    /// The device holding the key.
    pub device_id: DeviceId,
    /// Algorithm.
    pub kind: KeyKind,
    /// Unlock policy.
    pub policy: KeyPolicy,
    /// Generated inside the element (not imported).
    pub generated_inside: bool,
    /// Whether any API can export the private key.
    pub exportable: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u8)]
enum KindAsn1 {
    Rsa2048 = 1,
    EcP256 = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u8)]
enum OriginAsn1 {
    GeneratedInside = 1,
    Imported = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u8)]
enum GateAsn1 {
    AuthPin = 1,
    SignPassword = 2,
}

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct KeyDescriptionAsn1 {
    version: u8,
    challenge: OctetString,
    device_id: OctetString,
    key_kind: KindAsn1,
    origin: OriginAsn1,
    exportable: bool,
    unlock_gate: GateAsn1,
    biometric_allowed: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    presence_allowed: Option<bool>,
}

impl KeyDescription {
    /// DER of the extension value.
    pub fn to_der(&self) -> Result<Vec<u8>, AttestationError> {
        if self.challenge.len() > MAX_CHALLENGE_LEN {
            return Err(AttestationError::BadExtension(
                "challenge longer than 128 bytes".into(),
            ));
        }
        let bad = |e: der::Error| AttestationError::BadExtension(e.to_string());
        KeyDescriptionAsn1 {
            version: KEY_DESCRIPTION_VERSION,
            challenge: OctetString::new(self.challenge.clone()).map_err(bad)?,
            device_id: OctetString::new(self.device_id.as_bytes().to_vec()).map_err(bad)?,
            key_kind: match self.kind {
                KeyKind::Rsa2048 => KindAsn1::Rsa2048,
                KeyKind::EcP256 => KindAsn1::EcP256,
            },
            origin: if self.generated_inside {
                OriginAsn1::GeneratedInside
            } else {
                OriginAsn1::Imported
            },
            exportable: self.exportable,
            unlock_gate: match self.policy.gate() {
                GateId::AuthPin => GateAsn1::AuthPin,
                GateId::SignPassword => GateAsn1::SignPassword,
            },
            biometric_allowed: self.policy.biometric_allowed(),
            presence_allowed: self.policy.presence_allowed().then_some(true),
        }
        .to_der()
        .map_err(bad)
    }

    /// Reads the extension value (strict DER, version 1).
    pub fn from_der(der: &[u8]) -> Result<Self, AttestationError> {
        let bad = |m: String| AttestationError::BadExtension(m);
        let a = KeyDescriptionAsn1::from_der(der).map_err(|e| bad(e.to_string()))?;
        if a.version != KEY_DESCRIPTION_VERSION {
            return Err(bad(format!("unknown version {}", a.version)));
        }
        if a.challenge.as_bytes().len() > MAX_CHALLENGE_LEN {
            return Err(bad("challenge longer than 128 bytes".into()));
        }
        let device_id = <[u8; 16]>::try_from(a.device_id.as_bytes())
            .map_err(|_| bad("device id is not 16 bytes".into()))?;
        let gate = match a.unlock_gate {
            GateAsn1::AuthPin => GateId::AuthPin,
            GateAsn1::SignPassword => GateId::SignPassword,
        };
        let presence = match a.presence_allowed {
            None => false,
            Some(true) => true,
            // DER: a DEFAULT value is never encoded.
            Some(false) => return Err(bad("presenceAllowed FALSE must be absent".into())),
        };
        let policy = KeyPolicy::new(gate, a.biometric_allowed)
            .map_err(|_| bad("biometric allowed for the signing password".into()))?;
        let policy = KeyPolicy::with_presence(gate, policy.biometric_allowed(), presence)
            .map_err(|_| bad("presence allowed for the signing password".into()))?;
        Ok(Self {
            challenge: a.challenge.as_bytes().to_vec(),
            device_id: DeviceId::from_bytes(device_id),
            kind: match a.key_kind {
                KindAsn1::Rsa2048 => KeyKind::Rsa2048,
                KindAsn1::EcP256 => KeyKind::EcP256,
            },
            policy,
            generated_inside: a.origin == OriginAsn1::GeneratedInside,
            exportable: a.exportable,
        })
    }
}

/// DER of the device identity extension value.
pub fn device_id_der(id: &DeviceId) -> Result<Vec<u8>, AttestationError> {
    OctetString::new(id.as_bytes().to_vec())
        .and_then(|o| o.to_der())
        .map_err(|e| AttestationError::BadExtension(e.to_string()))
}

/// Reads the device identity extension value.
pub fn device_id_from_der(der: &[u8]) -> Result<DeviceId, AttestationError> {
    let o = OctetString::from_der(der)
        .map_err(|e| AttestationError::BadExtension(format!("device id: {e}")))?;
    <[u8; 16]>::try_from(o.as_bytes())
        .map(DeviceId::from_bytes)
        .map_err(|_| AttestationError::BadExtension("device id is not 16 bytes".into()))
}

/// What a verified attestation proves about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestedKey {
    /// The device holding it.
    pub device_id: DeviceId,
    /// Algorithm.
    pub kind: KeyKind,
    /// Which gate unlocks it, and whether a biometric may.
    pub policy: KeyPolicy,
}

/// Why an attestation was refused. Positions count in the certification
/// path: 0 is the key's certificate; a trusted root the chain did not
/// include is appended last.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationError {
    /// The chain's shape is wrong (what).
    BadChain(&'static str),
    /// A certificate is not well-formed DER (position, parser detail).
    Malformed {
        /// Position in the path.
        position: usize,
        /// Parser detail, safe to show.
        detail: String,
    },
    /// The chain ends at no trusted manufacturer root.
    UntrustedRoot,
    /// The certificate at `position` is not signed by the next one.
    BadSignature {
        /// Position in the path.
        position: usize,
    },
    /// The certificate at `position` issues certificates but is no CA (or
    /// its keyUsage lacks keyCertSign, or its path length is exceeded).
    NotACa {
        /// Position in the path.
        position: usize,
    },
    /// The key's certificate is itself a CA.
    LeafIsCa,
    /// The certificate at `position` marks an extension critical that the verifier does not know.
    UnknownCriticalExtension {
        /// Position in the path.
        position: usize,
    },
    /// The certificate at `position` is not valid yet at `now`.
    NotYetValid {
        /// Position in the path.
        position: usize,
    },
    /// The certificate at `position` has expired at `now`.
    Expired {
        /// Position in the path.
        position: usize,
    },
    /// The attested key is not the expected one.
    KeyMismatch,
    /// A Shōmei extension is missing (which).
    MissingExtension(&'static str),
    /// A Shōmei extension is malformed (detail).
    BadExtension(String),
    /// The challenge is not the one the authority issued.
    ChallengeMismatch,
    /// The key was not generated inside the element.
    NotGeneratedInside,
    /// The key is marked exportable.
    Exportable,
    /// The key description's algorithm is not the key's.
    KindMismatch,
    /// The key description's device is not the device certificate's.
    DeviceMismatch,
}

impl fmt::Display for AttestationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadChain(m) => write!(f, "attestation chain: {m}"),
            Self::Malformed { position, detail } => {
                write!(
                    f,
                    "attestation certificate {position} is malformed: {detail}"
                )
            }
            Self::UntrustedRoot => {
                f.write_str("attestation chain does not end at a trusted manufacturer root")
            }
            Self::BadSignature { position } => write!(
                f,
                "attestation certificate {position} is not signed by its issuer in the chain"
            ),
            Self::NotACa { position } => write!(
                f,
                "attestation certificate {position} is not allowed to issue certificates"
            ),
            Self::LeafIsCa => f.write_str("the key attestation certificate is a CA"),
            Self::UnknownCriticalExtension { position } => write!(
                f,
                "attestation certificate {position} has an unknown critical extension"
            ),
            Self::NotYetValid { position } => {
                write!(f, "attestation certificate {position} is not valid yet")
            }
            Self::Expired { position } => {
                write!(f, "attestation certificate {position} has expired")
            }
            Self::KeyMismatch => f.write_str("the attestation is for another key"),
            Self::MissingExtension(which) => write!(f, "attestation lacks the {which} extension"),
            Self::BadExtension(m) => write!(f, "malformed attestation extension: {m}"),
            Self::ChallengeMismatch => f.write_str("the attestation binds another challenge"),
            Self::NotGeneratedInside => {
                f.write_str("the key was not generated inside the secure element")
            }
            Self::Exportable => f.write_str("the key is exportable"),
            Self::KindMismatch => f.write_str("the attested key algorithm does not match the key"),
            Self::DeviceMismatch => {
                f.write_str("the key attestation names another device than its issuer")
            }
        }
    }
}

impl std::error::Error for AttestationError {}

/// Verifies a key attestation chain (leaf first) against the manufacturer
/// roots the authority trusts, for the key `expected_spki` (DER
/// SubjectPublicKeyInfo) and the challenge the authority issued.
///
/// Checks: every certificate is signed by the next (aws-lc-rs, through
/// [`shomei_pki::cms::check_issued_by`]); the chain ends at (or is issued
/// by) a trusted root; issuers are CAs with keyCertSign within their path
/// length; the leaf is not a CA; no unknown critical extension; every
/// certificate (root included) is valid at `now`; the leaf certifies exactly
/// `expected_spki`; its key description binds `expected_challenge`, says
/// "generated inside" and "not exportable", names the key's algorithm and
/// the device of the device certificate (position 1). Pure: no IO, no clock.
pub fn verify_attestation(
    chain: &[Vec<u8>],
    manufacturer_roots: &[Vec<u8>],
    expected_spki: &[u8],
    expected_challenge: &[u8],
    now: Timestamp,
) -> Result<AttestedKey, AttestationError> {
    if chain.len() < 2 {
        return Err(AttestationError::BadChain(
            "needs at least the key's and the device's certificates",
        ));
    }
    if chain.len() > MAX_CHAIN_LEN {
        return Err(AttestationError::BadChain("too many certificates"));
    }
    let mut path: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let last = path[path.len() - 1];
    if !manufacturer_roots.iter().any(|r| r.as_slice() == last) {
        let root = manufacturer_roots
            .iter()
            .find(|r| shomei_pki::cms::check_issued_by(last, r).is_ok())
            .ok_or(AttestationError::UntrustedRoot)?;
        path.push(root);
    }
    let certs = path
        .iter()
        .enumerate()
        .map(|(position, der)| parse(position, der))
        .collect::<Result<Vec<_>, _>>()?;

    for (position, pair) in path.windows(2).enumerate() {
        shomei_pki::cms::check_issued_by(pair[0], pair[1])
            .map_err(|_| AttestationError::BadSignature { position })?;
    }
    let now_secs = i128::from(now.unix_timestamp());
    for (position, cert) in certs.iter().enumerate() {
        check_extensions_known(position, cert)?;
        let validity = &cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| i128::from(t.to_unix_duration().as_secs());
        if now_secs < secs(validity.not_before) {
            return Err(AttestationError::NotYetValid { position });
        }
        if now_secs > secs(validity.not_after) {
            return Err(AttestationError::Expired { position });
        }
        let constraints = basic_constraints(position, cert)?;
        if position == 0 {
            if constraints.is_some_and(|b| b.ca) {
                return Err(AttestationError::LeafIsCa);
            }
            continue;
        }
        // An issuer: CA, keyCertSign, and at most pathLen CAs below it
        // (position - 1 of them, the leaf not counting).
        let ok_ca = constraints.is_some_and(|b| {
            b.ca && b
                .path_len_constraint
                .is_none_or(|n| usize::from(n) >= position - 1)
        });
        let ok_usage = key_usage(position, cert)?.is_none_or(|ku| ku.key_cert_sign());
        if !(ok_ca && ok_usage) {
            return Err(AttestationError::NotACa { position });
        }
    }

    let leaf = &certs[0];
    let leaf_spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| malformed(0, e))?;
    let expected = spki::SubjectPublicKeyInfoRef::from_der(expected_spki)
        .and_then(|s| s.to_der())
        .map_err(|_| AttestationError::KeyMismatch)?;
    if leaf_spki != expected {
        return Err(AttestationError::KeyMismatch);
    }
    let description = KeyDescription::from_der(extension(leaf, KEY_DESCRIPTION_OID).ok_or(
        AttestationError::MissingExtension("key description (1.3.6.1.4.1.55555.1.1)"),
    )?)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(&description.challenge, expected_challenge)
        .is_err()
    {
        return Err(AttestationError::ChallengeMismatch);
    }
    if !description.generated_inside {
        return Err(AttestationError::NotGeneratedInside);
    }
    if description.exportable {
        return Err(AttestationError::Exportable);
    }
    if spki_kind(&leaf_spki) != Some(description.kind) {
        return Err(AttestationError::KindMismatch);
    }
    let device = device_id_from_der(extension(&certs[1], DEVICE_ID_OID).ok_or(
        AttestationError::MissingExtension("device identity (1.3.6.1.4.1.55555.1.2)"),
    )?)?;
    if device != description.device_id {
        return Err(AttestationError::DeviceMismatch);
    }
    Ok(AttestedKey {
        device_id: description.device_id,
        kind: description.kind,
        policy: description.policy,
    })
}

fn parse(position: usize, der: &[u8]) -> Result<Certificate, AttestationError> {
    if der.len() > MAX_CERT_LEN {
        return Err(AttestationError::Malformed {
            position,
            detail: "certificate larger than 16 KiB".into(),
        });
    }
    Certificate::from_der(der).map_err(|e| malformed(position, e))
}

fn malformed(position: usize, e: impl fmt::Display) -> AttestationError {
    AttestationError::Malformed {
        position,
        detail: e.to_string(),
    }
}

fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    cert.tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn check_extensions_known(position: usize, cert: &Certificate) -> Result<(), AttestationError> {
    let unknown_critical = cert
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|e| {
            e.critical && e.extn_id != ID_CE_BASIC_CONSTRAINTS && e.extn_id != ID_CE_KEY_USAGE
        });
    if unknown_critical {
        Err(AttestationError::UnknownCriticalExtension { position })
    } else {
        Ok(())
    }
}

fn basic_constraints(
    position: usize,
    cert: &Certificate,
) -> Result<Option<BasicConstraints>, AttestationError> {
    extension(cert, ID_CE_BASIC_CONSTRAINTS)
        .map(|v| BasicConstraints::from_der(v).map_err(|e| malformed(position, e)))
        .transpose()
}

fn key_usage(position: usize, cert: &Certificate) -> Result<Option<KeyUsage>, AttestationError> {
    extension(cert, ID_CE_KEY_USAGE)
        .map(|v| KeyUsage::from_der(v).map_err(|e| malformed(position, e)))
        .transpose()
}

fn spki_kind(spki_der: &[u8]) -> Option<KeyKind> {
    use const_oid::db::rfc5912;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if info.algorithm.oid == rfc5912::RSA_ENCRYPTION {
        shomei_pki::csr::check_rsa_2048(spki_der)
            .ok()
            .map(|()| KeyKind::Rsa2048)
    } else if info.algorithm.oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        (curve == Some(rfc5912::SECP_256_R_1)).then_some(KeyKind::EcP256)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_description_round_trips_and_is_strict() {
        let d = KeyDescription {
            challenge: b"nonce".to_vec(),
            device_id: DeviceId::from_bytes([3; 16]),
            kind: KeyKind::Rsa2048,
            policy: KeyPolicy::PHONE_AUTH,
            generated_inside: true,
            exportable: false,
        };
        let der = d.to_der().unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(KeyDescription::from_der(&der).unwrap(), d);
        // Trailing garbage, truncation, and the forbidden sign+biometric policy.
        let mut long = der.clone();
        long.push(0);
        assert!(KeyDescription::from_der(&long).is_err());
        assert!(KeyDescription::from_der(&der[..der.len() - 1]).is_err());
        let mut forbidden = der.clone();
        // unlockGate is the second-to-last element: ENUMERATED 01 -> 02.
        let n = forbidden.len();
        assert_eq!(&forbidden[n - 6..n - 3], &[0x0a, 0x01, 0x01]);
        forbidden[n - 4] = 2;
        assert!(matches!(
            KeyDescription::from_der(&forbidden),
            Err(AttestationError::BadExtension(_))
        ));
        let id = DeviceId::from_bytes([9; 16]);
        assert_eq!(
            device_id_from_der(&device_id_der(&id).unwrap()).unwrap(),
            id
        );
    }

    #[test]
    fn presence_flag_is_backward_compatible_and_strict() {
        let mut d = KeyDescription {
            challenge: b"nonce".to_vec(),
            device_id: DeviceId::from_bytes([3; 16]),
            kind: KeyKind::EcP256,
            policy: KeyPolicy::PHONE_AUTH,
            generated_inside: true,
            exportable: false,
        };
        let old = d.to_der().unwrap();
        // Without presence the encoding ends with biometricAllowed, as before.
        assert_eq!(&old[old.len() - 3..], &[0x01, 0x01, 0xff]);
        d.policy = KeyPolicy::MDOC_PRESENCE;
        let new = d.to_der().unwrap();
        // [0] IMPLICIT BOOLEAN TRUE appended; the outer length grows by 3.
        assert_eq!(&new[new.len() - 3..], &[0x80, 0x01, 0xff]);
        assert_eq!(&new[..new.len() - 3][2..], &old[2..]);
        assert_eq!(KeyDescription::from_der(&new).unwrap(), d);
        assert_eq!(
            KeyDescription::from_der(&old).unwrap().policy,
            KeyPolicy::PHONE_AUTH
        );
        // An encoded FALSE (a DEFAULT written out) is refused.
        let mut explicit_false = new.clone();
        let n = explicit_false.len();
        explicit_false[n - 1] = 0x00;
        assert!(matches!(
            KeyDescription::from_der(&explicit_false),
            Err(AttestationError::BadExtension(_))
        ));
        // Presence with the signing password is refused.
        let mut sign = new.clone();
        let n = sign.len();
        assert_eq!(&sign[n - 9..n - 6], &[0x0a, 0x01, 0x01]);
        sign[n - 7] = 2;
        sign[n - 4] = 0x00; // biometricAllowed FALSE, so only presence is wrong
        assert!(matches!(
            KeyDescription::from_der(&sign),
            Err(AttestationError::BadExtension(m)) if m.contains("presence")
        ));
        // Another tag in its place is refused.
        let mut other_tag = new;
        let n = other_tag.len();
        other_tag[n - 3] = 0x81;
        assert!(KeyDescription::from_der(&other_tag).is_err());
    }

    #[test]
    fn short_and_long_chains_are_refused() {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            verify_attestation(&[vec![0x30]], &[], b"", b"", now),
            Err(AttestationError::BadChain(
                "needs at least the key's and the device's certificates"
            ))
        );
        let chain = vec![vec![0x30, 0x00]; 6];
        assert_eq!(
            verify_attestation(&chain, &[], b"", b"", now),
            Err(AttestationError::BadChain("too many certificates"))
        );
        let chain = vec![vec![0x30, 0x00]; 2];
        assert_eq!(
            verify_attestation(&chain, &[vec![1]], b"", b"", now),
            Err(AttestationError::UntrustedRoot)
        );
    }
}
