//! DeviceRequest (§8.3.2.1.2.1): parse with strict bounds, and build.
//!
//! ```text
//! DeviceRequest = {"version": tstr, "docRequests": [+ DocRequest]}
//! DocRequest    = {"itemsRequest": #6.24(bstr .cbor ItemsRequest), ? "readerAuth": COSE_Sign1}
//! ItemsRequest  = {"docType": tstr, "nameSpaces": {+ tstr => {+ tstr => bool}}, ? "requestInfo": map}
//! ```
//! ItemsRequestBytes and readerAuth are kept exactly as received (reader
//! authentication signs over them).

use std::collections::BTreeMap;

use ciborium::Value;

use crate::cbor;
use crate::error::MdocError;

/// Largest DeviceRequest accepted.
pub const MAX_DEVICE_REQUEST_LEN: usize = 256 * 1024;
/// Most DocRequests in one DeviceRequest.
pub const MAX_DOC_REQUESTS: usize = 16;
/// Most name spaces in one ItemsRequest.
pub const MAX_NAME_SPACES: usize = 16;
/// Most elements requested in one name space.
pub const MAX_ELEMENTS: usize = 256;
/// Longest doc type, name space or element identifier.
pub const MAX_IDENTIFIER_LEN: usize = 256;

/// Requested elements: name space → element identifier → intent to retain.
pub type NameSpaces = BTreeMap<String, BTreeMap<String, bool>>;

/// An ItemsRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemsRequest {
    /// The requested document type.
    pub doc_type: String,
    /// The requested elements.
    pub name_spaces: NameSpaces,
}

fn identifier(v: &Value, what: &'static str) -> Result<String, MdocError> {
    let t = cbor::as_text(v, what)?;
    if t.is_empty() || t.len() > MAX_IDENTIFIER_LEN {
        return Err(MdocError::LimitExceeded(what));
    }
    Ok(t.to_owned())
}

impl ItemsRequest {
    /// Parses ItemsRequest bytes (the inside of ItemsRequestBytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, MdocError> {
        let v = cbor::decode(bytes, MAX_DEVICE_REQUEST_LEN, "ItemsRequest")?;
        let m = cbor::as_map(&v, "ItemsRequest")?;
        let doc_type = cbor::get_text(m, "docType")?
            .ok_or(MdocError::MalformedCbor("ItemsRequest docType"))?;
        let doc_type = identifier(doc_type, "docType")?;
        let ns = cbor::get_text(m, "nameSpaces")?
            .ok_or(MdocError::MalformedCbor("ItemsRequest nameSpaces"))?;
        let ns = cbor::as_map(ns, "nameSpaces")?;
        if ns.is_empty() {
            return Err(MdocError::MalformedCbor("empty nameSpaces"));
        }
        if ns.len() > MAX_NAME_SPACES {
            return Err(MdocError::LimitExceeded("name spaces"));
        }
        let mut name_spaces = NameSpaces::new();
        for (k, v) in ns {
            let name = identifier(k, "name space")?;
            let elements = cbor::as_map(v, "DataElements")?;
            if elements.is_empty() {
                return Err(MdocError::MalformedCbor("empty DataElements"));
            }
            if elements.len() > MAX_ELEMENTS {
                return Err(MdocError::LimitExceeded("data elements"));
            }
            let mut out = BTreeMap::new();
            for (e, retain) in elements {
                let e = identifier(e, "element identifier")?;
                let retain = cbor::as_bool(retain, "IntentToRetain")?;
                if out.insert(e, retain).is_some() {
                    return Err(MdocError::MalformedCbor("duplicate element"));
                }
            }
            if name_spaces.insert(name, out).is_some() {
                return Err(MdocError::MalformedCbor("duplicate name space"));
            }
        }
        if let Some(info) = cbor::get_text(m, "requestInfo")? {
            cbor::as_map(info, "requestInfo")?;
        }
        Ok(Self {
            doc_type,
            name_spaces,
        })
    }

    /// Encodes it (name spaces and elements in the order of the maps).
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        let ns = self
            .name_spaces
            .iter()
            .map(|(ns, elements)| {
                let elements = elements
                    .iter()
                    .map(|(e, r)| (Value::Text(e.clone()), Value::Bool(*r)))
                    .collect();
                (Value::Text(ns.clone()), Value::Map(elements))
            })
            .collect();
        cbor::encode(&Value::Map(vec![
            (
                Value::Text("docType".into()),
                Value::Text(self.doc_type.clone()),
            ),
            (Value::Text("nameSpaces".into()), Value::Map(ns)),
        ]))
    }

    /// Whether `namespace`/`element` was requested.
    pub fn is_requested(&self, namespace: &str, element: &str) -> bool {
        self.name_spaces
            .get(namespace)
            .is_some_and(|e| e.contains_key(element))
    }

    /// [`MdocError::ElementNotRequested`] unless it was requested.
    pub fn ensure_requested(&self, namespace: &str, element: &str) -> Result<(), MdocError> {
        if self.is_requested(namespace, element) {
            Ok(())
        } else {
            Err(MdocError::ElementNotRequested {
                namespace: namespace.to_owned(),
                element: element.to_owned(),
            })
        }
    }
}

