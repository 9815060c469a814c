//! The mdoc reader's side of an ISO/IEC 18013-5 proximity presentation,
//! sans-IO: [`Reader`] turns a DeviceEngagement (QR) and the items to ask
//! for into the SessionEstablishment, then decrypts and verifies the
//! answer into a [`VerifiedPresentation`].
//!
//! For the one requested document [`verify_device_response`] checks:
//!
//! 1. DeviceResponse `status` 0; a `documentErrors` entry or no document
//!    for the requested docType is [`MdocError::UnknownDocType`], and so is
//!    any document of another docType (nothing unasked is accepted);
//! 2. issuer data authentication by [`verify_issuer_signed`]: the DS
//!    certificate chains to a trusted IACA, the MSO signature, the MSO's
//!    docType, every disclosed element's digest, the validity window at
//!    `now`, and the status list when given;
//! 3. mdoc authentication over DeviceAuthentication built from **this
//!    session's exact SessionTranscriptBytes**: a signature with the MSO's
//!    device key, or a MAC with EMacKey (ECDH of our ephemeral key and the
//!    device key);
//! 4. every disclosed element was requested; an `age_over_MM` answering a
//!    requested `age_over_NN` is accepted only where the §7.2.5 rule allows
//!    it (MM > NN with value true, MM < NN with value false);
//! 5. device-signed name spaces must be empty (Shōmei documents carry all
//!    data issuer-signed; device-signed values are not trusted here).
//!
//! With a [`ReaderAuthKey`] ([`Reader::new_authenticated`]) the
//! DocRequest carries readerAuth (§9.1.4), signed through the reader's
//! [`shomei_core::Signer`].
//!
//! Session messages go through [`SessionEncryption`]: a replayed,
//! reordered, reflected or foreign message fails with
//! [`MdocError::Replayed`], [`MdocError::OutOfOrder`],
//! [`MdocError::WrongSessionKey`] or [`MdocError::DecryptionFailed`], and
//! ends the session.

use std::collections::BTreeMap;
use std::fmt;

use ciborium::Value;
use shomei_core::{RandomSource, Timestamp};

use crate::device_auth::DeviceAuth;
use crate::error::MdocError;
use crate::issuer::{StatusCheck, StatusOutcome, TrustedIacas, verify_issuer_signed};
use crate::mso::{MobileSecurityObject, StatusRef, ValidityInfo};
use crate::present::{DeviceResponse, STATUS_OK, ephemeral_key, parse_age_over};
use crate::reader_auth::{ReaderAuthKey, sign_reader_auth};
use crate::request::{DeviceRequest, DocRequest, ItemsRequest};
use crate::session::{
    DeviceEngagement, EphemeralKey, Handover, KeyAgreement, Role, SessionEncryption, SessionKeys,
    SessionStatus, SessionTranscript, SessionTranscriptBytes, parse_device_engagement,
    parse_device_engagement_uri, parse_session_data,
};

/// How the mdoc authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceAuthKind {
    /// deviceSignature (COSE_Sign1).
    Signature,
    /// deviceMac (COSE_Mac0).
    Mac,
}

impl DeviceAuthKind {
    /// `"signature"` or `"mac"` (the CLI's JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Mac => "mac",
        }
    }
}

/// A document that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPresentation {
    /// The docType.
    pub doc_type: String,
    /// Verified elements: name space → element → value.
    pub items: BTreeMap<String, BTreeMap<String, Value>>,
    /// How the mdoc authenticated.
    pub device_auth: DeviceAuthKind,
    /// What the status check found.
    pub status: StatusOutcome,
    /// The MSO's validity window.
    pub validity: ValidityInfo,
}

/// Whether `element` with `value` in `namespace` may be disclosed for
/// `request` (directly requested, or an §7.2.5 age substitute).
fn allowed(request: &ItemsRequest, namespace: &str, element: &str, value: &Value) -> bool {
    if request.is_requested(namespace, element) {
        return true;
    }
    let (Some(mm), Value::Bool(b)) = (parse_age_over(element), value) else {
        return false;
    };
    request.name_spaces.get(namespace).is_some_and(|els| {
        els.keys()
            .filter_map(|e| parse_age_over(e))
            .any(|nn| if *b { mm > nn } else { mm < nn })
    })
}

