//! One test suite, run against every back end.
//!
//! Each case is written once in [`cases`] as an async function over a
//! [`Ctx`] (a freshly opened, empty registry and its URL); [`suite!`]
//! instantiates every case as `sqlite::<case>` and `postgres::<case>`.
//!
//! SQLite runs on a temporary file. PostgreSQL needs
//! `SHOMEI_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:55432/postgres`);
//! each test creates its own randomly named database there and drops it
//! afterwards. Without the variable the PostgreSQL tests are skipped with a
//! note — unless `CI` is set, where they fail.

// Test code: panicking on failure is the point. (clippy.toml's
// allow-*-in-tests only covers `#[test]` functions, not these helpers.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use shomei_registry::Registry;

/// What a case gets: an empty registry and the URL to reopen it.
pub struct Ctx {
    /// Where the registry lives.
    pub url: String,
    /// The registry, freshly opened on an empty database.
    pub reg: Arc<dyn Registry>,
}

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

mod harness {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use sqlx::Connection;

    use super::{CaseFuture, Ctx};

    static COUNTER: AtomicU64 = AtomicU64::new(0);

    /// A name no other test (in this or another process) will pick.
    pub fn unique(prefix: &str) -> String {
        let random = RandomState::new().build_hasher().finish();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_{}_{n}_{random:016x}", std::process::id())
    }

    /// Runs `case` in its own task, so a panic can be caught, cleaned up
    /// after, and re-raised.
    async fn run(ctx: Ctx, case: fn(Ctx) -> CaseFuture) -> Result<(), tokio::task::JoinError> {
        tokio::spawn(case(ctx)).await
    }

    fn rethrow(r: Result<(), tokio::task::JoinError>) {
        if let Err(e) = r {
            match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(e) => panic!("test task failed: {e}"),
            }
        }
    }

    /// A fresh directory under the system temp dir.
    pub fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(unique("shomei-registry-test"));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    /// Runs a case on a fresh SQLite file.
    pub async fn sqlite(case: fn(Ctx) -> CaseFuture) {
        let dir = temp_dir();
        let url = format!("sqlite:{}", dir.join("registry.db").display());
        let reg = shomei_registry::open(&url).await.expect("open sqlite");
        let r = run(Ctx { url, reg }, case).await;
        let _ = std::fs::remove_dir_all(&dir);
        rethrow(r);
    }

    /// `base` with its database name replaced by `db`.
    fn with_database(base: &str, db: &str) -> String {
        let (head, query) = match base.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (base, None),
        };
        let after_scheme = head.find("://").map_or(0, |i| i + 3);
        let host_end = head[after_scheme..]
            .find('/')
            .map_or(head.len(), |i| after_scheme + i);
        let mut url = format!("{}/{db}", &head[..host_end]);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// The server to test PostgreSQL on, or `None` (skip) outside CI.
    pub fn postgres_url() -> Option<String> {
        match std::env::var("SHOMEI_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var_os("CI").is_some() => {
                panic!("SHOMEI_TEST_POSTGRES_URL is not set, and CI is: PostgreSQL tests must run")
            }
            _ => {
                eprintln!("skipped: SHOMEI_TEST_POSTGRES_URL is not set (PostgreSQL test)");
                None
            }
        }
    }

    /// Runs a case on a fresh PostgreSQL database, dropped afterwards.
    pub async fn postgres(case: fn(Ctx) -> CaseFuture) {
        let Some(base) = postgres_url() else { return };
        let name = unique("shomei_test");
        let mut admin = sqlx::PgConnection::connect(&base)
            .await
            .expect("connect to SHOMEI_TEST_POSTGRES_URL");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = with_database(&base, &name);
        let opened = shomei_registry::open(&url).await;
        let r = match opened {
            Ok(reg) => Some(run(Ctx { url, reg }, case).await),
            Err(e) => {
                eprintln!("open postgres: {e}");
                None
            }
        };
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop test database");
        let _ = admin.close().await;
        rethrow(r.expect("open postgres"));
    }

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}

mod fixtures {
    use shomei_core::{BasicFour, CertClass, CertStatus, Serial, Sex, Timestamp};
    use shomei_registry::{Actor, CertRecord, DeviceRecord, Enrolment, Event, HolderRecord};
    use time::Duration;
    use time::macros::datetime;

    /// Enrolment time.
    pub const T0: Timestamp = datetime!(2026-11-21 9:00 UTC);
    /// Some days later.
    pub const T1: Timestamp = datetime!(2026-12-01 10:30:15.250 UTC);

    /// The personal data every fixture holder carries (checked for in error messages).
    pub const NAME: &str = "山田 太郎";
    pub const ADDRESS: &str = "東京都千代田区千代田1-1";
    pub const BIRTH: &str = "1990-04-01";

    pub fn serial(n: u32) -> Serial {
        let b = n.to_be_bytes();
        Serial::from_be_bytes(&[0x40, 0, 0, 0, b[0], b[1], b[2], b[3]]).unwrap()
    }

