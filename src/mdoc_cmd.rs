//! `shomei reader request`: an ISO/IEC 18013-5 mdoc reader over the
//! Shōmei TCP loopback transport, and that transport (shared with
//! `phone present`).
//!
//! Transport. In real life the engagement's DeviceRetrievalMethods are BLE
//! (or NFC, Wi-Fi Aware). Here the holder advertises one private-use
//! method, type [`TCP_RETRIEVAL_TYPE`] version 1, options
//! `{"host": tstr, "port": uint}`; the reader connects there over TCP and
//! both sides exchange the ISO messages (SessionEstablishment, SessionData)
//! unchanged, each framed as a 4-byte big-endian length followed by that
//! many bytes (see `crate::transport`). Frames are at most
//! [`shomei_mdoc::session::MAX_SESSION_MESSAGE_LEN`] bytes; a longer length
//! prefix ends the connection.
//!
//! One session: the reader sends SessionEstablishment, reads one
//! SessionData (the DeviceResponse), verifies it, then sends the
//! termination (status 20) and closes.
//!
//! Revocation: when the verified MSO carries a status reference, the
//! reader fetches that Token Status List over HTTP(S), verifies it under
//! the same trusted IACA and refuses a revoked or suspended mobile ID;
//! `--offline` skips this (status "not_checked").

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Subcommand;
use serde_json::json;
use shomei_mdoc::CborValue as Value;
use shomei_mdoc::issuer::{StatusCheck, StatusOutcome, TrustedIacas};
use shomei_mdoc::jp::{self, NS_ISO23220, NS_JP, elements};
use shomei_mdoc::present::{Presenter, parse_age_over};
use shomei_mdoc::reader::Reader;
use shomei_mdoc::reader_auth::ReaderAuthKey;
use shomei_mdoc::request::ItemsRequest;
use shomei_mdoc::session::{DeviceEngagement, RetrievalMethod, parse_device_engagement_uri};
use shomei_mdoc::status::{StatusListLimits, VerifiedStatusList, verify_status_list_token};
use tokio::net::TcpStream;

use crate::output::{Failure, emit};
use crate::transport::{Framed, SessionTransport};

/// The private-use DeviceRetrievalMethod type of the TCP transport (ISO
/// uses 1 NFC, 2 BLE, 3 Wi-Fi Aware).
pub const TCP_RETRIEVAL_TYPE: u64 = 0x5348; // "SH"

/// The retrieval method advertising `addr`.
pub fn tcp_retrieval_method(addr: SocketAddr) -> RetrievalMethod {
    RetrievalMethod {
        kind: TCP_RETRIEVAL_TYPE,
        version: 1,
        options: Value::Map(vec![
            (
                Value::Text("host".into()),
                Value::Text(addr.ip().to_string()),
            ),
            (Value::Text("port".into()), Value::from(addr.port())),
        ]),
    }
}

/// The TCP address an engagement advertises, if any.
pub fn tcp_address(engagement: &DeviceEngagement) -> Option<SocketAddr> {
    engagement
        .retrieval_methods()
        .iter()
        .filter(|m| m.kind == TCP_RETRIEVAL_TYPE && m.version == 1)
        .find_map(|m| {
            let Value::Map(opts) = &m.options else {
                return None;
            };
            let get = |k: &str| {
                opts.iter()
                    .find(|(key, _)| key == &Value::Text(k.into()))
                    .map(|(_, v)| v)
            };
            let host: IpAddr = get("host")?.as_text()?.parse().ok()?;
            let port = u16::try_from(get("port")?.as_integer()?).ok()?;
            Some(SocketAddr::new(host, port))
        })
}

pub use crate::transport::{read_frame, write_frame};

/// The holder's side (for `phone present`): accepts one reader on
/// `listener` and runs the session with `presenter` over the framed TCP
/// transport. Returns what was released.
pub async fn serve_one(
    listener: &tokio::net::TcpListener,
    presenter: &mut Presenter<'_>,
) -> anyhow::Result<Vec<(String, String)>> {
    let (stream, _) = listener.accept().await.context("accepting the reader")?;
    hold_session(&mut Framed(stream), presenter).await
}

