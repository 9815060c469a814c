//! Harness pieces shared by the authority server's scenario tests: the
//! clock, a throwaway PostgreSQL database per test, and the back ends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[allow(clippy::disallowed_methods)] // tests read the clock
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A throwaway PostgreSQL database, dropped at the end.
pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                }
            })
        })
        .join();
    }
}

/// 48 random bits, for unique names.
pub fn rand_label() -> u64 {
    let mut b = [0u8; 8];
    shomei_core::RandomSource::fill(&mut shomei_pki::SystemRandom::new(), &mut b).unwrap();
    u64::from_be_bytes(b) >> 16
}

/// A fresh database `<prefix>_<random>` on the server of
/// `SHOMEI_TEST_POSTGRES_URL`; `None` (the variant is skipped) when unset,
/// which CI does not allow.
pub async fn postgres_db(prefix: &str) -> Option<PgDb> {
    let admin = match std::env::var("SHOMEI_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set SHOMEI_TEST_POSTGRES_URL"
            );
            eprintln!("SHOMEI_TEST_POSTGRES_URL unset: PostgreSQL variant skipped");
            return None;
        }
    };
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to test PostgreSQL");
    let name = format!("{prefix}_{:012x}", rand_label());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let url = match admin.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{name}"),
        None => panic!("bad URL"),
    };
    Some(PgDb { admin, name, url })
}

/// Where a scenario's registry lives.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `authority init` of a test authority (two CRL shards per class, no
/// manufacturer roots) in `dir`, publishing at `base_url`.
pub fn init_authority(dir: &std::path::Path, base_url: &str, at: time::OffsetDateTime) {
    use shomei_authority_server::home::{Home, InitOptions};
    Home::init(
        dir,
        &InitOptions {
            name: "Test Authority".into(),
            base_url: base_url.into(),
            crl_shards: 2,
            manufacturer_roots: vec![],
        },
        at,
    )
    .unwrap();
}

/// Declares a test module `$name` whose `sqlite` and `postgres` tests run
/// `$body(env)` on what `start(Backend::…)` gives (with a middle argument:
/// `start_with(Backend::…, $option)`); a `None` environment skips the
/// variant (only allowed outside CI, see [`postgres_db`]).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    (@run $name:ident, $start:ident($($arg:expr),*), $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(env) = $start(Backend::Sqlite $(, $arg)*).await {
                    $body(env).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(env) = $start(Backend::Postgres $(, $arg)*).await {
                    $body(env).await;
                }
            }
        }
    };
    ($name:ident, $body:expr) => {
        on_both_backends!(@run $name, start(), $body);
    };
    ($name:ident, $option:expr, $body:expr) => {
        on_both_backends!(@run $name, start_with($option), $body);
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// Sends `req`: the status and the JSON body (null if none). Every error
/// must be `application/problem+json` with a stable `code`, and its
/// `detail` must contain none of `personal`.
pub async fn send_checked(
    req: reqwest::RequestBuilder,
    personal: &[&str],
) -> (u16, serde_json::Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    if status >= 400 {
        assert_eq!(
            ct, "application/problem+json",
            "errors are problem+json: {v}"
        );
        assert!(v["code"].is_string(), "problem has a stable code: {v}");
        let detail = v["detail"].as_str().unwrap_or_default();
        for p in personal {
            assert!(!detail.contains(p), "no personal data in errors: {v}");
        }
    }
    (status, v)
}