    pub fn basic_four() -> BasicFour {
        BasicFour::new(NAME, ADDRESS, BIRTH.parse().unwrap(), Sex::Male).unwrap()
    }

    pub fn holder(id: &str) -> HolderRecord {
        HolderRecord {
            id: id.to_owned(),
            basic_four: basic_four(),
            created_at: T0,
            updated_at: T0,
        }
    }

    pub fn cert(n: u32, class: CertClass, holder_id: &str) -> CertRecord {
        CertRecord {
            serial: serial(n),
            class,
            holder_id: holder_id.to_owned(),
            card_id: (!class.is_phone()).then(|| format!("card-{holder_id}")),
            device_id: None,
            status: CertStatus::Active,
            reason: None,
            status_changed_at: None,
            not_before: T0,
            not_after: T0 + Duration::days(5 * 365),
            shard: 0,
            parent: None,
            pair: None,
            replaces: None,
            der: vec![0x30, 0x03, 0x02, 0x01, n as u8],
            issued_at: T0,
        }
    }

    pub fn event(action: &str, holder_id: Option<&str>, serial: Option<Serial>) -> Event {
        Event {
            at: T0,
            actor: Actor::Operator("op-7".into()),
            action: action.to_owned(),
            holder_id: holder_id.map(str::to_owned),
            serial,
            detail: serde_json::json!({ "request": action }),
        }
    }

    /// A holder with a card and its sign/auth pair, serials `2n` and `2n+1`.
    pub fn enrolment(id: &str, n: u32) -> Enrolment {
        let mut sign = cert(2 * n, CertClass::CardSign, id);
        let mut auth = cert(2 * n + 1, CertClass::CardAuth, id);
        sign.pair = Some(auth.serial.clone());
        auth.pair = Some(sign.serial.clone());
        Enrolment {
            holder: holder(id),
            card_id: format!("card-{id}"),
            events: vec![
                event("enrol", Some(id), None),
                event("issue", Some(id), Some(sign.serial.clone())),
            ],
            certificates: vec![sign, auth],
        }
    }

    pub fn device(id: &str, holder_id: &str) -> DeviceRecord {
        DeviceRecord {
            id: id.to_owned(),
            holder_id: holder_id.to_owned(),
            kind: "android".into(),
            status: "active".into(),
            created_at: T1,
            wiped_at: None,
        }
    }

    /// Phone certificates derived from an enrolment's card pair, serials
    /// `2n` and `2n+1`, on `device`.
    pub fn phone_pair(e: &Enrolment, n: u32, device: &str) -> Vec<CertRecord> {
        let id = &e.holder.id;
        let mut sign = cert(2 * n, CertClass::PhoneSign, id);
        let mut auth = cert(2 * n + 1, CertClass::PhoneAuth, id);
        for (c, parent) in [
            (&mut sign, &e.certificates[0]),
            (&mut auth, &e.certificates[1]),
        ] {
            c.device_id = Some(device.to_owned());
            c.parent = Some(parent.serial.clone());
            c.issued_at = T1;
            c.not_before = T1;
        }
        sign.pair = Some(auth.serial.clone());
        auth.pair = Some(sign.serial.clone());
        vec![sign, auth]
    }
}

mod cases {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Instant;

    use shomei_core::{
        Action, BasicFour, CertClass, CertStatus, Credential, Plan, RevocationReason, Sex,
        StatusChange,
    };
    use shomei_registry::{Actor, CardRecord, Event, Registry, RegistryError, RevokedEntry};
    use time::Duration;

    use super::Ctx;
    use super::fixtures::*;

    async fn credentials(reg: &dyn Registry, holder: &str) -> Vec<Credential> {
        reg.holder_certificates(holder)
            .await
            .unwrap()
            .iter()
            .map(|c| c.credential())
            .collect()
    }