/// The holder's side of one session over any transport, until it ends or
/// the reader hangs up. Returns what was released.
pub(crate) async fn hold_session<T: SessionTransport>(
    t: &mut T,
    presenter: &mut Presenter<'_>,
) -> anyhow::Result<Vec<(String, String)>> {
    let first = t
        .receive()
        .await?
        .context("the reader closed before its request")?;
    let reply = presenter.on_session_establishment(&first)?;
    let mut released = reply.released;
    if let Some(m) = &reply.message {
        t.send(m).await?;
    }
    if let Some(e) = reply.error {
        anyhow::bail!("session failed: {e}");
    }
    let mut ended = reply.ended;
    while !ended {
        let Ok(Some(next)) = t.receive().await else {
            break; // the reader hung up
        };
        let reply = presenter.on_session_data(&next)?;
        released.extend(reply.released);
        if let Some(m) = &reply.message {
            t.send(m).await?;
        }
        if let Some(e) = reply.error {
            anyhow::bail!("session failed: {e}");
        }
        ended = reply.ended;
    }
    Ok(released)
}

/// The reader's side over any transport: sends the SessionEstablishment
/// and returns the mdoc's answer (one SessionData).
pub(crate) async fn read_answer<T: SessionTransport>(
    t: &mut T,
    reader: &Reader,
) -> anyhow::Result<Vec<u8>> {
    t.send(reader.session_establishment()).await?;
    t.receive()
        .await?
        .context("the phone closed the session without an answer")
}

/// The reader's exchange over TCP: connects to `addr`, SessionEstablishment
/// out, one SessionData back.
pub(crate) async fn exchange(
    reader: &Reader,
    addr: SocketAddr,
) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to the phone at {addr}"))?;
    let mut t = Framed(stream);
    let answer = read_answer(&mut t, reader).await?;
    Ok((t.0, answer))
}

/// Fetches and verifies the Status List Token at `uri` (fail closed: a
/// reader that cannot learn the status refuses).
async fn fetch_status_list(
    uri: &str,
    trust: &TrustedIacas,
    now: shomei_core::Timestamp,
    timeout: u64,
) -> anyhow::Result<VerifiedStatusList> {
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        anyhow::bail!("the MSO's status list URI is not HTTP(S); use --offline to skip the check");
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .build()?;
    let resp = client
        .get(uri)
        .send()
        .await
        .with_context(|| format!("cannot fetch the status list {uri} (--offline skips it)"))?;
    if !resp.status().is_success() {
        anyhow::bail!("status list {uri}: HTTP {}", resp.status());
    }
    let token = resp.bytes().await.context("reading the status list")?;
    verify_status_list_token(&token, uri, trust, now, StatusListLimits::default())
        .map_err(|e| anyhow::anyhow!("the status list {uri} is not valid: {e} ({})", e.code()))
}

