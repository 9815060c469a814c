//! The holder's side of an ISO/IEC 18013-5 proximity presentation, sans-IO:
//! [`Presenter`] builds the DeviceEngagement (QR handover), answers the
//! reader's SessionEstablishment with an encrypted DeviceResponse, and
//! never releases an element that was not requested.
//!
//! Flow: [`Presenter::new`] → show [`Presenter::engagement_uri`] → feed the
//! reader's first message to [`Presenter::on_session_establishment`] → send
//! [`Reply::message`] back; later messages (a termination, or a further
//! request) go to [`Presenter::on_session_data`].
//!
//! What is released (§8.3.2.1.2, §7.2.5):
//!
//! * only elements both **requested** and **allowed** by the
//!   [`ConsentPolicy`]: [`ConsentPolicy::Auto`] releases what is requested
//!   except `individual_number_unicode` (the 個人番号, whose collection the
//!   My Number Act restricts) unless `release_individual_number` — and then
//!   only to an authenticated reader;
//!   [`ConsentPolicy::Ask`] asks a callback per element;
//! * `age_over_NN` by the nearest rule of ISO/IEC 18013-5 §7.2.5 (see
//!   [`nearest_age_over`]);
//! * requested elements not released are listed in the Document's `errors`
//!   with ErrorCode 0 ("data not returned"), never with a reason.
//!
//! A request for a docType the holder does not have gets, in a
//! DeviceResponse with `status` 0 (the response itself is well formed,
//! §8.3.2.1.2.3), a `documentErrors` entry `{docType: 0}` and no document
//! for it. A message that cannot be decrypted or decoded gets the
//! SessionData status 10 or 11 (§9.1.1.4) and ends the session.
//!
//! Device authentication (§9.1.3) is over DeviceAuthentication built from
//! the exact SessionTranscriptBytes of this session, with the MSO's device
//! key chosen by [`DeviceAuthKey`]: a signature (COSE_Sign1, ES256) through
//! the [`Signer`] holding it, or a MAC (COSE_Mac0, HMAC 256/256) with EMacKey
//! from ECDH of that key — through a [`KeyAgreement`], e.g. a secure
//! element — with the reader's ephemeral key (§9.1.3.5). EMacKey is derived
//! once per session. The device-signed name spaces are empty (`#6.24(h'a0')`).
//!
//! Reader authentication (§9.1.4, [`crate::reader_auth`]): every
//! DocRequest's readerAuth, when present, is checked against this session's
//! exact transcript and the ItemsRequestBytes received, and its certificate
//! against the trusted reader CAs ([`Presenter::trust_readers`]). Stricter
//! than the standard asks: a request whose readerAuth is present but
//! invalid is refused whole — a DeviceResponse with `status` 10 and no
//! document, then the session ends ([`Reply::error`] says why). The reader
//! counts as authenticated ([`ConsentRequest::reader`]) only when every
//! DocRequest for our docType is signed, all by the same certificate.
//!
//! Reader revocation, once enabled ([`Presenter::check_reader_revocation`]
//! with the reader CAs' CRLs): a signed request whose reader certificate is
//! on its CA's CRL is refused whole like any invalid readerAuth
//! ([`MdocError::ReaderCertificateRevoked`]); with no CRL, or a stale one,
//! the reader counts as not authenticated and
//! [`Presenter::revocation_not_checked`] says why.
//!
//! The individual number (`individual_number_unicode`) only ever goes to an
//! authenticated reader: under any policy, to an unauthenticated one it is
//! withheld without asking. [`ConsentPolicy::Auto`]'s
//! `require_authenticated_reader` extends this to other elements.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ciborium::Value;
use shomei_core::{RandomSource, SignatureAlgorithm, Signer, Timestamp};

use crate::cbor;
use crate::device_auth::{DeviceSigned, MAX_DEVICE_RESPONSE_LEN, MAX_DOCUMENTS, MacKey};
use crate::error::MdocError;
use crate::issuer::IssuerSigned;
use crate::jp;
use crate::mso::{DeviceKey, MobileSecurityObject};
use crate::reader_auth::{
    ReaderCrl, ReaderIdentity, ReaderRevocationStatus, TrustedReaderCas, authenticate_reader,
    check_reader_revocation,
};
use crate::request::{
    MAX_DOC_REQUESTS, MAX_ELEMENTS, MAX_NAME_SPACES, NameSpaces, parse_device_request,
};
use crate::session::{
    DeviceEngagement, EcPublicKey, EphemeralKey, Handover, KeyAgreement, RetrievalMethod, Role,
    SessionData, SessionEncryption, SessionKeys, SessionStatus, SessionTranscript,
    SessionTranscriptBytes, parse_session_data, parse_session_establishment,
};