/// A DocRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocRequest {
    /// The decoded ItemsRequest.
    pub items_request: ItemsRequest,
    /// The ItemsRequest bytes inside ItemsRequestBytes, exactly.
    pub items_request_bytes: Vec<u8>,
    /// The readerAuth COSE_Sign1, encoded (re-encoding keeps its byte
    /// strings, so signatures over them are unaffected).
    pub reader_auth: Option<Vec<u8>>,
}

impl DocRequest {
    /// A request without reader authentication.
    pub fn new(items_request: ItemsRequest) -> Result<Self, MdocError> {
        let items_request_bytes = items_request.encode()?;
        Ok(Self {
            items_request,
            items_request_bytes,
            reader_auth: None,
        })
    }
}

/// A DeviceRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRequest {
    /// "1.0" (or a later 1.x).
    pub version: String,
    /// The document requests.
    pub doc_requests: Vec<DocRequest>,
}

/// Parses a DeviceRequest with the crate's bounds (fuzz entry point).
pub fn parse_device_request(bytes: &[u8]) -> Result<DeviceRequest, MdocError> {
    let v = cbor::decode(bytes, MAX_DEVICE_REQUEST_LEN, "DeviceRequest")?;
    let m = cbor::as_map(&v, "DeviceRequest")?;
    let version =
        cbor::get_text(m, "version")?.ok_or(MdocError::MalformedCbor("DeviceRequest version"))?;
    let version = cbor::as_text(version, "DeviceRequest version")?;
    if !version.starts_with("1.") || version.len() > 8 {
        return Err(MdocError::Unsupported("DeviceRequest version"));
    }
    let docs = cbor::get_text(m, "docRequests")?
        .ok_or(MdocError::MalformedCbor("DeviceRequest docRequests"))?;
    let docs = cbor::as_array(docs, "docRequests")?;
    if docs.is_empty() {
        return Err(MdocError::MalformedCbor("empty docRequests"));
    }
    if docs.len() > MAX_DOC_REQUESTS {
        return Err(MdocError::LimitExceeded("docRequests"));
    }
    let mut doc_requests = Vec::with_capacity(docs.len());
    for doc in docs {
        let dm = cbor::as_map(doc, "DocRequest")?;
        let items = cbor::get_text(dm, "itemsRequest")?
            .ok_or(MdocError::MalformedCbor("DocRequest itemsRequest"))?;
        let items_request_bytes = cbor::untag24(items, "ItemsRequestBytes")?.to_vec();
        let items_request = ItemsRequest::parse(&items_request_bytes)?;
        let reader_auth = cbor::get_text(dm, "readerAuth")?
            .map(|ra| {
                cbor::as_array(ra, "readerAuth")?;
                cbor::encode(ra)
            })
            .transpose()?;
        doc_requests.push(DocRequest {
            items_request,
            items_request_bytes,
            reader_auth,
        });
    }
    Ok(DeviceRequest {
        version: version.to_owned(),
        doc_requests,
    })
}

impl DeviceRequest {
    /// Version "1.0" with the given requests.
    pub fn new(doc_requests: Vec<DocRequest>) -> Result<Self, MdocError> {
        if doc_requests.is_empty() {
            return Err(MdocError::Invalid("a DeviceRequest needs a DocRequest"));
        }
        if doc_requests.len() > MAX_DOC_REQUESTS {
            return Err(MdocError::LimitExceeded("docRequests"));
        }
        Ok(Self {
            version: "1.0".into(),
            doc_requests,
        })
    }