    pub async fn enrol_then_read_back_everything(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h1", 1);
        reg.enrol(&e).await.unwrap();

        assert_eq!(reg.holder("h1").await.unwrap(), Some(e.holder.clone()));
        assert_eq!(reg.holder("nobody").await.unwrap(), None);
        let card = CardRecord {
            id: "card-h1".into(),
            holder_id: "h1".into(),
            created_at: T0,
        };
        assert_eq!(reg.card("card-h1").await.unwrap(), Some(card.clone()));
        assert_eq!(reg.holder_cards("h1").await.unwrap(), vec![card]);
        for c in &e.certificates {
            assert_eq!(reg.certificate(&c.serial).await.unwrap().as_ref(), Some(c));
        }
        assert_eq!(reg.certificate(&serial(999)).await.unwrap(), None);
        assert_eq!(reg.holder_certificates("h1").await.unwrap(), e.certificates);
        assert_eq!(reg.events_for_holder("h1").await.unwrap(), e.events);

        // A phone, and certificates derived from the card's.
        let dev = device("phone-1", "h1");
        reg.add_device(&dev, &[event("add-device", Some("h1"), None)])
            .await
            .unwrap();
        assert_eq!(reg.device("phone-1").await.unwrap(), Some(dev.clone()));
        assert_eq!(reg.holder_devices("h1").await.unwrap(), vec![dev]);
        let mut phone = phone_pair(&e, 50, "phone-1");
        // Sub-microsecond precision is dropped; offsets come back as UTC.
        phone[1].issued_at = T1.to_offset(time::macros::offset!(+9)) + Duration::nanoseconds(789);
        reg.add_certificates(&phone, &[event("issue-phone", Some("h1"), None)])
            .await
            .unwrap();
        let back = reg.certificate(&phone[1].serial).await.unwrap().unwrap();
        assert_eq!(back.issued_at, T1);
        assert_eq!(back.issued_at.offset(), time::UtcOffset::UTC);
        phone[1].issued_at = T1;
        assert_eq!(back, phone[1]);
        let sign = reg.certificate(&phone[0].serial).await.unwrap().unwrap();
        assert_eq!(sign, phone[0]);
        assert_eq!(
            sign.credential().parent,
            Some(e.certificates[0].serial.clone())
        );
        assert_eq!(reg.holder_certificates("h1").await.unwrap().len(), 4);

        let statuses = reg.statuses().await.unwrap();
        assert_eq!(statuses.len(), 4);
        assert!(
            statuses
                .iter()
                .all(|s| s.2 == CertStatus::Active && s.3.is_none() && s.4.is_none())
        );
        assert!(
            statuses
                .iter()
                .any(|s| s.0 == phone[0].serial && s.1 == CertClass::PhoneSign)
        );

        reg.wipe_device("phone-1", T1, &[]).await.unwrap();
        let wiped = reg.device("phone-1").await.unwrap().unwrap();
        assert_eq!((wiped.status.as_str(), wiped.wiped_at), ("wiped", Some(T1)));
        assert!(matches!(
            reg.wipe_device("nope", T1, &[]).await,
            Err(RegistryError::NotFound { .. })
        ));

        // A re-issued card.
        let card2 = CardRecord {
            id: "card-h1-2".into(),
            holder_id: "h1".into(),
            created_at: T1,
        };
        let mut c2 = cert(60, CertClass::CardSign, "h1");
        c2.card_id = Some(card2.id.clone());
        c2.replaces = Some(e.certificates[0].serial.clone());
        reg.add_card(&card2, std::slice::from_ref(&c2), &[])
            .await
            .unwrap();
        assert_eq!(reg.holder_cards("h1").await.unwrap().len(), 2);
        assert_eq!(reg.certificate(&c2.serial).await.unwrap(), Some(c2));
    }