/// The DeviceResponse version we write.
pub const DEVICE_RESPONSE_VERSION: &str = "1.0";
/// DeviceResponse status 0: OK (§8.3.2.1.2.3).
pub const STATUS_OK: u64 = 0;
/// DeviceResponse status 10: general error (§8.3.2.1.2.3) — what a request
/// with invalid reader authentication gets.
pub const STATUS_GENERAL_ERROR: u64 = 10;
/// ErrorCode 0: data not returned (§8.3.2.1.2.3, table 9).
pub const ERROR_DATA_NOT_RETURNED: i64 = 0;

// ------------------------------------------------------------------ keys

/// A P-256 ECDH key drawn from `rng` (deterministic under a test RNG).
pub fn ephemeral_key(rng: &mut dyn RandomSource) -> Result<EphemeralKey, MdocError> {
    for _ in 0..16 {
        let mut d = [0u8; 32];
        rng.fill(&mut d)?;
        if let Ok(k) = EphemeralKey::from_scalar(&d) {
            return Ok(k);
        }
    }
    Err(MdocError::Crypto("ephemeral key generation"))
}

// ------------------------------------------------------------------ age rule

/// `age_over_NN` → NN (exactly two ASCII digits).
pub fn parse_age_over(element: &str) -> Option<u8> {
    let nn = element.strip_prefix("age_over_")?;
    if nn.len() != 2 || !nn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    nn.parse().ok()
}

/// The ISO/IEC 18013-5 §7.2.5 rule (Annex D.2 table D.1): asked for
/// `age_over_NN`, with `held` the holder's thresholds and values,
///
/// 1. if `age_over_NN` is held, it is released (true or false);
/// 2. else the `age_over_MM` with the **smallest MM > NN whose value is
///    true** (it proves "at least NN" while saying the least);
/// 3. else the `age_over_MM` with the **largest MM < NN whose value is
///    false** (it proves "under NN" while saying the least);
/// 4. else nothing.
///
/// Returns the MM to release.
pub fn nearest_age_over(nn: u8, held: &BTreeMap<u8, bool>) -> Option<u8> {
    if held.contains_key(&nn) {
        return Some(nn);
    }
    held.range(nn..)
        .find(|(_, v)| **v)
        .or_else(|| held.range(..nn).rev().find(|(_, v)| !**v))
        .map(|(k, _)| *k)
}

// ------------------------------------------------------------------ consent

/// One element the holder is asked about.
#[derive(Clone, Copy, Debug)]
pub struct ConsentRequest<'a> {
    /// The document.
    pub doc_type: &'a str,
    /// The name space.
    pub namespace: &'a str,
    /// The element that would be released.
    pub element: &'a str,
    /// The element the reader asked for (differs from `element` when an
    /// `age_over_NN` is answered by the §7.2.5 rule).
    pub requested_as: &'a str,
    /// The reader's IntentToRetain.
    pub intent_to_retain: bool,
    /// The reader, when its request was authenticated (§9.1.4); `None`
    /// for an unauthenticated reader.
    pub reader: Option<&'a ReaderIdentity>,
}

/// The callback of [`ConsentPolicy::Ask`]: true releases the element.
pub type AskFn = Box<dyn FnMut(&ConsentRequest<'_>) -> bool + Send>;

/// Which requested elements the holder lets go.
pub enum ConsentPolicy {
    /// Everything requested, except the individual number unless
    /// `release_individual_number` (and then only to an authenticated
    /// reader), and except the elements of `require_authenticated_reader`
    /// when the reader is not authenticated.
    Auto {
        /// Release `individual_number_unicode` when it is requested by an
        /// authenticated reader.
        release_individual_number: bool,
        /// Element identifiers released only to an authenticated reader
        /// (the individual number always is, listed or not).
        require_authenticated_reader: Vec<String>,
    },
    /// The callback decides per element.
    Ask(AskFn),
}

impl ConsentPolicy {
    /// [`ConsentPolicy::Auto`] withholding the individual number.
    pub fn auto() -> Self {
        Self::Auto {
            release_individual_number: false,
            require_authenticated_reader: Vec::new(),
        }
    }

    fn allows(&mut self, q: &ConsentRequest<'_>) -> bool {
        let individual_number = q.element == jp::elements::INDIVIDUAL_NUMBER;
        if individual_number && q.reader.is_none() {
            return false;
        }
        match self {
            Self::Auto {
                release_individual_number,
                require_authenticated_reader,
            } => {
                (*release_individual_number || !individual_number)
                    && (q.reader.is_some()
                        || !require_authenticated_reader.iter().any(|e| e == q.element))
            }
            Self::Ask(f) => f(q),
        }
    }
}

impl fmt::Debug for ConsentPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto {
                release_individual_number,
                require_authenticated_reader,
            } => f
                .debug_struct("Auto")
                .field("release_individual_number", release_individual_number)
                .field("require_authenticated_reader", require_authenticated_reader)
                .finish(),
            Self::Ask(_) => f.write_str("Ask(..)"),
        }
    }
}

// ------------------------------------------------------------------ DeviceResponse