    /// Encodes it, with each ItemsRequestBytes exactly as held.
    pub fn encode(&self) -> Result<Vec<u8>, MdocError> {
        let docs = self
            .doc_requests
            .iter()
            .map(|d| {
                let mut m = vec![(
                    Value::Text("itemsRequest".into()),
                    cbor::tag24(&d.items_request_bytes),
                )];
                if let Some(ra) = &d.reader_auth {
                    let ra = cbor::decode(ra, MAX_DEVICE_REQUEST_LEN, "readerAuth")?;
                    m.push((Value::Text("readerAuth".into()), ra));
                }
                Ok(Value::Map(m))
            })
            .collect::<Result<Vec<_>, MdocError>>()?;
        cbor::encode(&Value::Map(vec![
            (
                Value::Text("version".into()),
                Value::Text(self.version.clone()),
            ),
            (Value::Text("docRequests".into()), Value::Array(docs)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mdl_request() -> ItemsRequest {
        let mut elements = BTreeMap::new();
        elements.insert("family_name".to_owned(), false);
        elements.insert("portrait".to_owned(), true);
        let mut name_spaces = NameSpaces::new();
        name_spaces.insert("org.iso.18013.5.1".to_owned(), elements);
        ItemsRequest {
            doc_type: "org.iso.18013.5.1.mDL".into(),
            name_spaces,
        }
    }

    #[test]
    fn build_parse_round_trip() {
        let req = DeviceRequest::new(vec![DocRequest::new(mdl_request()).unwrap()]).unwrap();
        let bytes = req.encode().unwrap();
        let back = parse_device_request(&bytes).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.encode().unwrap(), bytes);
        let items = &back.doc_requests[0].items_request;
        assert!(items.is_requested("org.iso.18013.5.1", "portrait"));
        assert!(!items.is_requested("org.iso.18013.5.1", "birth_date"));
        assert_eq!(
            items
                .ensure_requested("org.iso.18013.5.1", "birth_date")
                .unwrap_err()
                .code(),
            "element_not_requested"
        );
    }

    #[test]
    fn bounds() {
        let mut big = mdl_request();
        let ns = big.name_spaces.get_mut("org.iso.18013.5.1").unwrap();
        for i in 0..=MAX_ELEMENTS {
            ns.insert(format!("e{i}"), false);
        }
        let bytes = DeviceRequest::new(vec![DocRequest::new(big).unwrap()])
            .unwrap()
            .encode()
            .unwrap();
        assert_eq!(
            parse_device_request(&bytes),
            Err(MdocError::LimitExceeded("data elements"))
        );

        let docs = vec![DocRequest::new(mdl_request()).unwrap(); MAX_DOC_REQUESTS + 1];
        assert!(DeviceRequest::new(docs.clone()).is_err());
        let bytes = DeviceRequest {
            version: "1.0".into(),
            doc_requests: docs,
        }
        .encode()
        .unwrap();
        assert_eq!(
            parse_device_request(&bytes),
            Err(MdocError::LimitExceeded("docRequests"))
        );

        let long = ItemsRequest {
            doc_type: "x".repeat(MAX_IDENTIFIER_LEN + 1),
            ..mdl_request()
        };
        let bytes = DeviceRequest::new(vec![DocRequest::new(long).unwrap()])
            .unwrap()
            .encode()
            .unwrap();
        assert_eq!(
            parse_device_request(&bytes),
            Err(MdocError::LimitExceeded("docType"))
        );

        assert!(parse_device_request(&vec![0; MAX_DEVICE_REQUEST_LEN + 1]).is_err());
    }

    #[test]
    fn malformed() {
        assert!(parse_device_request(&[]).is_err());
        assert!(parse_device_request(&[0xa0]).is_err());
        let wrong_version = DeviceRequest {
            version: "2.0".into(),
            doc_requests: vec![DocRequest::new(mdl_request()).unwrap()],
        };
        assert_eq!(
            parse_device_request(&wrong_version.encode().unwrap()),
            Err(MdocError::Unsupported("DeviceRequest version"))
        );
    }
}