#[derive(Subcommand, Debug)]
pub enum ReaderCmd {
    /// Request a mobile ID shown as an `mdoc:` QR code, verify it and print
    /// the verified elements.
    Request {
        /// The holder's device engagement (`mdoc:…`, from `phone present`).
        #[arg(long)]
        engagement: String,
        /// Elements to request, comma separated: names of the
        /// org.iso.23220.1.jp.mnc document (full_name_unicode, portrait,
        /// age_over_20, birth_date, …), or NAMESPACE/ELEMENT.
        #[arg(long, value_delimiter = ',', required = true)]
        items: Vec<String>,
        /// The IACA certificate(s) to trust (PEM, e.g. the authority's
        /// /ca/iaca.pem).
        #[arg(long)]
        trust: PathBuf,
        /// Write the decrypted DeviceResponse (CBOR) here, exactly as received.
        #[arg(long)]
        save_response: Option<PathBuf>,
        /// Write the SessionTranscriptBytes (CBOR `#6.24(bstr)`) used.
        #[arg(long)]
        save_transcript: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Do not fetch the status list the MSO points to (revocation is
        /// then reported as "not_checked").
        #[arg(long)]
        offline: bool,
        /// Sign the request (ISO 18013-5 §9.1.4 reader authentication) with
        /// this P-256 PKCS#8 key (from `reader enrol`); needs --reader-cert.
        #[arg(long, requires = "reader_cert")]
        reader_key: Option<PathBuf>,
        /// The reader certificate (PEM) of --reader-key.
        #[arg(long, requires = "reader_key")]
        reader_cert: Option<PathBuf>,
    },
    /// Get this relying party's reader a key and a reader-authentication
    /// certificate from the authority: the key is made here (PKCS#8, 0600)
    /// and only its public key is sent; writes reader.p8, reader.pem and
    /// reader-ca.pem into --out.
    Enrol {
        /// The authority's base URL.
        #[arg(long)]
        authority: String,
        /// A file holding the relying party's token (from registration).
        #[arg(long)]
        rp_token_file: PathBuf,
        /// The folder to write the key and certificates into.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Element name → name space, for the bare names of the jp document.
fn namespace_of(element: &str) -> Option<&'static str> {
    const JP: [&str; 7] = [
        elements::FULL_NAME,
        elements::RESIDENT_ADDRESS,
        elements::BIRTH_DATE_TEXT,
        elements::SEX_TEXT,
        elements::LOCAL_GOV_CODE,
        elements::INDIVIDUAL_NUMBER,
        elements::PORTRAIT,
    ];
    const ISO: [&str; 3] = [elements::BIRTH_DATE, elements::SEX, elements::AGE_IN_YEARS];
    if JP.contains(&element) {
        Some(NS_JP)
    } else if ISO.contains(&element) || parse_age_over(element).is_some() {
        Some(NS_ISO23220)
    } else {
        None
    }
}

/// `--items` → the ItemsRequest (IntentToRetain false throughout).
pub fn items_request(items: &[String]) -> anyhow::Result<ItemsRequest> {
    let mut name_spaces: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let (ns, el) = match item.rsplit_once('/') {
            Some((ns, el)) if !ns.is_empty() && !el.is_empty() => (ns, el),
            Some(_) => return Err(Failure::input(format!("bad item {item:?}"))),
            None => (
                namespace_of(item).ok_or_else(|| {
                    Failure::input(format!(
                        "unknown item {item:?} (use NAMESPACE/ELEMENT for others)"
                    ))
                })?,
                item,
            ),
        };
        name_spaces
            .entry(ns.to_owned())
            .or_default()
            .insert(el.to_owned(), false);
    }
    if name_spaces.is_empty() {
        return Err(Failure::input("--items: nothing to request"));
    }
    Ok(ItemsRequest {
        doc_type: jp::DOC_TYPE.to_owned(),
        name_spaces,
    })
}

/// A verified element as JSON: text, integers and booleans as themselves,
/// byte strings (the portrait) as standard base64, tagged dates as their
/// text.
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Text(t) => json!(t),
        Value::Bool(b) => json!(b),
        Value::Integer(i) => i64::try_from(*i).map_or_else(|_| json!(i128::from(*i)), |n| json!(n)),
        Value::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Tag(_, inner) => to_json(inner),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Text(t) => t.clone(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Float(f) => json!(f),
        _ => serde_json::Value::Null,
    }
}