/// One Document of a DeviceResponse.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseDocument {
    /// `docType`.
    pub doc_type: String,
    /// `issuerSigned` (the disclosed subset and the MSO).
    pub issuer_signed: IssuerSigned,
    /// `deviceSigned`.
    pub device_signed: DeviceSigned,
    /// `errors`: name space → element → ErrorCode (empty when absent).
    pub errors: BTreeMap<String, BTreeMap<String, i64>>,
}

/// A DeviceResponse (§8.3.2.1.2.2).
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceResponse {
    /// `version` ("1.0").
    pub version: String,
    /// `documents`.
    pub documents: Vec<ResponseDocument>,
    /// `documentErrors`: docType → ErrorCode.
    pub document_errors: BTreeMap<String, i64>,
    /// `status`.
    pub status: u64,
}

fn issuer_signed_value(is: &IssuerSigned) -> Result<Value, MdocError> {
    let mut v = is.to_value()?;
    // IssuerNameSpaces is `{+ …}`: leave it out rather than send `{}`.
    if let Value::Map(m) = &mut v {
        m.retain(|(k, v)| {
            !(k == &Value::Text("nameSpaces".into()) && matches!(v, Value::Map(x) if x.is_empty()))
        });
    }
    Ok(v)
}

fn errors_value(errors: &BTreeMap<String, BTreeMap<String, i64>>) -> Value {
    Value::Map(
        errors
            .iter()
            .map(|(ns, els)| {
                (
                    Value::Text(ns.clone()),
                    Value::Map(
                        els.iter()
                            .map(|(e, c)| (Value::Text(e.clone()), Value::from(*c)))
                            .collect(),
                    ),
                )
            })
            .collect(),
    )
}

fn text_key(s: &str) -> Value {
    Value::Text(s.to_owned())
}

impl DeviceResponse {
    /// Encodes it (`documents`, `documentErrors` and `errors` only when
    /// non-empty).
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        let mut map = vec![(text_key("version"), Value::Text(self.version.clone()))];
        if !self.documents.is_empty() {
            let docs = self
                .documents
                .iter()
                .map(|d| {
                    let mut m = vec![
                        (text_key("docType"), Value::Text(d.doc_type.clone())),
                        (
                            text_key("issuerSigned"),
                            issuer_signed_value(&d.issuer_signed)?,
                        ),
                        (text_key("deviceSigned"), d.device_signed.to_value()),
                    ];
                    if !d.errors.is_empty() {
                        m.push((text_key("errors"), errors_value(&d.errors)));
                    }
                    Ok(Value::Map(m))
                })
                .collect::<Result<Vec<_>, MdocError>>()?;
            map.push((text_key("documents"), Value::Array(docs)));
        }
        if !self.document_errors.is_empty() {
            let errs = self
                .document_errors
                .iter()
                .map(|(t, c)| Value::Map(vec![(Value::Text(t.clone()), Value::from(*c))]))
                .collect();
            map.push((text_key("documentErrors"), Value::Array(errs)));
        }
        map.push((text_key("status"), Value::from(self.status)));
        cbor::encode(&Value::Map(map))
    }

    /// Parses a DeviceResponse within the crate's bounds.
    pub fn parse(bytes: &[u8]) -> Result<Self, MdocError> {
        let v = cbor::decode(bytes, MAX_DEVICE_RESPONSE_LEN, "DeviceResponse")?;
        let m = cbor::as_map(&v, "DeviceResponse")?;
        let version = cbor::get_text(m, "version")?
            .ok_or(MdocError::MalformedCbor("DeviceResponse version"))?;
        let version = cbor::as_text(version, "DeviceResponse version")?.to_owned();
        if !version.starts_with("1.") {
            return Err(MdocError::Unsupported("DeviceResponse version"));
        }
        let mut documents = Vec::new();
        if let Some(docs) = cbor::get_text(m, "documents")? {
            let docs = cbor::as_array(docs, "documents")?;
            if docs.len() > MAX_DOCUMENTS {
                return Err(MdocError::LimitExceeded("documents"));
            }
            for d in docs {
                documents.push(parse_document(d)?);
            }
        }
        let mut document_errors = BTreeMap::new();
        if let Some(errs) = cbor::get_text(m, "documentErrors")? {
            let errs = cbor::as_array(errs, "documentErrors")?;
            if errs.len() > MAX_DOC_REQUESTS {
                return Err(MdocError::LimitExceeded("documentErrors"));
            }
            for e in errs {
                for (k, c) in cbor::as_map(e, "DocumentError")? {
                    let k = cbor::as_text(k, "DocumentError docType")?.to_owned();
                    document_errors.insert(k, cbor::as_int(c, "ErrorCode")?);
                }
            }
        }
        let status = cbor::get_text(m, "status")?
            .ok_or(MdocError::MalformedCbor("DeviceResponse status"))?;
        let status = u64::try_from(cbor::as_int(status, "DeviceResponse status")?)
            .map_err(|_| MdocError::MalformedCbor("DeviceResponse status"))?;
        Ok(Self {
            version,
            documents,
            document_errors,
            status,
        })
    }
}

