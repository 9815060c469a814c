//! Object identifiers used by the JPKI profiles (arcs as `u64` lists for rcgen,
//! and as `const_oid::ObjectIdentifier` for parsing).

use const_oid::ObjectIdentifier;

/// `jpki-pd-commonName` 氏名 (1.2.392.200149.8.5.5.1).
pub const PD_COMMON_NAME: &[u64] = &[1, 2, 392, 200149, 8, 5, 5, 1];
/// `jpki-pd-substituteCharacterOfCommonName` (…5.5.2).
pub const PD_SUBST_COMMON_NAME: &[u64] = &[1, 2, 392, 200149, 8, 5, 5, 2];
/// `jpki-pd-gender` (…5.5.3).
pub const PD_GENDER: &[u64] = &[1, 2, 392, 200149, 8, 5, 5, 3];
/// `jpki-pd-dateOfBirth` (…5.5.4), `EYYYYMMDD`.
pub const PD_DATE_OF_BIRTH: &[u64] = &[1, 2, 392, 200149, 8, 5, 5, 4];
/// `jpki-pd-address` (…5.5.5).
pub const PD_ADDRESS: &[u64] = &[1, 2, 392, 200149, 8, 5, 5, 5];
/// `jpki-pd-substituteCharacterOfAddress` (…5.5.6).
pub const PD_SUBST_ADDRESS: &[u64] = &[1, 2, 392, 200149, 8, 5, 5, 6];

/// The same six, parsed.
pub const PD_COMMON_NAME_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.1");
/// …5.5.2
pub const PD_SUBST_COMMON_NAME_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.2");
/// …5.5.3
pub const PD_GENDER_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.3");
/// …5.5.4
pub const PD_DATE_OF_BIRTH_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.4");
/// …5.5.5
pub const PD_ADDRESS_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.5");
/// …5.5.6
pub const PD_SUBST_ADDRESS_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.5.6");

/// JPKI signing certificate policy (class 20), 1.2.392.200149.8.5.1.1.20.
pub const POLICY_SIGN: &[u64] = &[1, 2, 392, 200149, 8, 5, 1, 1, 20];
/// JPKI authentication policy (auth-class30), 1.2.392.200149.8.5.1.3.30 (unconfirmed on a real card).
pub const POLICY_AUTH: &[u64] = &[1, 2, 392, 200149, 8, 5, 1, 3, 30];
/// Shōmei's own arc for mobile-device classes (private enterprise style, ours):
/// the phone signing policy. Real JPKI's mobile policy OIDs are not public.
pub const POLICY_PHONE_SIGN: &[u64] = &[1, 2, 392, 200149, 8, 5, 1, 1, 40];
/// Phone authentication policy (see [`POLICY_PHONE_SIGN`]).
pub const POLICY_PHONE_AUTH: &[u64] = &[1, 2, 392, 200149, 8, 5, 1, 3, 40];

/// id-pe-authorityInfoAccess.
pub const AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ce-certificatePolicies.
pub const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
/// id-ce-issuerAltName.
pub const ISSUER_ALT_NAME: &[u64] = &[2, 5, 29, 18];
/// id-pkix-ocsp-nocheck.
pub const OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];
/// id-kp-OCSPSigning.
pub const KP_OCSP_SIGNING: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 9];