pub(crate) fn human_value(v: &Value) -> String {
    match v {
        Value::Bytes(b) => format!("({} bytes)", b.len()),
        other => match to_json(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

struct SystemRng;

impl shomei_core::RandomSource for SystemRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), shomei_core::SignError> {
        aws_lc_rs::rand::fill(buf)
            .map_err(|_| shomei_core::SignError::Backend("system RNG failed".into()))
    }
}

/// What a reader got from one presentation.
pub(crate) struct ReaderOutcome {
    /// The session (transcript, the decrypted DeviceResponse).
    pub reader: Reader,
    /// The verification of the DeviceResponse.
    pub verdict: Result<shomei_mdoc::reader::VerifiedPresentation, shomei_mdoc::MdocError>,
    /// The status list could not be had: the reader fails closed.
    pub status_failure: Option<anyhow::Error>,
}

/// The reader's whole side of one presentation over TCP: connect to the
/// phone the engagement names, send the request (signed with `auth` when
/// given: ISO 18013-5 §9.1.4 reader authentication), decrypt the answer,
/// fetch the status list the MSO points to (unless `offline`), verify, and
/// say goodbye.
pub(crate) async fn request_presentation(
    engagement: &str,
    request: ItemsRequest,
    auth: Option<&ReaderAuthKey<'_>>,
    trust: &TrustedIacas,
    timeout: u64,
    offline: bool,
) -> anyhow::Result<ReaderOutcome> {
    let parsed = parse_device_engagement_uri(engagement.trim())
        .map_err(|e| Failure::input(format!("--engagement: {e}")))?;
    let addr = tcp_address(&parsed).ok_or_else(|| {
        Failure::input("--engagement advertises no TCP retrieval method this reader can use")
    })?;
    let mut reader = Reader::new_authenticated(parsed.as_bytes(), request, auth, &mut SystemRng)
        .map_err(|e| anyhow::anyhow!("cannot start the session: {e}"))?;

    let (stream, answer) =
        tokio::time::timeout(Duration::from_secs(timeout), exchange(&reader, addr))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from the phone within {timeout} s"))??;
    let now = shomei_core::Timestamp::now_utc();
    let mut status_failure = None;
    let verdict = match reader.open_session_data(&answer) {
        Err(e) => Err(e),
        Ok(_) => {
            let list = match reader.status_reference() {
                Some(r) if !offline => match fetch_status_list(&r.uri, trust, now, timeout).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        status_failure = Some(e);
                        None
                    }
                },
                _ => None,
            };
            reader.verify(
                trust,
                now,
                list.as_ref()
                    .map_or(StatusCheck::NotChecked, StatusCheck::List),
            )
        }
    };
    // Say goodbye whatever happened (best effort).
    let mut t = Framed(stream);
    if let Ok(end) = reader.terminate() {
        let _ = t.send(&end).await;
    }
    t.close().await;
    Ok(ReaderOutcome {
        reader,
        verdict,
        status_failure,
    })
}