fn parse_document(d: &Value) -> Result<ResponseDocument, MdocError> {
    let dm = cbor::as_map(d, "Document")?;
    let doc_type =
        cbor::get_text(dm, "docType")?.ok_or(MdocError::MalformedCbor("Document docType"))?;
    let doc_type = cbor::as_text(doc_type, "docType")?.to_owned();
    let is = cbor::get_text(dm, "issuerSigned")?
        .ok_or(MdocError::MalformedCbor("Document issuerSigned"))?;
    let issuer_signed = IssuerSigned::from_value(is)?;
    let ds = cbor::get_text(dm, "deviceSigned")?
        .ok_or(MdocError::MalformedCbor("Document deviceSigned"))?;
    let device_signed = DeviceSigned::from_value(ds)?;
    let mut errors = BTreeMap::new();
    if let Some(errs) = cbor::get_text(dm, "errors")? {
        let errs = cbor::as_map(errs, "Errors")?;
        if errs.len() > MAX_NAME_SPACES {
            return Err(MdocError::LimitExceeded("Errors"));
        }
        for (ns, items) in errs {
            let ns = cbor::as_text(ns, "Errors name space")?.to_owned();
            let items = cbor::as_map(items, "ErrorItems")?;
            if items.len() > MAX_ELEMENTS {
                return Err(MdocError::LimitExceeded("ErrorItems"));
            }
            let mut out = BTreeMap::new();
            for (e, c) in items {
                out.insert(
                    cbor::as_text(e, "ErrorItems element")?.to_owned(),
                    cbor::as_int(c, "ErrorCode")?,
                );
            }
            errors.insert(ns, out);
        }
    }
    Ok(ResponseDocument {
        doc_type,
        issuer_signed,
        device_signed,
        errors,
    })
}

// ------------------------------------------------------------------ release

/// (name space, element identifier).
pub type Element = (String, String);

/// What the holder decided to release for one document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// (name space, element) released.
    pub released: BTreeSet<Element>,
    /// Requested but not released: name space → element → ErrorCode 0.
    pub withheld: BTreeMap<String, BTreeMap<String, i64>>,
}

/// Decides the release for `requested` against what `issuer_signed` holds
/// and `consent` (see the module docs), for `reader` (`None`:
/// unauthenticated). Pure apart from the callback.
pub fn decide_release(
    issuer_signed: &IssuerSigned,
    doc_type: &str,
    requested: &NameSpaces,
    consent: &mut ConsentPolicy,
    reader: Option<&ReaderIdentity>,
) -> Release {
    let mut out = Release::default();
    for (ns, elements) in requested {
        let held: BTreeSet<&str> = issuer_signed
            .name_spaces
            .get(ns)
            .map(|items| {
                items
                    .iter()
                    .map(|i| i.item().element_identifier.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let ages: BTreeMap<u8, bool> = issuer_signed
            .name_spaces
            .get(ns)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| {
                        let nn = parse_age_over(&i.item().element_identifier)?;
                        match i.item().element_value {
                            Value::Bool(b) => Some((nn, b)),
                            _ => None,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (element, retain) in elements {
            let candidate = if held.contains(element.as_str()) {
                Some(element.clone())
            } else {
                parse_age_over(element)
                    .and_then(|nn| nearest_age_over(nn, &ages))
                    .map(|mm| format!("age_over_{mm:02}"))
                    .filter(|e| held.contains(e.as_str()))
            };
            let released = candidate.filter(|c| {
                out.released.contains(&(ns.clone(), c.clone()))
                    || consent.allows(&ConsentRequest {
                        doc_type,
                        namespace: ns,
                        element: c,
                        requested_as: element,
                        intent_to_retain: *retain,
                        reader,
                    })
            });
            match released {
                Some(c) => {
                    out.released.insert((ns.clone(), c));
                }
                None => {
                    out.withheld
                        .entry(ns.clone())
                        .or_default()
                        .insert(element.clone(), ERROR_DATA_NOT_RETURNED);
                }
            }
        }
    }
    out
}

// ------------------------------------------------------------------ presenter

/// What to send back after a message, and what happened.
#[derive(Debug)]
pub struct Reply {
    /// The SessionData to send to the reader, if any.
    pub message: Option<Vec<u8>>,
    /// Elements released in this reply (name space, element).
    pub released: Vec<Element>,
    /// Why the session failed, if it did (the message then carries status
    /// 10 or 11).
    pub error: Option<MdocError>,
    /// Whether the session is over.
    pub ended: bool,
    /// The authenticated reader of the request answered, if it was.
    pub reader: Option<ReaderIdentity>,
}

/// How the holder authenticates with the MSO's device key (§9.1.3).
#[derive(Clone, Copy)]
pub enum DeviceAuthKey<'a> {
    /// deviceSignature: ES256 through the key's [`Signer`].
    Signature(&'a dyn Signer),
    /// deviceMac: HMAC-SHA256 with EMacKey, from ECDH of the key (through
    /// [`KeyAgreement`], never exported) with the reader's ephemeral key.
    /// (`Sync`, so that a presenter can be moved to another thread.)
    Mac(&'a (dyn KeyAgreement + Sync)),
}

impl fmt::Debug for DeviceAuthKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signature(_) => "DeviceAuthKey::Signature(..)",
            Self::Mac(_) => "DeviceAuthKey::Mac(..)",
        })
    }
}

impl DeviceAuthKey<'_> {
    /// The public key (as the MSO binds it), checked to be P-256.
    fn device_key(&self) -> Result<DeviceKey, MdocError> {
        match self {
            Self::Signature(s) => {
                if s.algorithm() != SignatureAlgorithm::EcdsaP256Sha256 {
                    return Err(MdocError::Unsupported("device key: P-256 only"));
                }
                DeviceKey::from_spki(s.public_key_spki())
            }
            Self::Mac(k) => DeviceKey::from_uncompressed(&k.public_key().uncompressed()),
        }
    }
}

/// The holder's presentation state machine (one session).
pub struct Presenter<'a> {
    issuer_signed: IssuerSigned,
    doc_type: String,
    device_auth: DeviceAuthKey<'a>,
    /// EMacKey of this session (MAC mode), derived at the first response.
    mac_key: Option<MacKey>,
    /// The reader's ephemeral key, once the session is established.
    e_reader_key: Option<EcPublicKey>,
    consent: ConsentPolicy,
    ephemeral: EphemeralKey,
    engagement: DeviceEngagement,
    session: Option<(SessionEncryption, SessionTranscriptBytes)>,
    closed: bool,
    reader_trust: TrustedReaderCas,
    /// The reader CAs' CRLs, when revocation is checked.
    reader_crls: Option<Vec<ReaderCrl>>,
    /// Why the last request's reader revocation could not be checked.
    revocation_not_checked: Option<&'static str>,
    /// When reader certificates are checked.
    now: Timestamp,
    /// The reader of the last request answered, if authenticated.
    reader: Option<ReaderIdentity>,
}