/// Verifies a decrypted DeviceResponse against `request` and the session
/// (see the module docs). `e_reader_key` is the reader's ephemeral key
/// (for DeviceMac).
pub fn verify_device_response(
    response: &[u8],
    request: &ItemsRequest,
    transcript: &SessionTranscriptBytes,
    e_reader_key: &dyn KeyAgreement,
    trust: &TrustedIacas,
    now: Timestamp,
    status: StatusCheck<'_>,
) -> Result<VerifiedPresentation, MdocError> {
    let response = DeviceResponse::parse(response)?;
    if response.status != STATUS_OK {
        return Err(MdocError::DeviceResponseStatus(response.status));
    }
    let [doc] = response.documents.as_slice() else {
        return Err(match response.documents.first() {
            Some(d) if d.doc_type != request.doc_type => {
                MdocError::UnknownDocType(d.doc_type.clone())
            }
            Some(_) => MdocError::Invalid("more than one document"),
            None => MdocError::UnknownDocType(request.doc_type.clone()),
        });
    };
    if doc.doc_type != request.doc_type {
        return Err(MdocError::UnknownDocType(doc.doc_type.clone()));
    }
    let verified = verify_issuer_signed(&doc.doc_type, &doc.issuer_signed, trust, now, status)?;
    let device_key = verified.device_public_key()?;
    doc.device_signed
        .verify(transcript, &doc.doc_type, &device_key, Some(e_reader_key))?;
    if doc.device_signed.name_spaces != [0xa0] {
        return Err(MdocError::Unsupported("device-signed elements"));
    }
    for (ns, elements) in verified.elements() {
        for (el, value) in elements {
            if !allowed(request, ns, el, value) {
                return Err(MdocError::ElementNotRequested {
                    namespace: ns.clone(),
                    element: el.clone(),
                });
            }
        }
    }
    // The digest check above is per item; also count items, so a name
    // space with an element twice cannot slip a second value past us.
    for (ns, items) in &doc.issuer_signed.name_spaces {
        let unique = verified.elements().get(ns).map_or(0, BTreeMap::len);
        if unique != items.len() {
            return Err(MdocError::Invalid("element disclosed twice"));
        }
    }
    Ok(VerifiedPresentation {
        doc_type: doc.doc_type.clone(),
        items: verified.elements().clone(),
        device_auth: match doc.device_signed.device_auth {
            DeviceAuth::Signature(_) => DeviceAuthKind::Signature,
            DeviceAuth::Mac(_) => DeviceAuthKind::Mac,
        },
        status: verified.status(),
        validity: *verified.validity(),
    })
}

/// The reader's presentation state machine (one session).
pub struct Reader {
    engagement: DeviceEngagement,
    request: ItemsRequest,
    ephemeral: EphemeralKey,
    transcript: SessionTranscriptBytes,
    session: SessionEncryption,
    establishment: Vec<u8>,
    response: Option<Vec<u8>>,
    authenticated: bool,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("request", &self.request)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// From the `mdoc:` URI of the holder's QR code.
    pub fn from_uri(
        uri: &str,
        request: ItemsRequest,
        rng: &mut dyn RandomSource,
    ) -> Result<Self, MdocError> {
        Self::with_engagement(parse_device_engagement_uri(uri)?, request, None, rng)
    }

    /// From the DeviceEngagement bytes.
    pub fn new(
        engagement: &[u8],
        request: ItemsRequest,
        rng: &mut dyn RandomSource,
    ) -> Result<Self, MdocError> {
        Self::with_engagement(parse_device_engagement(engagement)?, request, None, rng)
    }

    /// As [`Reader::new`], signing the DocRequest's readerAuth (§9.1.4)
    /// with `auth` when given: ReaderAuthentication over this session's
    /// transcript and the ItemsRequestBytes sent.
    pub fn new_authenticated(
        engagement: &[u8],
        request: ItemsRequest,
        auth: Option<&ReaderAuthKey<'_>>,
        rng: &mut dyn RandomSource,
    ) -> Result<Self, MdocError> {
        Self::with_engagement(parse_device_engagement(engagement)?, request, auth, rng)
    }

    fn with_engagement(
        engagement: DeviceEngagement,
        request: ItemsRequest,
        auth: Option<&ReaderAuthKey<'_>>,
        rng: &mut dyn RandomSource,
    ) -> Result<Self, MdocError> {
        let ephemeral = ephemeral_key(rng)?;
        let e_reader_key = ephemeral.public_key();
        let transcript = SessionTranscript {
            device_engagement: engagement.as_bytes().to_vec(),
            e_reader_key: e_reader_key.to_cose_key()?,
            handover: Handover::Qr,
        }
        .to_bytes()?;
        let mut doc_request = DocRequest::new(request.clone())?;
        if let Some(auth) = auth {
            doc_request.reader_auth = Some(sign_reader_auth(
                auth,
                &transcript,
                &doc_request.items_request_bytes,
            )?);
        }
        let authenticated = doc_request.reader_auth.is_some();
        let device_request = DeviceRequest::new(vec![doc_request])?.encode()?;
        let keys = SessionKeys::derive(&ephemeral, engagement.e_device_key(), &transcript)?;
        let mut session = SessionEncryption::new(Role::Reader, keys);
        let establishment = session.establish(&e_reader_key, &device_request)?;
        // The transcript must hold the key bytes exactly as sent.
        if establishment.e_reader_key_bytes() != e_reader_key.to_cose_key()?.as_slice() {
            return Err(MdocError::Invalid("EReaderKey encoding is not stable"));
        }
        Ok(Self {
            engagement,
            request,
            ephemeral,
            transcript,
            session,
            establishment: establishment.encode()?,
            response: None,
            authenticated,
        })
    }