/// The IACA certificates in a PEM file, as the reader's trust.
pub(crate) fn trusted_iacas(path: &std::path::Path) -> anyhow::Result<TrustedIacas> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    let certs = shomei_pki::pem::pem_certificates(pem.as_bytes());
    if certs.is_empty() {
        return Err(Failure::input(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    TrustedIacas::new(certs).map_err(|e| Failure::input(format!("--trust: {e}")))
}

pub async fn run_reader(cmd: ReaderCmd, json_out: bool) -> anyhow::Result<()> {
    let (engagement, items, trust, save_response, save_transcript, timeout, offline, auth) =
        match cmd {
            ReaderCmd::Enrol {
                authority,
                rp_token_file,
                out,
            } => return crate::reader_cmd::enrol(&authority, &rp_token_file, &out, json_out).await,
            ReaderCmd::Request {
                engagement,
                items,
                trust,
                save_response,
                save_transcript,
                timeout,
                offline,
                reader_key,
                reader_cert,
            } => {
                let auth = crate::reader_cmd::load_optional(
                    reader_key.as_deref(),
                    reader_cert.as_deref(),
                )?;
                (
                    engagement,
                    items,
                    trust,
                    save_response,
                    save_transcript,
                    timeout,
                    offline,
                    auth,
                )
            }
        };
    let request = items_request(&items)?;
    let trust = trusted_iacas(&trust)?;
    let auth_key = auth
        .as_ref()
        .map(crate::reader_cmd::ReaderAuthFiles::auth_key);
    let ReaderOutcome {
        reader,
        verdict,
        status_failure,
    } = request_presentation(
        &engagement,
        request,
        auth_key.as_ref(),
        &trust,
        timeout,
        offline,
    )
    .await?;

    if let Some(path) = &save_transcript {
        std::fs::write(path, reader.session_transcript().as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let (Some(path), Some(resp)) = (&save_response, reader.device_response()) {
        std::fs::write(path, resp).with_context(|| format!("cannot write {}", path.display()))?;
    }

    if let Some(e) = status_failure {
        // Fail closed: without the status the mobile ID is not accepted.
        if json_out {
            println!(
                "{}",
                json!({
                    "valid": false,
                    "doc_type": reader.request().doc_type,
                    "items": {},
                    "error": {"code": "status_unavailable", "message": format!("{e:#}")},
                })
            );
        }
        return Err(e);
    }
    match verdict {
        Ok(v) => {
            let mut flat = serde_json::Map::new();
            let mut human = format!(
                "valid mobile ID {} (device {})",
                v.doc_type,
                v.device_auth.as_str()
            );
            for els in v.items.values() {
                for (el, value) in els {
                    flat.insert(el.clone(), to_json(value));
                    human.push_str(&format!("\n  {el}: {}", human_value(value)));
                }
            }
            let status = match v.status {
                StatusOutcome::Valid => "valid",
                StatusOutcome::NotChecked => "not_checked",
                StatusOutcome::NoStatusReference => "no_status_reference",
            };
            let value = json!({
                "valid": true,
                "doc_type": v.doc_type,
                "items": flat,
                "device_auth": v.device_auth.as_str(),
                "status": status,
                "reader_auth": reader.is_authenticated(),
            });
            emit(json_out, &value, &human);
            Ok(())
        }
        Err(e) => {
            if json_out {
                println!(
                    "{}",
                    json!({
                        "valid": false,
                        "doc_type": reader.request().doc_type,
                        "items": {},
                        "error": {"code": e.code(), "message": e.to_string()},
                    })
                );
            }
            Err(anyhow::anyhow!(
                "the mobile ID is not valid: {e} ({})",
                e.code()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[test]
    fn tcp_method_round_trips_through_the_engagement() {
        let key = shomei_mdoc::session::EphemeralKey::generate().unwrap();
        use shomei_mdoc::session::KeyAgreement;
        let addr: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let e =
            DeviceEngagement::build(&key.public_key(), vec![tcp_retrieval_method(addr)]).unwrap();
        let back = parse_device_engagement_uri(&e.to_uri()).unwrap();
        assert_eq!(tcp_address(&back), Some(addr));
        let none = DeviceEngagement::build(&key.public_key(), Vec::new()).unwrap();
        assert_eq!(tcp_address(&none), None);
    }

    #[test]
    fn items_map_to_their_name_spaces() {
        let r = items_request(&[
            "full_name_unicode".into(),
            "age_over_20".into(),
            "portrait".into(),
            "org.example/x".into(),
        ])
        .unwrap();
        assert_eq!(r.doc_type, jp::DOC_TYPE);
        assert!(r.is_requested(NS_JP, "full_name_unicode"));
        assert!(r.is_requested(NS_JP, "portrait"));
        assert!(r.is_requested(NS_ISO23220, "age_over_20"));
        assert!(r.is_requested("org.example", "x"));
        assert!(items_request(&["nonsense".into()]).is_err());
        assert!(items_request(&[" ".into()]).is_err());
        assert!(items_request(&["/x".into()]).is_err());
    }

    /// The whole exchange over TCP loopback: a document issued here, the
    /// holder's `serve_one`, the reader's `exchange`.
    #[tokio::test]
    async fn presentation_over_tcp_loopback() {
        use std::sync::Arc;

        use shomei_core::{Serial, Signer};
        use shomei_mdoc::issuer::{DocumentContent, DocumentSigner, issue};
        use shomei_mdoc::mso::{DeviceKey, ValidityInfo};
        use shomei_mdoc::present::ConsentPolicy;
        use shomei_pki::EcdsaP256Signer;
        use shomei_pki::profile::{Iaca, PublicationPoints};

        let now = shomei_core::Timestamp::now_utc();
        let points = PublicationPoints::new("http://127.0.0.1:8700");
        let iaca = Iaca::create(
            "Shomei Test",
            &points,
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            &Serial::from_be_bytes(&[0x41, 2, 3]).unwrap(),
            now,
        )
        .unwrap();
        let ds_key = EcdsaP256Signer::generate().unwrap();
        let ds_cert = iaca
            .issue_document_signer(
                &points,
                &ds_key,
                &Serial::from_be_bytes(&[0x42, 1, 1]).unwrap(),
                now,
                30,
            )
            .unwrap();
        let device = EcdsaP256Signer::generate().unwrap();
        let content = DocumentContent {
            doc_type: jp::DOC_TYPE.into(),
            name_spaces: vec![
                (
                    NS_JP.into(),
                    vec![
                        (elements::FULL_NAME.into(), Value::from("山田 太郎")),
                        (
                            elements::INDIVIDUAL_NUMBER.into(),
                            Value::from("123456789018"),
                        ),
                    ],
                ),
                (
                    NS_ISO23220.into(),
                    vec![("age_over_20".into(), Value::Bool(true))],
                ),
            ],
        };
        let is = issue(
            &content,
            &DeviceKey::from_spki(device.public_key_spki()).unwrap(),
            ValidityInfo::starting(now, time::Duration::days(1)),
            None,
            &DocumentSigner::new(&ds_key, ds_cert).unwrap(),
            &mut SystemRng,
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut presenter = Presenter::with_retrieval_methods(
            &is.to_cbor().unwrap(),
            jp::DOC_TYPE,
            &device,
            ConsentPolicy::auto(),
            vec![tcp_retrieval_method(addr)],
            &mut SystemRng,
            now,
        )
        .unwrap();
        let uri = presenter.engagement_uri();
        let engagement = parse_device_engagement_uri(&uri).unwrap();
        assert_eq!(tcp_address(&engagement), Some(addr));
        let request =
            items_request(&["age_over_20".into(), "individual_number_unicode".into()]).unwrap();
        let mut reader = Reader::new(engagement.as_bytes(), request, &mut SystemRng).unwrap();
        let trust = TrustedIacas::new(vec![iaca.cert_der().to_vec()]).unwrap();
        // The session code only sees the transport trait: here an
        // in-memory pipe stands in for the link.
        let (holder_end, reader_end) = tokio::io::duplex(64 * 1024);
        let reader_side = async {
            let mut t = Framed(reader_end);
            let answer = read_answer(&mut t, &reader).await.unwrap();
            let v = reader
                .on_session_data(&answer, &trust, now, StatusCheck::NotChecked)
                .unwrap();
            t.send(&reader.terminate().unwrap()).await.unwrap();
            t.close().await;
            v
        };
        let mut holder_t = Framed(holder_end);
        let (released, v) = tokio::join!(hold_session(&mut holder_t, &mut presenter), reader_side);
        assert_eq!(
            released.unwrap(),
            vec![(NS_ISO23220.to_owned(), "age_over_20".to_owned())]
        );
        assert_eq!(v.items.len(), 1);
        assert_eq!(v.items[NS_ISO23220]["age_over_20"], Value::Bool(true));
        assert!(presenter.is_closed());

        // The command itself, against a second presentation.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("iaca.pem");
        std::fs::write(
            &pem,
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64::engine::general_purpose::STANDARD.encode(iaca.cert_der())
            ),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut presenter = Presenter::with_retrieval_methods(
            &is.to_cbor().unwrap(),
            jp::DOC_TYPE,
            &device,
            ConsentPolicy::auto(),
            vec![tcp_retrieval_method(listener.local_addr().unwrap())],
            &mut SystemRng,
            now,
        )
        .unwrap();
        let (resp_path, tr_path) = (dir.path().join("resp.cbor"), dir.path().join("tr.cbor"));
        let cmd = ReaderCmd::Request {
            engagement: presenter.engagement_uri(),
            items: vec!["full_name_unicode".into(), "age_over_18".into()],
            trust: pem,
            save_response: Some(resp_path.clone()),
            save_transcript: Some(tr_path.clone()),
            timeout: 10,
            offline: true,
            reader_key: None,
            reader_cert: None,
        };
        let (served, ran) =
            tokio::join!(serve_one(&listener, &mut presenter), run_reader(cmd, true));
        ran.unwrap();
        // age_over_18 absent: nearest true above (20) answers it.
        assert_eq!(
            served.unwrap(),
            vec![
                (NS_ISO23220.to_owned(), "age_over_20".to_owned()),
                (NS_JP.to_owned(), "full_name_unicode".to_owned()),
            ]
        );
        assert_eq!(
            std::fs::read(&tr_path).unwrap(),
            presenter.session_transcript().unwrap().as_bytes()
        );
        let resp = shomei_mdoc::present::DeviceResponse::parse(&std::fs::read(&resp_path).unwrap())
            .unwrap();
        assert_eq!(resp.documents.len(), 1);
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversize_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, b"hello").await.unwrap();
        write_frame(&mut a, b"").await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap(), b"hello");
        assert_eq!(read_frame(&mut b).await.unwrap(), b"");
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(read_frame(&mut b).await.is_err());
        drop(a);
        assert!(read_frame(&mut b).await.is_err());
    }
}
