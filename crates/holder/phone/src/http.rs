//! The phone's link to the authority, as a small trait: the wallet builds
//! requests and reads answers, the adapter moves bytes. The binary supplies
//! an HTTP client; tests supply an in-process authority.

use serde_json::Value;

use crate::PhoneError;

/// HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// POST (with a JSON body, possibly empty).
    Post,
}

/// One request to the authority.
#[derive(Clone)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Path and query under the authority's base URL (`/v1/phones`).
    pub path: String,
    /// `Authorization: Bearer …` (a device token), if any.
    pub bearer: Option<String>,
    /// JSON body (POST).
    pub json: Option<Value>,
}

impl HttpRequest {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            path: path.into(),
            bearer: None,
            json: None,
        }
    }

    /// `POST path` with a JSON body.
    pub fn post(path: impl Into<String>, json: Value) -> Self {
        Self {
            method: Method::Post,
            path: path.into(),
            bearer: None,
            json: Some(json),
        }
    }

    /// With a bearer token.
    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }
}

impl core::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("bearer", &self.bearer.as_ref().map(|_| "<secret>"))
            .finish_non_exhaustive()
    }
}

/// The authority's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Body (JSON, or problem+json on errors).
    pub body: Vec<u8>,
}

/// Sends requests to an authority.
pub trait AuthorityHttp {
    /// Sends `req` to the authority whose base URL is `base` (no trailing
    /// slash). Fails with [`PhoneError::Http`] when it cannot be reached;
    /// any HTTP answer, error statuses included, is `Ok`.
    fn send(&mut self, base: &str, req: &HttpRequest) -> Result<HttpResponse, PhoneError>;
}

impl<T: AuthorityHttp + ?Sized> AuthorityHttp for &mut T {
    fn send(&mut self, base: &str, req: &HttpRequest) -> Result<HttpResponse, PhoneError> {
        (**self).send(base, req)
    }
}

/// Sends a request and reads a JSON answer; a non-2xx answer becomes
/// [`PhoneError::Refused`] with the problem's `code` and `detail`.
pub(crate) fn call(
    http: &mut dyn AuthorityHttp,
    base: &str,
    req: &HttpRequest,
) -> Result<Value, PhoneError> {
    let resp = http.send(base, req)?;
    let value: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if !(200..300).contains(&resp.status) {
        let field = |k: &str| {
            value
                .as_ref()
                .and_then(|v| v[k].as_str())
                .map(str::to_owned)
        };
        return Err(PhoneError::Refused {
            status: resp.status,
            code: field("code").unwrap_or_else(|| "unknown".into()),
            detail: field("detail").unwrap_or_else(|| "no detail".into()),
        });
    }
    value.ok_or_else(|| {
        PhoneError::Protocol(format!(
            "{} {}: the answer is not JSON",
            match req.method {
                Method::Get => "GET",
                Method::Post => "POST",
            },
            req.path
        ))
    })
}

/// A string field of a JSON answer.
pub(crate) fn text(v: &Value, key: &str) -> Result<String, PhoneError> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| PhoneError::Protocol(format!("the answer lacks {key}")))
}

/// A base64 field of a JSON answer.
pub(crate) fn base64_field(v: &Value, key: &str) -> Result<Vec<u8>, PhoneError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text(v, key)?.trim())
        .map_err(|_| PhoneError::Protocol(format!("{key} is not base64")))
}