    pub async fn enrol_is_all_or_nothing_on_duplicate_serial(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let a = enrolment("a", 1);
        reg.enrol(&a).await.unwrap();

        // b's auth certificate reuses a's sign serial.
        let mut b = enrolment("b", 2);
        b.certificates[1].serial = a.certificates[0].serial.clone();
        b.certificates[0].pair = Some(a.certificates[0].serial.clone());
        let err = reg.enrol(&b).await.unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        assert_eq!(reg.holder("b").await.unwrap(), None);
        assert_eq!(reg.card("card-b").await.unwrap(), None);
        assert_eq!(
            reg.certificate(&b.certificates[0].serial).await.unwrap(),
            None
        );
        assert!(reg.events_for_holder("b").await.unwrap().is_empty());
        assert_eq!(
            reg.certificate(&a.certificates[0].serial)
                .await
                .unwrap()
                .as_ref(),
            Some(&a.certificates[0])
        );

        // A reused holder id is refused too, leaving its certificates out.
        let again = enrolment("a", 3);
        assert!(matches!(
            reg.enrol(&again).await,
            Err(RegistryError::Duplicate { .. })
        ));
        assert_eq!(
            reg.certificate(&again.certificates[0].serial)
                .await
                .unwrap(),
            None
        );

        // In a batch, the bad item fails alone.
        let c = enrolment("c", 4);
        let mut d = enrolment("d", 5);
        d.certificates[0].serial = a.certificates[1].serial.clone();
        d.certificates[1].pair = Some(a.certificates[1].serial.clone());
        let e = enrolment("e", 6);
        let results = reg
            .enrol_batch(&[c.clone(), d.clone(), e.clone()])
            .await
            .unwrap();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(RegistryError::Duplicate { .. })));
        assert_eq!(reg.holder("c").await.unwrap(), Some(c.holder.clone()));
        assert_eq!(reg.holder_certificates("e").await.unwrap(), e.certificates);
        assert_eq!(reg.holder("d").await.unwrap(), None);
        assert_eq!(
            reg.certificate(&d.certificates[1].serial).await.unwrap(),
            None
        );
        assert!(reg.events_for_holder("d").await.unwrap().is_empty());
        assert_eq!(reg.enrol_batch(&[]).await.unwrap().len(), 0);

        // A certificate naming another holder is refused before touching anything.
        let mut f = enrolment("f", 7);
        f.certificates[1].holder_id = "a".into();
        assert!(matches!(
            reg.enrol(&f).await,
            Err(RegistryError::Invalid(_))
        ));
        assert_eq!(reg.holder("f").await.unwrap(), None);
    }

    pub async fn apply_plan_is_atomic_and_rejects_stale_from(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        let (sign, auth) = (&e.certificates[0], &e.certificates[1]);
        let events_before = reg.events_for_holder("h").await.unwrap();

        // First change fine, second stale: nothing happens.
        let stale = Plan {
            changes: vec![
                StatusChange {
                    serial: sign.serial.clone(),
                    from: CertStatus::Active,
                    to: CertStatus::Revoked,
                    reason: Some(RevocationReason::KeyCompromise),
                },
                StatusChange {
                    serial: auth.serial.clone(),
                    from: CertStatus::Suspended,
                    to: CertStatus::Active,
                    reason: None,
                },
            ],
        };
        let err = reg
            .apply(&stale, T1, &[event("revoke", Some("h"), None)])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            RegistryError::Conflict {
                serial: auth.serial.clone()
            }
        );
        assert_eq!(
            reg.certificate(&sign.serial).await.unwrap().as_ref(),
            Some(sign)
        );
        assert_eq!(
            reg.certificate(&auth.serial).await.unwrap().as_ref(),
            Some(auth)
        );
        assert_eq!(reg.events_for_holder("h").await.unwrap(), events_before);

        // A plan from the core planner goes through.
        let creds = credentials(reg, "h").await;
        let suspend = Plan::for_action(&creds, &sign.serial, Action::Suspend, T1).unwrap();
        reg.apply(&suspend, T1, &[event("suspend", Some("h"), None)])
            .await
            .unwrap();
        let now = reg.certificate(&sign.serial).await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.reason, now.status_changed_at),
            (CertStatus::Suspended, None, Some(T1))
        );
        // The same plan again is stale.
        assert_eq!(
            reg.apply(&suspend, T1, &[]).await,
            Err(RegistryError::Conflict {
                serial: sign.serial.clone()
            })
        );

        // Revoke from a fresh read.
        let creds = credentials(reg, "h").await;
        let t2 = T1 + Duration::hours(1);
        let revoke = Plan::for_action(
            &creds,
            &sign.serial,
            Action::Revoke(RevocationReason::KeyCompromise),
            t2,
        )
        .unwrap();
        reg.apply(&revoke, t2, &[]).await.unwrap();
        let now = reg.certificate(&sign.serial).await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.reason, now.status_changed_at),
            (
                CertStatus::Revoked,
                Some(RevocationReason::KeyCompromise),
                Some(t2)
            )
        );

        // Unknown serial; illegal transitions; reasons that do not fit.
        let change = |from, to, reason| Plan {
            changes: vec![StatusChange {
                serial: auth.serial.clone(),
                from,
                to,
                reason,
            }],
        };
        let unknown = Plan {
            changes: vec![StatusChange {
                serial: serial(999),
                from: CertStatus::Active,
                to: CertStatus::Suspended,
                reason: None,
            }],
        };
        assert!(matches!(
            reg.apply(&unknown, t2, &[]).await,
            Err(RegistryError::NotFound { .. })
        ));
        for bad in [
            change(CertStatus::Revoked, CertStatus::Active, None),
            change(CertStatus::Active, CertStatus::Revoked, None),
            change(
                CertStatus::Active,
                CertStatus::Revoked,
                Some(RevocationReason::CertificateHold),
            ),
            change(
                CertStatus::Active,
                CertStatus::Suspended,
                Some(RevocationReason::Unspecified),
            ),
        ] {
            assert!(matches!(
                reg.apply(&bad, t2, &[]).await,
                Err(RegistryError::Invalid(_))
            ));
        }

        // Past its notAfter, a stored active certificate counts as expired.
        let late = auth.not_after + Duration::seconds(1);
        let err = reg
            .apply(
                &change(CertStatus::Active, CertStatus::Suspended, None),
                late,
                &[],
            )
            .await;
        assert_eq!(
            err,
            Err(RegistryError::Conflict {
                serial: auth.serial.clone()
            })
        );
        // ...and the planner agrees there is nothing to do.
        let creds = credentials(reg, "h").await;
        assert!(Plan::for_action(&creds, &auth.serial, Action::Suspend, late).is_err());
        assert_eq!(
            reg.certificate(&auth.serial).await.unwrap().as_ref(),
            Some(auth)
        );
    }

    pub async fn revoked_entries_include_holds_and_skip_expired(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        let short_life = T1 + Duration::days(3);
        let mut extra = Vec::new();
        for (n, class, shard, not_after) in [
            (10, CertClass::CardSign, 0, None),             // revoke
            (11, CertClass::CardSign, 0, None),             // suspend
            (12, CertClass::CardSign, 0, None),             // stays active
            (13, CertClass::CardSign, 0, Some(short_life)), // revoke, then expires
            (14, CertClass::CardSign, 1, None),             // revoke, other shard
            (15, CertClass::CardAuth, 0, None),             // revoke, other class
            (16, CertClass::CardSign, 0, Some(short_life)), // suspend, then expires
        ] {
            let mut c = cert(n, class, "h");
            c.shard = shard;
            if let Some(na) = not_after {
                c.not_after = na;
            }
            extra.push(c);
        }
        reg.add_certificates(&extra, &[]).await.unwrap();
        let change = |n: u32, to, reason| StatusChange {
            serial: serial(n),
            from: CertStatus::Active,
            to,
            reason,
        };
        let kc = Some(RevocationReason::KeyCompromise);
        let plan = Plan {
            changes: vec![
                change(10, CertStatus::Revoked, kc),
                change(11, CertStatus::Suspended, None),
                change(13, CertStatus::Revoked, Some(RevocationReason::Superseded)),
                change(14, CertStatus::Revoked, kc),
                change(15, CertStatus::Revoked, kc),
                change(16, CertStatus::Suspended, None),
            ],
        };
        reg.apply(&plan, T1, &[]).await.unwrap();

        let entry = |n, reason| RevokedEntry {
            serial: serial(n),
            at: T1,
            reason,
        };
        let hold = RevocationReason::CertificateHold;
        let before_expiry = reg
            .revoked_entries(CertClass::CardSign, 0, T1 + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(
            before_expiry,
            vec![
                entry(10, RevocationReason::KeyCompromise),
                entry(11, hold),
                entry(13, RevocationReason::Superseded),
                entry(16, hold),
            ]
        );
        // On the notAfter instant itself a certificate is still listed.
        assert_eq!(
            reg.revoked_entries(CertClass::CardSign, 0, short_life)
                .await
                .unwrap()
                .len(),
            4
        );
        let after_expiry = reg
            .revoked_entries(CertClass::CardSign, 0, short_life + Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(
            after_expiry,
            vec![entry(10, RevocationReason::KeyCompromise), entry(11, hold)]
        );
        assert_eq!(
            reg.revoked_entries(CertClass::CardSign, 1, T1)
                .await
                .unwrap(),
            vec![entry(14, RevocationReason::KeyCompromise)]
        );
        assert_eq!(
            reg.revoked_entries(CertClass::CardAuth, 0, T1)
                .await
                .unwrap(),
            vec![entry(15, RevocationReason::KeyCompromise)]
        );
        assert!(
            reg.revoked_entries(CertClass::PhoneSign, 0, T1)
                .await
                .unwrap()
                .is_empty()
        );

        // Resuming lifts the hold off the list.
        let t2 = T1 + Duration::hours(2);
        let resume = Plan {
            changes: vec![StatusChange {
                serial: serial(11),
                from: CertStatus::Suspended,
                to: CertStatus::Active,
                reason: None,
            }],
        };
        reg.apply(&resume, t2, &[]).await.unwrap();
        assert_eq!(
            reg.revoked_entries(CertClass::CardSign, 0, t2)
                .await
                .unwrap(),
            vec![
                entry(10, RevocationReason::KeyCompromise),
                entry(13, RevocationReason::Superseded),
                entry(16, hold),
            ]
        );
    }

    pub async fn crl_numbers_increase_per_shard(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        for want in 1..=3 {
            assert_eq!(
                reg.next_crl_number(CertClass::CardSign, 0).await.unwrap(),
                want
            );
        }
        assert_eq!(
            reg.next_crl_number(CertClass::CardSign, 1).await.unwrap(),
            1
        );
        assert_eq!(
            reg.next_crl_number(CertClass::CardAuth, 0).await.unwrap(),
            1
        );
        assert_eq!(
            reg.next_crl_number(CertClass::CardSign, 0).await.unwrap(),
            4
        );

        // Concurrent takers never get the same number.
        let mut tasks = Vec::new();
        for _ in 0..24 {
            let reg = ctx.reg.clone();
            tasks.push(tokio::spawn(async move {
                reg.next_crl_number(CertClass::PhoneAuth, 7).await.unwrap()
            }));
        }
        let mut got = BTreeSet::new();
        for t in tasks {
            got.insert(t.await.unwrap());
        }
        assert_eq!(got, (1..=24).collect());
    }

    pub async fn basic_four_change_updates_holder_and_revokes_atomically(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        reg.add_device(&device("p", "h"), &[]).await.unwrap();
        let phone = phone_pair(&e, 10, "p");
        reg.add_certificates(&phone, &[]).await.unwrap();

        let moved = BasicFour::new(
            NAME,
            "大阪府大阪市北区1-1",
            BIRTH.parse().unwrap(),
            Sex::Male,
        )
        .unwrap();
        let creds = credentials(reg, "h").await;
        let plan = Plan::for_basic_four_change(&creds, T1);
        assert_eq!(plan.changes.len(), 2);
        reg.change_basic_four(
            "h",
            &moved,
            &plan,
            T1,
            &[event("change-basic-four", Some("h"), None)],
        )
        .await
        .unwrap();

        let holder = reg.holder("h").await.unwrap().unwrap();
        assert_eq!(holder.basic_four, moved);
        assert_eq!((holder.created_at, holder.updated_at), (T0, T1));
        for c in reg.holder_certificates("h").await.unwrap() {
            if c.class.carries_basic_four() {
                assert_eq!(c.status, CertStatus::Revoked);
                assert_eq!(c.reason, Some(RevocationReason::AffiliationChanged));
                assert_eq!(c.status_changed_at, Some(T1));
            } else {
                assert_eq!(c.status, CertStatus::Active);
            }
        }
        assert_eq!(
            reg.events_for_holder("h")
                .await
                .unwrap()
                .last()
                .unwrap()
                .action,
            "change-basic-four"
        );

        // A stale plan (already applied) refuses the whole change: the
        // holder keeps the address of the change that did go through.
        let again =
            BasicFour::new(NAME, "北海道札幌市", BIRTH.parse().unwrap(), Sex::Male).unwrap();
        let t2 = T1 + Duration::days(1);
        assert!(matches!(
            reg.change_basic_four("h", &again, &plan, t2, &[event("x", Some("h"), None)])
                .await,
            Err(RegistryError::Conflict { .. })
        ));
        let holder = reg.holder("h").await.unwrap().unwrap();
        assert_eq!((holder.basic_four, holder.updated_at), (moved, T1));
        assert_ne!(
            reg.events_for_holder("h")
                .await
                .unwrap()
                .last()
                .unwrap()
                .action,
            "x"
        );

        // Unknown holder: nothing happens, not even the plan.
        let creds = credentials(reg, "h").await;
        let suspend =
            Plan::for_action(&creds, &e.certificates[1].serial, Action::Suspend, t2).unwrap();
        assert!(matches!(
            reg.change_basic_four("ghost", &again, &suspend, t2, &[])
                .await,
            Err(RegistryError::NotFound { .. })
        ));
        assert_eq!(
            reg.certificate(&e.certificates[1].serial)
                .await
                .unwrap()
                .unwrap()
                .status,
            CertStatus::Active
        );
    }

    pub async fn renewal_supersedes_old_and_links_new_atomically(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("r", 1);
        reg.enrol(&e).await.unwrap();
        let old = e.certificates[0].serial.clone();
        let mut new = cert(90, CertClass::CardSign, "r");
        new.replaces = Some(old.clone());
        new.pair = e.certificates[0].pair.clone();
        let plan = Plan::for_renewal(&credentials(reg, "r").await, &old, T1).unwrap();
        // A duplicate serial in the new set aborts everything, revocation included.
        let mut dup = cert(3, CertClass::CardSign, "r");
        dup.replaces = Some(old.clone());
        let err = reg.replace(&plan, &[dup], T1, &[]).await.unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        assert_eq!(
            reg.certificate(&old).await.unwrap().unwrap().status,
            CertStatus::Active
        );
        reg.replace(
            &plan,
            std::slice::from_ref(&new),
            T1,
            &[event("renewed", Some("r"), Some(old.clone()))],
        )
        .await
        .unwrap();
        let old_rec = reg.certificate(&old).await.unwrap().unwrap();
        assert_eq!(
            (old_rec.status, old_rec.reason),
            (CertStatus::Revoked, Some(RevocationReason::Superseded))
        );
        let new_rec = reg.certificate(&new.serial).await.unwrap().unwrap();
        assert_eq!(new_rec.replaces, Some(old.clone()));
        assert_eq!(new_rec.status, CertStatus::Active);
        // Replaying the same plan is a conflict: the old one is no longer active.
        let err = reg.replace(&plan, &[], T1, &[]).await.unwrap_err();
        assert!(matches!(err, RegistryError::Conflict { .. }), "{err:?}");
    }

    pub async fn events_are_recorded_in_order(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        reg.enrol(&enrolment("other", 2)).await.unwrap();
        let sign = e.certificates[0].serial.clone();
        let at = |m: i64| T1 + Duration::minutes(m);
        let by_holder = Event {
            at: at(1),
            actor: Actor::Holder("h".into()),
            action: "suspend".into(),
            holder_id: Some("h".into()),
            serial: Some(sign.clone()),
            detail: serde_json::json!({ "channel": "コールセンター", "n": [1, 2.5, null] }),
        };
        let by_system = Event {
            at: at(2),
            actor: Actor::System,
            action: "ocsp-refresh".into(),
            holder_id: Some("h".into()),
            serial: None,
            detail: serde_json::Value::Null,
        };
        let unrelated = Event {
            at: at(3),
            actor: Actor::System,
            action: "crl-publish".into(),
            holder_id: None,
            serial: None,
            detail: serde_json::json!({}),
        };
        let creds = credentials(reg, "h").await;
        let plan = Plan::for_action(&creds, &sign, Action::Suspend, at(1)).unwrap();
        reg.apply(
            &plan,
            at(1),
            &[by_holder.clone(), by_system.clone(), unrelated],
        )
        .await
        .unwrap();
        let by_operator = Event {
            at: at(4),
            ..event("add-device", Some("h"), None)
        };
        reg.add_device(&device("p", "h"), std::slice::from_ref(&by_operator))
            .await
            .unwrap();

        let mut want = e.events.clone();
        want.extend([by_holder.clone(), by_system, by_operator]);
        assert_eq!(reg.events_for_holder("h").await.unwrap(), want);
        assert_eq!(
            reg.events_for_certificate(&sign).await.unwrap(),
            vec![e.events[1].clone(), by_holder]
        );
        assert_eq!(reg.events_for_holder("nobody").await.unwrap(), vec![]);
    }

    pub async fn concurrent_enrols_are_group_committed_and_all_land(ctx: Ctx) {
        const N: u32 = 200;
        const BAD: u32 = 10;
        let reg = ctx.reg.clone();
        // Holders whose serials the bad enrolments will reuse.
        for i in 0..BAD {
            reg.enrol(&enrolment(&format!("pre{i}"), 10_000 + i))
                .await
                .unwrap();
        }
        let sequential = Instant::now();
        const SEQ: u32 = 20;
        for i in 0..SEQ {
            reg.enrol(&enrolment(&format!("seq{i}"), 20_000 + i))
                .await
                .unwrap();
        }
        let sequential = sequential.elapsed();

        let before = reg.group_commit_stats();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..N + BAD {
            let reg: Arc<dyn Registry> = reg.clone();
            tasks.push(tokio::spawn(async move {
                let e = if i < N {
                    enrolment(&format!("c{i}"), 1 + i)
                } else {
                    let mut e = enrolment(&format!("bad{i}"), 30_000 + i);
                    e.certificates[1].serial = serial(2 * (10_000 + i - N));
                    e.certificates[0].pair = None;
                    e
                };
                (i, reg.enrol(&e).await)
            }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            if i < N {
                r.unwrap_or_else(|e| panic!("enrolment {i}: {e}"));
            } else {
                assert!(
                    matches!(r, Err(RegistryError::Duplicate { .. })),
                    "{i}: {r:?}"
                );
            }
        }
        let concurrent = started.elapsed();
        let after = reg.group_commit_stats();
        let transactions = after.transactions - before.transactions;
        let enrolments = after.enrolments - before.enrolments;
        eprintln!(
            "[{}] sequential: {SEQ} enrols in {:?} ({:.2} ms each); concurrent: {} enrols in {:?} \
             ({:.2} ms each) over {transactions} transactions (largest batch {})",
            reg.backend(),
            sequential,
            sequential.as_secs_f64() * 1000.0 / f64::from(SEQ),
            N + BAD,
            concurrent,
            concurrent.as_secs_f64() * 1000.0 / f64::from(N + BAD),
            after.largest_batch,
        );
        assert_eq!(enrolments, u64::from(N + BAD));
        assert!(
            transactions < enrolments,
            "expected grouping: {transactions} transactions for {enrolments} enrolments"
        );

        for i in 0..N {
            let id = format!("c{i}");
            assert!(reg.holder(&id).await.unwrap().is_some(), "{id} missing");
            assert_eq!(reg.holder_certificates(&id).await.unwrap().len(), 2);
            assert_eq!(reg.events_for_holder(&id).await.unwrap().len(), 2);
        }
        for i in N..N + BAD {
            let id = format!("bad{i}");
            assert_eq!(reg.holder(&id).await.unwrap(), None);
            assert!(reg.events_for_holder(&id).await.unwrap().is_empty());
        }
        assert_eq!(
            reg.statuses().await.unwrap().len(),
            2 * (N + BAD + SEQ) as usize
        );
    }

    pub async fn reopening_keeps_data(ctx: Ctx) {
        let e = enrolment("h", 1);
        ctx.reg.enrol(&e).await.unwrap();
        assert_eq!(
            ctx.reg
                .next_crl_number(CertClass::CardSign, 0)
                .await
                .unwrap(),
            1
        );
        ctx.reg.close().await;
        drop(ctx.reg);

        let reg = shomei_registry::open(&ctx.url).await.unwrap();
        assert_eq!(reg.holder("h").await.unwrap(), Some(e.holder.clone()));
        assert_eq!(reg.holder_certificates("h").await.unwrap(), e.certificates);
        assert_eq!(reg.events_for_holder("h").await.unwrap(), e.events);
        assert_eq!(
            reg.next_crl_number(CertClass::CardSign, 0).await.unwrap(),
            2
        );
        // Two registries on one database see each other's writes.
        let second = shomei_registry::open(&ctx.url).await.unwrap();
        second.enrol(&enrolment("h2", 2)).await.unwrap();
        assert!(reg.holder("h2").await.unwrap().is_some());
        reg.close().await;
        second.close().await;
    }

    pub async fn personal_data_never_in_error_messages(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        let mut errors = Vec::new();

        // Same holder again (duplicate id, same personal data).
        errors.push(reg.enrol(&enrolment("h", 2)).await.unwrap_err());
        // Duplicate serial.
        let mut dup = enrolment("h2", 3);
        dup.certificates[0].serial = e.certificates[1].serial.clone();
        errors.push(reg.enrol(&dup).await.unwrap_err());
        let results = reg.enrol_batch(&[enrolment("h", 4)]).await.unwrap();
        errors.extend(results.into_iter().filter_map(Result::err));
        // Unknown holder referenced (foreign key).
        errors.push(
            reg.add_certificates(&[cert(40, CertClass::PhoneSign, "ghost")], &[])
                .await
                .unwrap_err(),
        );
        // Basic-four change on an unknown holder.
        errors.push(
            reg.change_basic_four("ghost", &basic_four(), &Plan::default(), T1, &[])
                .await
                .unwrap_err(),
        );
        // A timestamp out of range.
        let mut far = enrolment("h3", 5);
        far.holder.created_at = T0.replace_year(0).unwrap();
        errors.push(reg.enrol(&far).await.unwrap_err());

        assert!(errors.len() >= 6);
        let forbidden = ["山田", "太郎", "千代田", "東京", "1990", "大阪"];
        for err in &errors {
            for text in [err.to_string(), format!("{err:?}")] {
                for f in forbidden {
                    assert!(!text.contains(f), "{f:?} leaked in {text:?}");
                }
            }
        }
        // The holder record's own Debug is redacted too.
        let dbg = format!("{:?}", reg.holder("h").await.unwrap());
        assert!(forbidden.iter().all(|f| !dbg.contains(f)), "{dbg}");
    }
}

/// Instantiates every case for both back ends.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::sqlite(|ctx| Box::pin(crate::cases::$case(ctx))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::postgres(|ctx| Box::pin(crate::cases::$case(ctx))).await;
                }
            )*
        }
    };
}