impl fmt::Debug for Presenter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presenter")
            .field("doc_type", &self.doc_type)
            .field("consent", &self.consent)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<'a> Presenter<'a> {
    /// A presenter for the IssuerSigned `issuer_signed` (CBOR) of
    /// `doc_type`, authenticating with `device_key` (P-256, the MSO's
    /// device key), with an engagement without retrieval methods.
    pub fn new(
        issuer_signed: &[u8],
        doc_type: &str,
        device_key: &'a dyn Signer,
        consent: ConsentPolicy,
        rng: &mut dyn RandomSource,
        now: Timestamp,
    ) -> Result<Self, MdocError> {
        Self::with_retrieval_methods(
            issuer_signed,
            doc_type,
            device_key,
            consent,
            Vec::new(),
            rng,
            now,
        )
    }

    /// As [`Presenter::new`], advertising `methods` in the engagement.
    /// Refuses a document whose MSO is not for `doc_type`, not bound to
    /// `device_key`, or not valid at `now` (a phone does not show an
    /// expired ID).
    pub fn with_retrieval_methods(
        issuer_signed: &[u8],
        doc_type: &str,
        device_key: &'a dyn Signer,
        consent: ConsentPolicy,
        methods: Vec<RetrievalMethod>,
        rng: &mut dyn RandomSource,
        now: Timestamp,
    ) -> Result<Self, MdocError> {
        Self::with_device_auth(
            issuer_signed,
            doc_type,
            DeviceAuthKey::Signature(device_key),
            consent,
            methods,
            rng,
            now,
        )
    }

    /// As [`Presenter::with_retrieval_methods`], authenticating by
    /// signature or by MAC as `device_auth` says (same refusals: the key
    /// must be the P-256 key the MSO is bound to).
    pub fn with_device_auth(
        issuer_signed: &[u8],
        doc_type: &str,
        device_auth: DeviceAuthKey<'a>,
        consent: ConsentPolicy,
        methods: Vec<RetrievalMethod>,
        rng: &mut dyn RandomSource,
        now: Timestamp,
    ) -> Result<Self, MdocError> {
        let device_key = device_auth.device_key()?;
        let issuer_signed = IssuerSigned::from_cbor(issuer_signed)?;
        let payload = issuer_signed
            .issuer_auth
            .payload
            .as_deref()
            .ok_or(MdocError::MalformedCbor("issuerAuth without payload"))?;
        let mso = MobileSecurityObject::from_tagged_bytes(payload)?;
        if mso.doc_type != doc_type {
            return Err(MdocError::DocTypeMismatch);
        }
        if device_key != mso.device_key {
            return Err(MdocError::Invalid(
                "the device key is not the one the MSO is bound to",
            ));
        }
        mso.validity.check(now)?;
        let ephemeral = ephemeral_key(rng)?;
        let engagement = DeviceEngagement::build(&ephemeral.public_key(), methods)?;
        Ok(Self {
            issuer_signed,
            doc_type: doc_type.to_owned(),
            device_auth,
            mac_key: None,
            e_reader_key: None,
            consent,
            ephemeral,
            engagement,
            session: None,
            closed: false,
            reader_trust: TrustedReaderCas::default(),
            reader_crls: None,
            revocation_not_checked: None,
            now,
            reader: None,
        })
    }

    /// Trusts these reader CAs for reader authentication, checking reader
    /// certificates' validity at `now` (without a call: no CA is trusted,
    /// so any signed request is refused as [`MdocError::UntrustedReader`]).
    pub fn trust_readers(&mut self, trust: TrustedReaderCas, now: Timestamp) {
        self.reader_trust = trust;
        self.now = now;
    }

    /// Checks reader certificates against these CRLs of the trusted reader
    /// CAs (verified, e.g. with [`ReaderCrl::verify`]; may be empty). Then
    /// a revoked reader's request is refused whole
    /// ([`MdocError::ReaderCertificateRevoked`]), and a reader whose CA has
    /// no CRL here, or only one past nextUpdate +
    /// [`crate::reader_auth::READER_CRL_GRACE`], is not authenticated (see
    /// [`Presenter::revocation_not_checked`]). Without a call, revocation
    /// is not checked.
    pub fn check_reader_revocation(&mut self, crls: Vec<ReaderCrl>) {
        self.reader_crls = Some(crls);
    }

    /// Why the signed last request's reader was taken as not authenticated
    /// because its revocation could not be checked (no CRL, stale CRL).
    pub fn revocation_not_checked(&self) -> Option<&'static str> {
        self.revocation_not_checked
    }

    /// The authenticated reader of the last request answered.
    pub fn reader(&self) -> Option<&ReaderIdentity> {
        self.reader.as_ref()
    }

    /// The DeviceEngagement.
    pub fn engagement(&self) -> &DeviceEngagement {
        &self.engagement
    }

    /// The `mdoc:` URI for the QR code.
    pub fn engagement_uri(&self) -> String {
        self.engagement.to_uri()
    }

    /// The SessionTranscriptBytes, once the session is established.
    pub fn session_transcript(&self) -> Option<&SessionTranscriptBytes> {
        self.session.as_ref().map(|(_, t)| t)
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn fail(&mut self, e: MdocError) -> Reply {
        self.closed = true;
        let message = match &mut self.session {
            Some((enc, _)) => enc.report(&e).encode().ok(),
            None => SessionData::status(SessionStatus::for_error(&e))
                .encode()
                .ok(),
        };
        Reply {
            message,
            released: Vec::new(),
            error: Some(e),
            ended: true,
            reader: None,
        }
    }

    /// Refuses a request whose reader authentication failed: a
    /// DeviceResponse with status 10 (general error) and nothing in it,
    /// then the session is over.
    fn refuse(&mut self, e: MdocError) -> Reply {
        let refusal = DeviceResponse {
            version: DEVICE_RESPONSE_VERSION.into(),
            documents: Vec::new(),
            document_errors: BTreeMap::new(),
            status: STATUS_GENERAL_ERROR,
        };
        let sealed = match &mut self.session {
            Some((enc, _)) => refusal
                .encode()
                .and_then(|r| enc.seal(&r))
                .and_then(|m| m.encode()),
            None => Err(MdocError::SessionClosed),
        };
        match sealed {
            Ok(message) => {
                self.closed = true;
                self.reader = None;
                Reply {
                    message: Some(message),
                    released: Vec::new(),
                    error: Some(e),
                    ended: true,
                    reader: None,
                }
            }
            Err(_) => self.fail(e),
        }
    }

    /// Handles the reader's SessionEstablishment: derives the session keys,
    /// decrypts the DeviceRequest and answers it. Only one per presenter
    /// ([`MdocError::SessionClosed`] otherwise).
    pub fn on_session_establishment(&mut self, bytes: &[u8]) -> Result<Reply, MdocError> {
        if self.closed || self.session.is_some() {
            return Err(MdocError::SessionClosed);
        }
        let establishment = match parse_session_establishment(bytes) {
            Ok(e) => e,
            Err(e) => return Ok(self.fail(e)),
        };
        let transcript =
            match SessionTranscript::new(&self.engagement, &establishment, Handover::Qr)
                .to_bytes()
                .and_then(|t| {
                    SessionKeys::derive(&self.ephemeral, establishment.e_reader_key(), &t)
                        .map(|k| (k, t))
                }) {
                Ok(x) => x,
                Err(e) => return Ok(self.fail(e)),
            };
        let (keys, transcript) = transcript;
        self.e_reader_key = Some(establishment.e_reader_key().clone());
        let mut enc = SessionEncryption::new(Role::Device, keys);
        let request = enc.open_establishment(&establishment);
        self.session = Some((enc, transcript));
        match request {
            Ok(request) => Ok(self.answer(&request)),
            Err(e) => Ok(self.fail(e)),
        }
    }

    /// Handles a later SessionData: a termination ends the session; a
    /// further DeviceRequest is answered like the first.
    pub fn on_session_data(&mut self, bytes: &[u8]) -> Result<Reply, MdocError> {
        if self.closed {
            return Err(MdocError::SessionClosed);
        }
        let Some((enc, _)) = &mut self.session else {
            return Err(MdocError::Invalid("no session established yet"));
        };
        let inbound = match parse_session_data(bytes).and_then(|m| enc.open(&m)) {
            Ok(i) => i,
            Err(e) => return Ok(self.fail(e)),
        };
        if inbound.status.is_some() {
            self.closed = true;
        }
        match inbound.data {
            Some(request) if !self.closed => Ok(self.answer(&request)),
            _ => Ok(Reply {
                message: None,
                released: Vec::new(),
                error: inbound
                    .status
                    .filter(|s| *s != SessionStatus::Termination)
                    .map(|s| MdocError::PeerError { status: s.code() }),
                ended: self.closed,
                reader: None,
            }),
        }
    }

    fn answer(&mut self, request: &[u8]) -> Reply {
        match self.build_response(request) {
            Ok((response, released)) => {
                let sealed = match &mut self.session {
                    Some((enc, _)) => enc.seal(&response).and_then(|m| m.encode()),
                    None => Err(MdocError::SessionClosed),
                };
                match sealed {
                    Ok(message) => Reply {
                        message: Some(message),
                        released,
                        error: None,
                        ended: false,
                        reader: self.reader.clone(),
                    },
                    Err(e) => self.fail(e),
                }
            }
            Err(e) if e.is_reader_auth() => self.refuse(e),
            Err(e) => self.fail(e),
        }
    }

    /// DeviceSigned for this session's transcript, by signature or MAC.
    fn device_signed(
        &mut self,
        transcript: &SessionTranscriptBytes,
    ) -> Result<DeviceSigned, MdocError> {
        match self.device_auth {
            DeviceAuthKey::Signature(signer) => {
                DeviceSigned::sign(signer, transcript, &self.doc_type, vec![0xa0])
            }
            DeviceAuthKey::Mac(static_key) => {
                let key = match self.mac_key.take() {
                    Some(k) => k,
                    None => {
                        let e_reader =
                            self.e_reader_key.as_ref().ok_or(MdocError::SessionClosed)?;
                        MacKey::derive(static_key, e_reader, transcript)?
                    }
                };
                let ds = DeviceSigned::mac_with_key(&key, transcript, &self.doc_type, vec![0xa0]);
                self.mac_key = Some(key);
                ds
            }
        }
    }

    /// Whether this presenter authenticates by MAC (else by signature).
    pub fn authenticates_by_mac(&self) -> bool {
        matches!(self.device_auth, DeviceAuthKey::Mac(_))
    }

    /// The DeviceResponse for a decrypted DeviceRequest.
    fn build_response(&mut self, request: &[u8]) -> Result<(Vec<u8>, Vec<Element>), MdocError> {
        let request = parse_device_request(request)?;
        let transcript = self
            .session
            .as_ref()
            .map(|(_, t)| t.clone())
            .ok_or(MdocError::SessionClosed)?;
        // Reader authentication first: any readerAuth present must verify
        // (else the whole request is refused); the reader is authenticated
        // for our document only if all its DocRequests are signed by one
        // certificate.
        let mut readers: Vec<Option<ReaderIdentity>> = Vec::new();
        let mut not_checked = None;
        for r in &request.doc_requests {
            let identity = match &r.reader_auth {
                Some(ra) => Some(authenticate_reader(
                    ra,
                    &transcript,
                    &r.items_request_bytes,
                    &self.reader_trust,
                    self.now,
                )?),
                None => None,
            };
            // A revoked reader refuses the whole request; one whose
            // revocation is unknown is not authenticated.
            let identity = match (identity, &self.reader_crls) {
                (Some(id), Some(crls)) => match check_reader_revocation(&id, crls, self.now)? {
                    ReaderRevocationStatus::Good => Some(id),
                    ReaderRevocationStatus::NotChecked(why) => {
                        not_checked = Some(why);
                        None
                    }
                },
                (identity, _) => identity,
            };
            if r.items_request.doc_type == self.doc_type {
                readers.push(identity);
            }
        }
        self.revocation_not_checked = not_checked;
        self.reader = match readers.split_first() {
            Some((Some(first), rest))
                if rest.iter().all(|r| {
                    r.as_ref()
                        .is_some_and(|r| r.certificate == first.certificate)
                }) =>
            {
                Some(first.clone())
            }
            _ => None,
        };
        // All requests for our docType together; the others are errors.
        let mut wanted = NameSpaces::new();
        let mut document_errors = BTreeMap::new();
        for r in &request.doc_requests {
            if r.items_request.doc_type == self.doc_type {
                for (ns, els) in &r.items_request.name_spaces {
                    let entry = wanted.entry(ns.clone()).or_default();
                    for (e, retain) in els {
                        let v = entry.entry(e.clone()).or_insert(false);
                        *v |= *retain;
                    }
                }
            } else {
                document_errors.insert(r.items_request.doc_type.clone(), ERROR_DATA_NOT_RETURNED);
            }
        }
        let mut documents = Vec::new();
        let mut released = Vec::new();
        if !wanted.is_empty() {
            let release = decide_release(
                &self.issuer_signed,
                &self.doc_type,
                &wanted,
                &mut self.consent,
                self.reader.as_ref(),
            );
            let disclosed = self
                .issuer_signed
                .disclose(|ns, el| release.released.contains(&(ns.to_owned(), el.to_owned())));
            let device_signed = self.device_signed(&transcript)?;
            released = release.released.into_iter().collect();
            documents.push(ResponseDocument {
                doc_type: self.doc_type.clone(),
                issuer_signed: disclosed,
                device_signed,
                errors: release.withheld,
            });
        }
        let response = DeviceResponse {
            version: DEVICE_RESPONSE_VERSION.into(),
            documents,
            document_errors,
            status: STATUS_OK,
        };
        Ok((response.encode()?, released))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(pairs: &[(u8, bool)]) -> BTreeMap<u8, bool> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn age_over_exact_match_wins() {
        let h = held(&[(18, true), (20, false), (21, false)]);
        assert_eq!(nearest_age_over(20, &h), Some(20));
        assert_eq!(nearest_age_over(18, &h), Some(18));
    }

    #[test]
    fn age_over_nearest_true_above() {
        // 25 years old: asked 19 → smallest true ≥ 19 is 20 (not 25).
        let h = held(&[(18, true), (20, true), (21, true), (25, true), (60, false)]);
        assert_eq!(nearest_age_over(19, &h), Some(20));
        assert_eq!(nearest_age_over(22, &h), Some(25));
    }

    #[test]
    fn age_over_nearest_false_below() {
        // 19 years old holding 18 true, 21 false; asked 20 (absent): no
        // true at or above 20, no false below 20 → nothing (21 false would
        // not prove "under 20").
        let h = held(&[(18, true), (21, false)]);
        assert_eq!(nearest_age_over(20, &h), None);
        // 17 years old: asked 20 → no true above; 18 false below → 18.
        let h = held(&[(16, true), (18, false), (21, false)]);
        assert_eq!(nearest_age_over(20, &h), Some(18));
        // Asked 17: nothing true above, 16 below is true → nothing.
        assert_eq!(nearest_age_over(17, &h), None);
    }

    #[test]
    fn age_over_names() {
        assert_eq!(parse_age_over("age_over_20"), Some(20));
        assert_eq!(parse_age_over("age_over_05"), Some(5));
        assert_eq!(parse_age_over("age_over_100"), None);
        assert_eq!(parse_age_over("age_over_2"), None);
        assert_eq!(parse_age_over("age_over_+1"), None);
        assert_eq!(parse_age_over("age_in_years"), None);
    }

    #[test]
    fn auto_policy_withholds_the_individual_number() {
        let mut p = ConsentPolicy::auto();
        let reader = ReaderIdentity {
            common_name: Some("shop".into()),
            organization: None,
            certificate: Vec::new(),
        };
        let q = |e, reader| ConsentRequest {
            doc_type: jp::DOC_TYPE,
            namespace: jp::NS_JP,
            element: e,
            requested_as: e,
            intent_to_retain: false,
            reader,
        };
        assert!(!p.allows(&q(jp::elements::INDIVIDUAL_NUMBER, None)));
        assert!(!p.allows(&q(jp::elements::INDIVIDUAL_NUMBER, Some(&reader))));
        assert!(p.allows(&q(jp::elements::FULL_NAME, None)));
        let mut p = ConsentPolicy::Auto {
            release_individual_number: true,
            require_authenticated_reader: vec![jp::elements::FULL_NAME.into()],
        };
        assert!(p.allows(&q(jp::elements::INDIVIDUAL_NUMBER, Some(&reader))));
        assert!(!p.allows(&q(jp::elements::INDIVIDUAL_NUMBER, None)));
        assert!(!p.allows(&q(jp::elements::FULL_NAME, None)));
        assert!(p.allows(&q(jp::elements::FULL_NAME, Some(&reader))));
        assert!(p.allows(&q(jp::elements::PORTRAIT, None)));
        let mut ask = ConsentPolicy::Ask(Box::new(|_| true));
        assert!(!ask.allows(&q(jp::elements::INDIVIDUAL_NUMBER, None)));
        assert!(ask.allows(&q(jp::elements::INDIVIDUAL_NUMBER, Some(&reader))));
    }

    #[test]
    fn device_response_parse_rejects_garbage() {
        assert!(DeviceResponse::parse(&[]).is_err());
        assert!(DeviceResponse::parse(&[0xa0]).is_err());
        let ok = DeviceResponse {
            version: "1.0".into(),
            documents: Vec::new(),
            document_errors: [("x.y".to_owned(), 0)].into_iter().collect(),
            status: 0,
        };
        let bytes = ok.encode().unwrap();
        assert_eq!(DeviceResponse::parse(&bytes).unwrap(), ok);
    }
}