    /// Whether the request carries reader authentication.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The SessionEstablishment to send (message 1).
    pub fn session_establishment(&self) -> &[u8] {
        &self.establishment
    }

    /// The DeviceEngagement as received.
    pub fn engagement(&self) -> &DeviceEngagement {
        &self.engagement
    }

    /// What we asked for.
    pub fn request(&self) -> &ItemsRequest {
        &self.request
    }

    /// The SessionTranscriptBytes of this session (`#6.24(bstr)`; its
    /// [`SessionTranscriptBytes::transcript`] is the SessionTranscript).
    pub fn session_transcript(&self) -> &SessionTranscriptBytes {
        &self.transcript
    }

    /// The last decrypted DeviceResponse, exactly as received (kept even
    /// when it fails verification).
    pub fn device_response(&self) -> Option<&[u8]> {
        self.response.as_deref()
    }

    /// Handles the mdoc's SessionData: decrypts it (SKDevice, counters)
    /// and verifies the DeviceResponse in it.
    pub fn on_session_data(
        &mut self,
        bytes: &[u8],
        trust: &TrustedIacas,
        now: Timestamp,
        status: StatusCheck<'_>,
    ) -> Result<VerifiedPresentation, MdocError> {
        self.open_session_data(bytes)?;
        self.verify(trust, now, status)
    }

    /// Step 1 of [`Reader::on_session_data`]: decrypts the SessionData and
    /// keeps the DeviceResponse (e.g. to learn [`Reader::status_reference`]
    /// and fetch the status list before verifying).
    pub fn open_session_data(&mut self, bytes: &[u8]) -> Result<&[u8], MdocError> {
        let message = parse_session_data(bytes)?;
        let inbound = self.session.open(&message)?;
        let Some(response) = inbound.data else {
            return Err(match inbound.status {
                Some(SessionStatus::Termination) | None => MdocError::SessionClosed,
                Some(s) => MdocError::PeerError { status: s.code() },
            });
        };
        Ok(self.response.insert(response))
    }

    /// Step 2: verifies the last DeviceResponse received.
    pub fn verify(
        &self,
        trust: &TrustedIacas,
        now: Timestamp,
        status: StatusCheck<'_>,
    ) -> Result<VerifiedPresentation, MdocError> {
        let response = self
            .response
            .as_deref()
            .ok_or(MdocError::Invalid("no DeviceResponse received"))?;
        verify_device_response(
            response,
            &self.request,
            &self.transcript,
            &self.ephemeral,
            trust,
            now,
            status,
        )
    }

    /// The status reference of the received document's MSO, **unverified**:
    /// only a hint where to fetch the status list; [`Reader::verify`] then
    /// checks that the list is the one the signed MSO names.
    pub fn status_reference(&self) -> Option<StatusRef> {
        let response = DeviceResponse::parse(self.response.as_deref()?).ok()?;
        let doc = response.documents.first()?;
        let payload = doc.issuer_signed.issuer_auth.payload.as_deref()?;
        MobileSecurityObject::from_tagged_bytes(payload)
            .ok()?
            .status
    }

    /// The SessionData ending the session (status 20).
    pub fn terminate(&mut self) -> Result<Vec<u8>, MdocError> {
        self.session.terminate(None)?.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(elements: &[&str]) -> ItemsRequest {
        ItemsRequest {
            doc_type: "d".into(),
            name_spaces: [(
                "ns".to_owned(),
                elements.iter().map(|e| ((*e).to_owned(), false)).collect(),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn age_substitutes_follow_the_rule() {
        let r = request(&["age_over_20"]);
        assert!(allowed(&r, "ns", "age_over_20", &Value::Bool(false)));
        assert!(allowed(&r, "ns", "age_over_21", &Value::Bool(true)));
        assert!(!allowed(&r, "ns", "age_over_21", &Value::Bool(false)));
        assert!(allowed(&r, "ns", "age_over_18", &Value::Bool(false)));
        assert!(!allowed(&r, "ns", "age_over_18", &Value::Bool(true)));
        assert!(!allowed(&r, "other", "age_over_21", &Value::Bool(true)));
        assert!(!allowed(&r, "ns", "age_over_21", &Value::from(1)));
        assert!(!allowed(&r, "ns", "portrait", &Value::Bool(true)));
        assert!(!allowed(
            &request(&["portrait"]),
            "ns",
            "age_over_21",
            &Value::Bool(true)
        ));
    }

    #[test]
    fn garbage_engagement_and_session_data_are_errors() {
        let mut rng = crate::issuer::test_support::TestRng(7);
        assert!(Reader::from_uri("mdoc:", request(&["x"]), &mut rng).is_err());
        assert!(Reader::new(&[0xff], request(&["x"]), &mut rng).is_err());
    }
}