suite!(
    enrol_then_read_back_everything,
    enrol_is_all_or_nothing_on_duplicate_serial,
    apply_plan_is_atomic_and_rejects_stale_from,
    revoked_entries_include_holds_and_skip_expired,
    crl_numbers_increase_per_shard,
    basic_four_change_updates_holder_and_revokes_atomically,
    events_are_recorded_in_order,
    renewal_supersedes_old_and_links_new_atomically,
    concurrent_enrols_are_group_committed_and_all_land,
    reopening_keeps_data,
    personal_data_never_in_error_messages,
);

/// SQLite specifics: file paths with and without the `sqlite:` prefix,
/// WAL mode, and data surviving a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_sqlite_keeps_data() {
    let dir = harness::temp_dir();
    let path = dir.join("authority.db");
    let e = fixtures::enrolment("h", 1);
    {
        let reg = shomei_registry::open(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        assert_eq!(reg.backend(), "sqlite");
        reg.enrol(&e).await.unwrap();
        assert!(
            dir.join("authority.db-wal").exists(),
            "the database runs in WAL mode"
        );
        reg.close().await;
    }
    // A plain path names the same file.
    let reg = shomei_registry::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(reg.holder("h").await.unwrap(), Some(e.holder.clone()));
    assert_eq!(reg.holder_certificates("h").await.unwrap(), e.certificates);
    reg.close().await;
    drop(reg);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An in-memory SQLite registry works (handy for other crates' tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_works() {
    let reg = shomei_registry::open("sqlite::memory:").await.unwrap();
    let e = fixtures::enrolment("h", 1);
    reg.enrol(&e).await.unwrap();
    assert_eq!(reg.holder_certificates("h").await.unwrap(), e.certificates);
}

/// Bad URLs are refused without repeating them (they may hold a password).
#[tokio::test]
async fn bad_urls_are_refused_without_echo() {
    for url in [
        "",
        "mysql://user:hunter2@db/x",
        "postgres://user:hunter2@[/x",
    ] {
        match shomei_registry::open(url).await {
            Err(e @ shomei_registry::RegistryError::BadUrl(_)) => {
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
            Err(e) => panic!("{url:?}: expected BadUrl, got {e:?}"),
            Ok(_) => panic!("{url:?}: expected BadUrl"),
        }
    }
}

/// The PostgreSQL suite cannot be skipped silently in CI.
#[test]
fn postgres_is_required_in_ci() {
    if std::env::var_os("CI").is_some() {
        assert!(
            harness::postgres_url().is_some(),
            "CI must set SHOMEI_TEST_POSTGRES_URL"
        );
    }
}
