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
    use shomei_registry::{
        Actor, CertRecord, DeviceRecord, DeviceStatus, Enrolment, Event, HolderRecord,
    };
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
            status: DeviceStatus::Active,
            created_at: T1,
            status_changed_at: None,
            wipe_requested_at: None,
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

    use shomei_core::Serial;
    use shomei_core::{
        Action, BasicFour, CertClass, CertStatus, Credential, Plan, RevocationReason, Sex,
        StatusChange,
    };
    use shomei_registry::{
        Actor, CardRecord, CertRecord, DeviceProvisioning, DeviceStatus, Enrolment, Event,
        HolderContact, HolderRecord, ReaderRevocation, Registry, RegistryError, RelyingPartyRecord,
        RevokedEntry, WipeReason,
    };
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

        let plan = Plan::default();
        reg.request_wipe("phone-1", WipeReason::Requested, &plan, T1, &[])
            .await
            .unwrap();
        reg.confirm_wiped("phone-1", T1, &[]).await.unwrap();
        let wiped = reg.device("phone-1").await.unwrap().unwrap();
        assert_eq!(
            (wiped.status, wiped.wiped_at, wiped.wipe_requested_at),
            (DeviceStatus::Wiped, Some(T1), Some(T1))
        );
        assert!(matches!(
            reg.confirm_wiped("nope", T1, &[]).await,
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

    /// An enrolment as the one-by-one path and the batch both see it: a card
    /// pair, plus a third certificate derived from the sign certificate
    /// (parent inside the enrolment) and, when given, replacing `old`.
    fn rich_enrolment(id: &str, n: u32, old: Option<&Serial>) -> Enrolment {
        let mut e = enrolment(id, n);
        let mut extra = cert(1_000_000 + n, CertClass::CardSign, id);
        extra.parent = Some(e.certificates[0].serial.clone());
        extra.replaces = old.cloned();
        e.events
            .push(event("issue-extra", Some(id), Some(extra.serial.clone())));
        e.certificates.push(extra);
        e
    }

    /// What the registry holds of one enrolment: holder, cards,
    /// certificates (with their links) and events.
    async fn stored(
        reg: &dyn Registry,
        e: &Enrolment,
    ) -> (
        Option<HolderRecord>,
        Vec<CardRecord>,
        Vec<CertRecord>,
        Vec<Event>,
    ) {
        let id = &e.holder.id;
        (
            reg.holder(id).await.unwrap(),
            reg.holder_cards(id).await.unwrap(),
            reg.holder_certificates(id).await.unwrap(),
            reg.events_for_holder(id).await.unwrap(),
        )
    }

    /// A batch is written in bulk, but each enrolment still gets the answer
    /// (and leaves the rows) it would get on its own: one bad enrolment
    /// fails alone, links and events are those of the one-by-one path.
    pub async fn enrol_batch_matches_the_one_by_one_path(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let pre = enrolment("pre", 1);
        reg.enrol(&pre).await.unwrap();
        // One of each path replaces one of pre's certificates (a certificate
        // is replaced at most once).
        let (old_s, old_b) = (&pre.certificates[1].serial, &pre.certificates[0].serial);

        // The same shapes, one at a time (each its own transaction) …
        let singles: Vec<Enrolment> = (0..4)
            .map(|i| rich_enrolment(&format!("s{i}"), 10 + i, (i == 2).then_some(old_s)))
            .collect();
        for e in &singles {
            reg.enrol_batch(std::slice::from_ref(e)).await.unwrap()[0]
                .as_ref()
                .unwrap();
        }
        // … and in one batch.
        let batch: Vec<Enrolment> = (0..4)
            .map(|i| rich_enrolment(&format!("b{i}"), 20 + i, (i == 2).then_some(old_b)))
            .collect();
        let results = reg.enrol_batch(&batch).await.unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        for (s, b) in singles.iter().zip(&batch) {
            let (bh, bc, bcerts, bev) = stored(reg, b).await;
            let (sh, sc, scerts, sev) = stored(reg, s).await;
            assert_eq!(bh.as_ref(), Some(&b.holder));
            assert_eq!(bc.len(), 1);
            assert_eq!(bcerts, b.certificates, "links as given");
            assert_eq!(bev, b.events, "events in order");
            // Same shape as the one-by-one path, names aside.
            assert_eq!((sh.is_some(), sc.len(), scerts.len()), (true, 1, 3));
            assert_eq!(scerts, s.certificates);
            assert_eq!(sev, s.events);
            assert_eq!(
                reg.events_for_certificate(&b.certificates[2].serial)
                    .await
                    .unwrap(),
                vec![b.events[2].clone()]
            );
        }
        assert_eq!(
            reg.successor(old_s).await.unwrap().as_ref(),
            Some(&singles[2].certificates[2])
        );
        assert_eq!(
            reg.successor(old_b).await.unwrap().as_ref(),
            Some(&batch[2].certificates[2])
        );

        // One bad enrolment of each kind, each in a batch of good ones: it
        // alone fails, with the error it gets on its own, and leaves nothing.
        let mut dup_serial = rich_enrolment("x1", 40, None);
        dup_serial.certificates[1].serial = pre.certificates[0].serial.clone();
        dup_serial.certificates[0].pair = Some(pre.certificates[0].serial.clone());
        let dup_holder = rich_enrolment("s0", 41, None);
        let missing_link = rich_enrolment("x3", 42, Some(&serial(77_777)));
        let mut bad_status = rich_enrolment("x4", 43, None);
        bad_status.certificates[2].status = CertStatus::Revoked;
        let dup_replacement = rich_enrolment("x5", 44, Some(old_b));
        let bads = [
            dup_serial,
            dup_holder,
            missing_link,
            bad_status,
            dup_replacement,
        ];
        let alone: Vec<RegistryError> = {
            // Their answers on their own, in a registry state where they
            // fail for the same reason.
            let mut v = Vec::new();
            for b in &bads {
                v.push(reg.enrol(b).await.unwrap_err());
            }
            v
        };
        for (k, bad) in bads.iter().enumerate() {
            let k = k as u32;
            let goods: Vec<Enrolment> = (0..3)
                .map(|i| rich_enrolment(&format!("g{k}-{i}"), 100 + 10 * k + i, None))
                .collect();
            let mut items = goods.clone();
            items.insert(1, bad.clone());
            let results = reg.enrol_batch(&items).await.unwrap();
            assert_eq!(results.len(), 4);
            for (i, r) in results.iter().enumerate() {
                if i == 1 {
                    let err = r.as_ref().unwrap_err();
                    assert_eq!(err.to_string(), alone[k as usize].to_string());
                } else {
                    assert!(r.is_ok(), "{k}/{i}: {r:?}");
                }
            }
            for g in &goods {
                let (h, c, certs, ev) = stored(reg, g).await;
                assert_eq!(h.as_ref(), Some(&g.holder));
                assert_eq!(c.len(), 1);
                assert_eq!(certs, g.certificates);
                assert_eq!(ev, g.events);
            }
            if bad.holder.id != "s0" {
                assert_eq!(stored(reg, bad).await, (None, vec![], vec![], vec![]));
            }
            for c in &bad.certificates[2..] {
                assert_eq!(reg.certificate(&c.serial).await.unwrap(), None);
            }
        }
        // The holder "s0" is untouched by its duplicate.
        assert_eq!(stored(reg, &singles[0]).await.2, singles[0].certificates);

        // Two enrolments of one batch that clash with each other: the first wins.
        let first = rich_enrolment("twin", 200, None);
        let second = rich_enrolment("twin", 201, None);
        let results = reg
            .enrol_batch(&[first.clone(), second.clone()])
            .await
            .unwrap();
        assert!(results[0].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(RegistryError::Duplicate { .. })));
        assert_eq!(stored(reg, &first).await.2, first.certificates);
        assert_eq!(
            reg.certificate(&second.certificates[0].serial)
                .await
                .unwrap(),
            None
        );

        // A certificate linking to one of an earlier enrolment of the same
        // batch is stored, as one at a time; to a later one it is refused.
        let a = rich_enrolment("la", 210, None);
        let b = rich_enrolment("lb", 211, Some(&a.certificates[0].serial));
        let results = reg.enrol_batch(&[a.clone(), b.clone()]).await.unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(stored(reg, &b).await.2, b.certificates);
        let c = rich_enrolment("lc", 212, None);
        let d = rich_enrolment("ld", 213, Some(&c.certificates[0].serial));
        let results = reg.enrol_batch(&[d.clone(), c.clone()]).await.unwrap();
        assert!(
            matches!(results[0], Err(RegistryError::NotFound { .. })),
            "{results:?}"
        );
        assert!(results[1].is_ok());
        assert_eq!(reg.holder("ld").await.unwrap(), None);
        assert_eq!(stored(reg, &c).await.2, c.certificates);
    }

    /// A batch past every statement's parameter limit is split into several
    /// INSERTs and UPDATEs and still lands whole; one bad enrolment in such
    /// a batch fails alone.
    pub async fn enrol_batch_larger_than_one_statement(ctx: Ctx) {
        // 8 200 holders × 7 = 57 400 parameters (two statements on SQLite),
        // 16 400 certificates (5 statements on PostgreSQL, 9 on SQLite),
        // 16 400 links × 4 (2 on PostgreSQL, 3 on SQLite), 16 400 events × 7.
        const N: u32 = 8_200;
        let reg = ctx.reg.as_ref();
        let batch: Vec<Enrolment> = (0..N)
            .map(|i| enrolment(&format!("big{i}"), 1 + i))
            .collect();
        let started = Instant::now();
        let results = reg.enrol_batch(&batch).await.unwrap();
        eprintln!(
            "[{}] {N} enrolments in one batch: {:?}",
            reg.backend(),
            started.elapsed()
        );
        assert_eq!(results.len(), N as usize);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(reg.statuses().await.unwrap().len(), 2 * N as usize);
        for i in [0, 1, 2_047, 2_048, 4_095, 4_096, 8_191, N - 1] {
            let e = &batch[i as usize];
            let (h, c, certs, ev) = stored(reg, e).await;
            assert_eq!(h.as_ref(), Some(&e.holder), "{i}");
            assert_eq!(c.len(), 1);
            assert_eq!(certs, e.certificates, "{i}");
            assert_eq!(ev, e.events, "{i}");
        }
        // 2 100 more (4 200 certificates: past one statement on both back
        // ends), the one before last reusing a stored serial.
        const M: u32 = 2_100;
        let mut more: Vec<Enrolment> = (0..M)
            .map(|i| enrolment(&format!("more{i}"), 100_000 + i))
            .collect();
        let bad = M as usize - 2;
        more[bad].certificates[1].serial = batch[5].certificates[1].serial.clone();
        more[bad].certificates[0].pair = None;
        let results = reg.enrol_batch(&more).await.unwrap();
        for (i, r) in results.iter().enumerate() {
            if i == bad {
                assert!(matches!(r, Err(RegistryError::Duplicate { .. })), "{r:?}");
            } else {
                assert!(r.is_ok(), "{i}: {r:?}");
            }
        }
        assert_eq!(reg.holder(&more[bad].holder.id).await.unwrap(), None);
        assert_eq!(
            stored(reg, &more[M as usize - 1]).await.2,
            more[M as usize - 1].certificates
        );
        assert_eq!(
            reg.statuses().await.unwrap().len(),
            2 * (N + M - 1) as usize
        );
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

    /// A provisioning on a holder's card pair: phone `device` with serials
    /// `2n`/`2n+1`, token hash `[tag; 32]`.
    fn provisioning(
        e: &shomei_registry::Enrolment,
        n: u32,
        device_id: &str,
        tag: u8,
    ) -> DeviceProvisioning {
        let mut device = device(device_id, &e.holder.id);
        device.created_at = T1;
        DeviceProvisioning {
            device,
            token_hash: vec![tag; 32],
            certs: phone_pair(e, n, device_id),
            plan: Plan::default(),
            wipe: Vec::new(),
            contact: None,
        }
    }

    /// The plan a new phone brings: every live phone certificate of the
    /// holder revoked as superseded.
    async fn supersede_phones(reg: &dyn Registry, holder: &str) -> Plan {
        let mut plan = Plan::default();
        for c in reg.holder_certificates(holder).await.unwrap() {
            if c.class.is_phone() && !c.status.is_final() {
                plan.changes.push(StatusChange {
                    serial: c.serial.clone(),
                    from: c.status,
                    to: CertStatus::Revoked,
                    reason: Some(RevocationReason::Superseded),
                });
            }
        }
        plan
    }

    pub async fn provisioning_supersedes_the_old_phone_atomically(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        let first = provisioning(&e, 10, "p1", 1);
        reg.provision_device(&first, T1, &[event("provision", Some("h"), None)])
            .await
            .unwrap();
        let p1 = reg.device_by_token_hash(&[1; 32]).await.unwrap().unwrap();
        assert_eq!(p1, first.device);
        assert_eq!(reg.device_by_token_hash(&[9; 32]).await.unwrap(), None);
        for c in &first.certs {
            assert_eq!(reg.certificate(&c.serial).await.unwrap().as_ref(), Some(c));
        }

        // The second phone: p1's certificates revoked, p1 superseded with a
        // wipe queued, p2 stored with its certificates and the contact.
        let t2 = T1 + Duration::hours(1);
        let mut second = provisioning(&e, 20, "p2", 2);
        second.device.created_at = t2;
        second.plan = supersede_phones(reg, "h").await;
        assert_eq!(second.plan.changes.len(), 2);
        second.wipe = vec!["p1".into()];
        second.contact = Some(HolderContact {
            holder_id: "h".into(),
            email: Some("taro@example.jp".into()),
            notify_email: true,
            updated_at: t2,
        });
        reg.provision_device(&second, t2, &[event("provision", Some("h"), None)])
            .await
            .unwrap();
        let p1 = reg.device("p1").await.unwrap().unwrap();
        assert_eq!(
            (
                p1.status,
                p1.wipe_requested_at,
                p1.status_changed_at,
                p1.wiped_at
            ),
            (DeviceStatus::Superseded, Some(t2), Some(t2), None)
        );
        assert!(p1.status.wipe_queued());
        for c in &first.certs {
            let back = reg.certificate(&c.serial).await.unwrap().unwrap();
            assert_eq!(
                (back.status, back.reason),
                (CertStatus::Revoked, Some(RevocationReason::Superseded))
            );
        }
        let devices = reg.holder_devices("h").await.unwrap();
        assert_eq!(
            devices
                .iter()
                .map(|d| (d.id.as_str(), d.status))
                .collect::<Vec<_>>(),
            vec![
                ("p1", DeviceStatus::Superseded),
                ("p2", DeviceStatus::Active)
            ]
        );
        assert_eq!(
            reg.device_by_token_hash(&[2; 32])
                .await
                .unwrap()
                .unwrap()
                .id,
            "p2"
        );
        // The old phone's token still finds it (so it can learn about the wipe).
        assert_eq!(
            reg.device_by_token_hash(&[1; 32])
                .await
                .unwrap()
                .unwrap()
                .id,
            "p1"
        );
        assert_eq!(reg.contact("h").await.unwrap(), second.contact);
        assert_eq!(reg.events_for_holder("h").await.unwrap().len(), 4);
    }

    pub async fn provisioning_refusals_change_nothing(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        reg.enrol(&enrolment("other", 2)).await.unwrap();
        reg.provision_device(&provisioning(&e, 10, "p1", 1), T1, &[])
            .await
            .unwrap();
        let before = &reg.holder_certificates("h").await.unwrap();
        let events_before = &reg.events_for_holder("h").await.unwrap();
        let unchanged = |what: &'static str| async move {
            assert_eq!(
                &reg.holder_certificates("h").await.unwrap(),
                before,
                "{what}"
            );
            assert_eq!(reg.device("p2").await.unwrap(), None, "{what}");
            let p1 = reg.device("p1").await.unwrap().unwrap();
            assert_eq!(p1.status, DeviceStatus::Active, "{what}");
            assert_eq!(reg.contact("h").await.unwrap(), None, "{what}");
            assert_eq!(
                &reg.events_for_holder("h").await.unwrap(),
                events_before,
                "{what}"
            );
        };
        let contact = HolderContact {
            holder_id: "h".into(),
            email: Some("taro@example.jp".into()),
            notify_email: true,
            updated_at: T1,
        };
        let ev = [event("provision", Some("h"), None)];

        // One active phone per holder: forgetting to supersede p1 fails.
        let mut p = provisioning(&e, 20, "p2", 2);
        p.plan = supersede_phones(reg, "h").await;
        p.contact = Some(contact.clone());
        let err = reg.provision_device(&p, T1, &ev).await.unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        unchanged("second active phone").await;

        // A stale plan (p1's sign certificate was suspended meanwhile) fails.
        let mut p = provisioning(&e, 20, "p2", 2);
        p.plan = supersede_phones(reg, "h").await;
        p.wipe = vec!["p1".into()];
        p.contact = Some(contact.clone());
        let mut stale = p.clone();
        stale.plan.changes[0].from = CertStatus::Suspended;
        let err = reg.provision_device(&stale, T1, &ev).await.unwrap_err();
        assert!(matches!(err, RegistryError::Conflict { .. }), "{err:?}");
        unchanged("stale plan").await;

        // Superseding a phone that is not active (or unknown, or another holder's) fails.
        let other = reg.holder("other").await.unwrap().unwrap();
        let mut theirs = device("q", &other.id);
        theirs.created_at = T0;
        reg.add_device(&theirs, &[]).await.unwrap();
        for (wipe, what) in [("q", "another holder's phone"), ("nope", "unknown phone")] {
            let mut bad = p.clone();
            bad.wipe = vec!["p1".into(), wipe.into()];
            assert!(reg.provision_device(&bad, T1, &ev).await.is_err(), "{what}");
            unchanged(what).await;
        }

        // A reused token hash, a short one, a certificate naming another device.
        let mut bad = p.clone();
        bad.token_hash = vec![1; 32];
        let err = reg.provision_device(&bad, T1, &ev).await.unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        unchanged("reused token hash").await;
        let mut bad = p.clone();
        bad.token_hash = vec![3; 16];
        let err = reg.provision_device(&bad, T1, &ev).await.unwrap_err();
        assert!(matches!(err, RegistryError::Invalid(_)), "{err:?}");
        unchanged("short token hash").await;
        let mut bad = p.clone();
        bad.certs[1].device_id = Some("p1".into());
        let err = reg.provision_device(&bad, T1, &ev).await.unwrap_err();
        assert!(matches!(err, RegistryError::Invalid(_)), "{err:?}");
        unchanged("certificate of another device").await;

        // The good one lands.
        reg.provision_device(&p, T1, &ev).await.unwrap();
        assert_eq!(
            reg.device("p1").await.unwrap().unwrap().status,
            DeviceStatus::Superseded
        );
    }

    pub async fn remote_wipe_and_confirmation_follow_the_device_states(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        let p = provisioning(&e, 10, "p1", 1);
        reg.provision_device(&p, T1, &[]).await.unwrap();
        let t2 = T1 + Duration::minutes(5);

        // Confirming a wipe nobody asked for is refused.
        let err = reg.confirm_wiped("p1", t2, &[]).await.unwrap_err();
        assert_eq!(
            err,
            RegistryError::DeviceConflict {
                device: "p1".into(),
                status: DeviceStatus::Active
            }
        );
        // A stale plan aborts the wipe request too.
        let mut plan = supersede_phones(reg, "h").await;
        for c in &mut plan.changes {
            c.reason = Some(RevocationReason::KeyCompromise);
        }
        let mut stale = plan.clone();
        stale.changes[1].from = CertStatus::Suspended;
        let err = reg
            .request_wipe("p1", WipeReason::Lost, &stale, t2, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Conflict { .. }), "{err:?}");
        assert_eq!(
            reg.device("p1").await.unwrap().unwrap().status,
            DeviceStatus::Active
        );
        assert!(
            reg.holder_certificates("h")
                .await
                .unwrap()
                .iter()
                .all(|c| c.status == CertStatus::Active)
        );

        // Lost: certificates revoked, wipe queued.
        let ev = event("wipe_requested", Some("h"), None);
        let status = reg
            .request_wipe("p1", WipeReason::Lost, &plan, t2, std::slice::from_ref(&ev))
            .await
            .unwrap();
        assert_eq!(status, DeviceStatus::Lost);
        let d = reg.device("p1").await.unwrap().unwrap();
        assert_eq!(
            (d.status, d.wipe_requested_at, d.status_changed_at),
            (DeviceStatus::Lost, Some(t2), Some(t2))
        );
        for c in &p.certs {
            assert_eq!(
                reg.certificate(&c.serial).await.unwrap().unwrap().reason,
                Some(RevocationReason::KeyCompromise)
            );
        }
        // Asking again keeps it lost and the first request time.
        let t3 = t2 + Duration::minutes(1);
        assert_eq!(
            reg.request_wipe("p1", WipeReason::Requested, &Plan::default(), t3, &[])
                .await
                .unwrap(),
            DeviceStatus::Lost
        );
        assert_eq!(
            reg.device("p1").await.unwrap().unwrap().wipe_requested_at,
            Some(t2)
        );

        // The phone confirms: wiped, final.
        reg.confirm_wiped("p1", t3, std::slice::from_ref(&ev))
            .await
            .unwrap();
        let d = reg.device("p1").await.unwrap().unwrap();
        assert_eq!(
            (d.status, d.wiped_at, d.status_changed_at),
            (DeviceStatus::Wiped, Some(t3), Some(t3))
        );
        for (what, r) in [
            ("confirm twice", reg.confirm_wiped("p1", t3, &[]).await),
            (
                "wipe a wiped phone",
                reg.request_wipe("p1", WipeReason::Requested, &Plan::default(), t3, &[])
                    .await
                    .map(|_| ()),
            ),
        ] {
            assert_eq!(
                r,
                Err(RegistryError::DeviceConflict {
                    device: "p1".into(),
                    status: DeviceStatus::Wiped
                }),
                "{what}"
            );
        }
        assert!(matches!(
            reg.request_wipe("nope", WipeReason::Lost, &Plan::default(), t3, &[])
                .await,
            Err(RegistryError::NotFound { .. })
        ));
        assert_eq!(reg.events_for_holder("h").await.unwrap().len(), 4);

        // A remote wipe of an active phone (not lost) is wipe_pending.
        let p2 = provisioning(&e, 20, "p2", 2);
        reg.provision_device(&p2, t3, &[]).await.unwrap();
        assert_eq!(
            reg.request_wipe("p2", WipeReason::Requested, &Plan::default(), t3, &[])
                .await
                .unwrap(),
            DeviceStatus::WipePending
        );
        reg.confirm_wiped("p2", t3, &[]).await.unwrap();
    }

    pub async fn mdoc_indexes_are_allocated_once_and_follow_the_phone(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        reg.provision_device(&provisioning(&e, 10, "p1", 1), T1, &[])
            .await
            .unwrap();
        assert_eq!(reg.mdoc("p1").await.unwrap(), None);
        assert!(reg.mdoc_statuses().await.unwrap().is_empty());
        let key1 = vec![0x30, 1, 2, 3];
        let m1 = reg
            .mdoc_for_device(
                "p1",
                &key1,
                None,
                T1,
                &[event("mdoc_issued", Some("h"), None)],
            )
            .await
            .unwrap();
        assert_eq!((m1.idx, m1.device_id.as_str()), (0, "p1"));
        assert_eq!(m1.device_key, key1);
        // Again: the same index, no new row, no new event.
        let again = reg
            .mdoc_for_device("p1", &key1, None, T1, &[])
            .await
            .unwrap();
        assert_eq!(again, m1);
        assert_eq!(reg.mdoc("p1").await.unwrap(), Some(m1.clone()));
        let events = reg.events_for_holder("h").await.unwrap().len();
        // Refusals change nothing: another key for the phone, an unknown phone.
        assert!(matches!(
            reg.mdoc_for_device("p1", &[9, 9], None, T1, &[event("x", Some("h"), None)])
                .await,
            Err(RegistryError::Invalid(_))
        ));
        assert!(
            reg.mdoc_for_device("nope", &key1, None, T1, &[event("x", Some("h"), None)])
                .await
                .is_err()
        );
        assert!(reg.mdoc_for_device("p1", &[], None, T1, &[]).await.is_err());
        assert_eq!(reg.events_for_holder("h").await.unwrap().len(), events);
        assert_eq!(reg.mdoc("nope").await.unwrap(), None);
        let rows = reg.mdoc_statuses().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].idx,
                rows[0].device_status,
                rows[0].suspended,
                rows[0].revoked
            ),
            (0, DeviceStatus::Active, 0, 0)
        );

        // A second phone supersedes the first: the next index, and the
        // first phone's row shows it superseded with revoked certificates.
        let t2 = T1 + Duration::hours(1);
        let mut second = provisioning(&e, 20, "p2", 2);
        second.device.created_at = t2;
        second.plan = supersede_phones(reg, "h").await;
        second.wipe = vec!["p1".into()];
        reg.provision_device(&second, t2, &[]).await.unwrap();
        // A portrait must be 1 to 24 KiB (refused before anything is
        // allocated); one that is kept comes back with the record, also
        // when asked again without one.
        for bad in [vec![], vec![7u8; shomei_registry::MAX_MDOC_PORTRAIT + 1]] {
            assert!(matches!(
                reg.mdoc_for_device("p2", &[0x30, 7], Some(&bad), t2, &[])
                    .await,
                Err(RegistryError::Invalid(_))
            ));
        }
        let photo = vec![0x89u8; shomei_registry::MAX_MDOC_PORTRAIT];
        let m2 = reg
            .mdoc_for_device("p2", &[0x30, 7], Some(&photo), t2, &[])
            .await
            .unwrap();
        assert_eq!(m2.idx, 1);
        assert_eq!(m2.portrait.as_deref(), Some(photo.as_slice()));
        assert_eq!(reg.mdoc("p2").await.unwrap(), Some(m2.clone()));
        let again = reg
            .mdoc_for_device("p2", &[0x30, 7], None, t2, &[])
            .await
            .unwrap();
        assert_eq!(again.portrait.as_deref(), Some(photo.as_slice()));
        assert!(
            !format!("{m2:?}").contains("137"),
            "no photo bytes in Debug"
        );
        assert_eq!(reg.mdoc("p1").await.unwrap().unwrap().portrait, None);
        let rows = reg.mdoc_statuses().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].device_id, "p1");
        assert_eq!(rows[0].device_status, DeviceStatus::Superseded);
        assert_eq!(rows[0].revoked, 2);
        assert_eq!(
            (rows[1].idx, rows[1].device_status, rows[1].revoked),
            (1, DeviceStatus::Active, 0)
        );

        // Suspending the phone's certificates shows in the row.
        let mut plan = Plan::default();
        for c in reg.holder_certificates("h").await.unwrap() {
            if c.device_id.as_deref() == Some("p2") {
                plan.changes.push(StatusChange {
                    serial: c.serial.clone(),
                    from: CertStatus::Active,
                    to: CertStatus::Suspended,
                    reason: None,
                });
            }
        }
        reg.apply(&plan, t2, &[]).await.unwrap();
        let rows = reg.mdoc_statuses().await.unwrap();
        assert_eq!((rows[1].suspended, rows[1].revoked), (2, 0));
        assert!(reg.mdoc("p2").await.unwrap().unwrap().portrait.is_some());

        // The phone is reported lost: it will never show its mobile ID
        // again, so the authority drops the photo it kept for it.
        let to = reg
            .request_wipe("p2", WipeReason::Lost, &Plan::default(), t2, &[])
            .await
            .unwrap();
        assert_eq!(to, DeviceStatus::Lost);
        let m = reg.mdoc("p2").await.unwrap().unwrap();
        assert_eq!((m.idx, m.portrait), (1, None));
    }

    pub async fn device_status_rules_are_enforced_by_the_schema(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        reg.enrol(&enrolment("h", 1)).await.unwrap();
        // Not active without a queued wipe; wiped needs wiped_at; active
        // cannot carry a wipe request.
        let mut pending = device("a", "h");
        pending.status = DeviceStatus::WipePending;
        let mut wiped = device("b", "h");
        wiped.status = DeviceStatus::Wiped;
        wiped.wipe_requested_at = Some(T1);
        let mut active = device("c", "h");
        active.wipe_requested_at = Some(T1);
        let mut long_kind = device("d", "h");
        long_kind.kind = "x".repeat(33);
        for (d, what) in [
            (pending, "pending without request"),
            (wiped, "wiped without wiped_at"),
            (active, "active with a wipe request"),
            (long_kind, "kind too long"),
        ] {
            let err = reg.add_device(&d, &[]).await.unwrap_err();
            assert!(matches!(err, RegistryError::Invalid(_)), "{what}: {err:?}");
            assert_eq!(reg.device(&d.id).await.unwrap(), None, "{what}");
        }
        // One active phone per holder.
        reg.add_device(&device("p", "h"), &[]).await.unwrap();
        let err = reg.add_device(&device("q", "h"), &[]).await.unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        // Every status round-trips.
        for (i, status) in DeviceStatus::ALL.into_iter().enumerate() {
            assert_eq!(status.as_str().parse::<DeviceStatus>(), Ok(status));
            if status == DeviceStatus::Active {
                continue;
            }
            let mut d = device(&format!("s{i}"), "h");
            d.status = status;
            d.wipe_requested_at = Some(T1);
            d.status_changed_at = Some(T1);
            d.wiped_at = (status == DeviceStatus::Wiped).then_some(T1);
            reg.add_device(&d, &[]).await.unwrap();
            assert_eq!(reg.device(&d.id).await.unwrap(), Some(d));
        }
        assert!("gone".parse::<DeviceStatus>().is_err());
    }

    pub async fn contacts_are_set_replaced_and_redacted(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        reg.enrol(&enrolment("h", 1)).await.unwrap();
        assert_eq!(reg.contact("h").await.unwrap(), None);
        let mut k = HolderContact {
            holder_id: "h".into(),
            email: Some("hanako.yamada@example.jp".into()),
            notify_email: true,
            updated_at: T0,
        };
        reg.set_contact(&k, &[event("contact_set", Some("h"), None)])
            .await
            .unwrap();
        assert_eq!(reg.contact("h").await.unwrap(), Some(k.clone()));
        k.notify_email = false;
        k.updated_at = T1;
        reg.set_contact(&k, &[]).await.unwrap();
        assert_eq!(reg.contact("h").await.unwrap(), Some(k.clone()));
        // Notifications need an address; unknown holders are refused.
        let mut bad = k.clone();
        bad.email = None;
        bad.notify_email = true;
        assert!(matches!(
            reg.set_contact(&bad, &[]).await,
            Err(RegistryError::Invalid(_))
        ));
        let mut nobody = k.clone();
        nobody.holder_id = "nobody".into();
        let err = reg.set_contact(&nobody, &[]).await.unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
        assert!(!err.to_string().contains("hanako"), "{err}");
        assert_eq!(reg.contact("h").await.unwrap(), Some(k.clone()));
        // The address never shows in Debug.
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("hanako") && dbg.contains("redacted"), "{dbg}");
    }

    pub async fn events_since_pages_by_id_and_add_events_batches(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        reg.enrol(&enrolment("other", 2)).await.unwrap();
        // 250 events, interleaved with another holder's, in one call (3 INSERTs).
        let events: Vec<Event> = (0..250)
            .map(|i| Event {
                at: T1 + Duration::seconds(i),
                actor: Actor::System,
                action: "used".into(),
                holder_id: Some(if i % 5 == 0 { "other" } else { "h" }.into()),
                serial: Some(e.certificates[0].serial.clone()),
                detail: serde_json::json!({"via": "ocsp", "n": i}),
            })
            .collect();
        reg.add_events(&events).await.unwrap();
        reg.add_events(&[]).await.unwrap();
        let mine: Vec<Event> = e
            .events
            .iter()
            .cloned()
            .chain(
                events
                    .iter()
                    .filter(|e| e.holder_id.as_deref() == Some("h"))
                    .cloned(),
            )
            .collect();
        assert_eq!(reg.events_for_holder("h").await.unwrap(), mine);
        // Paging by cursor returns the same, with growing ids.
        let mut cursor = 0;
        let mut paged = Vec::new();
        let mut pages = 0;
        loop {
            let page = reg.events_since("h", cursor, 64).await.unwrap();
            if page.is_empty() {
                break;
            }
            pages += 1;
            assert!(page.len() <= 64);
            for (id, ev) in page {
                assert!(id > cursor, "ids grow");
                cursor = id;
                paged.push(ev);
            }
        }
        assert_eq!(paged, mine);
        assert_eq!(pages, mine.len().div_ceil(64));
        assert!(reg.events_since("h", cursor, 10).await.unwrap().is_empty());
        assert!(reg.events_since("nobody", 0, 10).await.unwrap().is_empty());
        // A bad event in a batch sinks the whole batch.
        let mut bad = events[..3].to_vec();
        bad[2].at = time::macros::datetime!(0000-01-01 0:00 UTC);
        assert!(reg.add_events(&bad).await.is_err());
        assert_eq!(reg.events_for_holder("h").await.unwrap(), mine);
    }

    /// A database made by schema v1 (with a phone and its certificate) is
    /// upgraded in place when opened: the devices table is rebuilt (SQLite)
    /// or altered (PostgreSQL) and keeps its rows and references.
    pub async fn upgrade_from_schema_v1_keeps_phones(ctx: Ctx) {
        let url = ctx.url.clone();
        ctx.reg.close().await;
        drop(ctx);
        let v1_sql = if url.starts_with("postgres") {
            include_str!("../migrations/postgres/0001_init.sql")
        } else {
            include_str!("../migrations/sqlite/0001_init.sql")
        };
        let reset = [
            "DROP TABLE IF EXISTS reader_revocations",
            "DROP TABLE IF EXISTS mdocs",
            "DROP TABLE IF EXISTS relying_parties",
            "DROP TABLE IF EXISTS holder_contacts",
            "DROP TABLE IF EXISTS crl_numbers",
            "DROP TABLE IF EXISTS events",
            "DROP TABLE IF EXISTS certificates",
            "DROP TABLE IF EXISTS devices",
            "DROP TABLE IF EXISTS cards",
            "DROP TABLE IF EXISTS holders",
            "DROP TABLE IF EXISTS schema_migrations",
        ];
        let rows = [
            "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, description TEXT NOT NULL)",
            "INSERT INTO schema_migrations VALUES (1, 'init')",
            "INSERT INTO holders VALUES ('h', 'n', 'a', '1990-04-01', 1, '2026-11-21T09:00:00.000000Z', '2026-11-21T09:00:00.000000Z')",
            "INSERT INTO devices VALUES ('old', 'h', 'android', 'wiped', '2026-11-21T09:00:00.000000Z', '2026-11-22T09:00:00.000000Z')",
            "INSERT INTO devices VALUES ('cur', 'h', 'android', 'active', '2026-11-23T09:00:00.000000Z', NULL)",
            "INSERT INTO certificates (serial, class, holder_id, device_id, status, not_before, not_after, shard, der, issued_at) \
             VALUES ('4001', 'phone-auth', 'h', 'cur', 'active', '2026-11-23T09:00:00.000000Z', '2030-11-23T09:00:00.000000Z', 0, X'3000', '2026-11-23T09:00:00.000000Z')",
            "INSERT INTO events (at, actor_kind, actor_id, action, holder_id, serial, detail) \
             VALUES ('2026-11-23T09:00:00.000000Z', 'operator', 'op', 'issued', 'h', '4001', '{}')",
            "INSERT INTO events (at, actor_kind, actor_id, action, holder_id, serial, detail) \
             VALUES ('2026-11-23T09:00:01.000000Z', 'system', NULL, 'used', 'h', '4001', '{}')",
        ];
        // Raw sqlx futures are not provably `Send` here: run them on a thread of their own.
        let raw_url = url.clone();
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let url = raw_url;
                    if url.starts_with("postgres") {
                        use sqlx::Connection;
                        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                        for q in reset {
                            sqlx::raw_sql(&format!("{q} CASCADE"))
                                .execute(&mut c)
                                .await
                                .unwrap();
                        }
                        sqlx::raw_sql(v1_sql).execute(&mut c).await.unwrap();
                        for q in rows {
                            let q = q.replace("X'3000'", "'\\x3000'::bytea");
                            sqlx::raw_sql(&q).execute(&mut c).await.unwrap();
                        }
                        c.close().await.unwrap();
                    } else {
                        use sqlx::Connection;
                        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                        sqlx::raw_sql("PRAGMA foreign_keys = OFF")
                            .execute(&mut c)
                            .await
                            .unwrap();
                        for q in reset {
                            sqlx::raw_sql(q).execute(&mut c).await.unwrap();
                        }
                        sqlx::raw_sql(v1_sql).execute(&mut c).await.unwrap();
                        for q in rows {
                            sqlx::raw_sql(q).execute(&mut c).await.unwrap();
                        }
                        c.close().await.unwrap();
                    }
                })
        })
        .await
        .unwrap();
        let reg = shomei_registry::open(&url).await.unwrap();
        let devices = reg.holder_devices("h").await.unwrap();
        assert_eq!(
            devices
                .iter()
                .map(|d| (d.id.as_str(), d.status, d.wipe_requested_at.is_some()))
                .collect::<Vec<_>>(),
            vec![
                ("old", DeviceStatus::Wiped, true),
                ("cur", DeviceStatus::Active, false)
            ]
        );
        let cert = reg
            .certificate(&"4001".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cert.device_id.as_deref(), Some("cur"));
        // The events (rebuilt on SQLite for schema v3) keep their ids, and new
        // ones continue after them; relying parties may now act.
        let old_events = reg.events_since("h", 0, 10).await.unwrap();
        assert_eq!(
            old_events
                .iter()
                .map(|(id, e)| (*id, e.action.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "issued"), (2, "used")]
        );
        let mut used = event("used", Some("h"), Some(cert.serial.clone()));
        used.actor = Actor::RelyingParty("bank".into());
        reg.add_events(std::slice::from_ref(&used)).await.unwrap();
        assert_eq!(reg.events_since("h", 2, 10).await.unwrap(), vec![(3, used)]);
        // The new rules hold on the upgraded table (and foreign keys are on again).
        assert!(matches!(
            reg.add_device(&device("cur2", "h"), &[]).await,
            Err(RegistryError::Duplicate { .. })
        ));
        assert!(matches!(
            reg.add_device(&device("x", "nobody"), &[]).await,
            Err(RegistryError::NotFound { .. })
        ));
        reg.close().await;
        // Opening again is a no-op.
        let reg = shomei_registry::open(&url).await.unwrap();
        assert_eq!(reg.holder_devices("h").await.unwrap(), devices);
        reg.close().await;
    }

    pub async fn relying_parties_are_found_by_token_hash_and_unique(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let bank = RelyingPartyRecord {
            id: "rp_1".into(),
            name: "example-bank".into(),
            created_at: T1,
        };
        let hash = [7u8; 32];
        let mut registered = event("relying_party_registered", None, None);
        registered.detail = serde_json::json!({"relying_party": "rp_1"});
        reg.add_relying_party(&bank, &hash, std::slice::from_ref(&registered))
            .await
            .unwrap();
        assert_eq!(
            reg.relying_party_by_token_hash(&hash).await.unwrap(),
            Some(bank.clone())
        );
        assert_eq!(
            reg.relying_party_by_token_hash(&[8u8; 32]).await.unwrap(),
            None
        );
        assert_eq!(
            reg.relying_party_by_token_hash(b"short").await.unwrap(),
            None
        );
        // Same name, other id and token: refused, nothing stored (not even the event).
        let twin = RelyingPartyRecord {
            id: "rp_2".into(),
            ..bank.clone()
        };
        let err = reg
            .add_relying_party(&twin, &[9u8; 32], std::slice::from_ref(&registered))
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        assert_eq!(
            reg.relying_party_by_token_hash(&[9u8; 32]).await.unwrap(),
            None
        );
        // Same token hash under another name: refused too.
        let other = RelyingPartyRecord {
            id: "rp_3".into(),
            name: "shop".into(),
            created_at: T1,
        };
        let err = reg.add_relying_party(&other, &hash, &[]).await.unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        // A hash that is not SHA-256 sized, an empty or overlong name: invalid.
        assert!(matches!(
            reg.add_relying_party(&other, &[1u8; 31], &[]).await,
            Err(RegistryError::Invalid(_))
        ));
        for name in [String::new(), "x".repeat(65)] {
            let bad = RelyingPartyRecord {
                name,
                ..other.clone()
            };
            assert!(matches!(
                reg.add_relying_party(&bad, &[2u8; 32], &[]).await,
                Err(RegistryError::Invalid(_))
            ));
        }
        assert_eq!(
            reg.relying_party_by_token_hash(&[2u8; 32]).await.unwrap(),
            None
        );
        // A relying party as the actor of an event round-trips.
        let e = enrolment("h", 1);
        reg.enrol(&e).await.unwrap();
        let used = Event {
            at: T1,
            actor: Actor::RelyingParty("example-bank".into()),
            action: "used".into(),
            holder_id: Some("h".into()),
            serial: Some(e.certificates[0].serial.clone()),
            detail: serde_json::json!({"via": "linkage"}),
        };
        reg.add_events(std::slice::from_ref(&used)).await.unwrap();
        assert_eq!(
            reg.events_for_holder("h").await.unwrap().last(),
            Some(&used)
        );
    }

    /// A reader certificate is revoked once (a second revocation is a
    /// Duplicate and stores nothing, not even its event); the CRL's list
    /// skips certificates already expired.
    pub async fn reader_revocations_are_stored_once_and_expire(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let serial = |b: u8| Serial::from_be_bytes(&[0x40, b, 1, 2, 3, 4, 5, 6, 7]).unwrap();
        let stolen = ReaderRevocation {
            serial: serial(1),
            relying_party_id: "rp_1".into(),
            reason: RevocationReason::KeyCompromise,
            revoked_at: T1,
            not_after: T1 + Duration::days(80),
        };
        let mut revoked = event("reader_certificate_revoked", None, Some(serial(1)));
        revoked.actor = Actor::RelyingParty("example-bank".into());
        assert_eq!(reg.reader_revocation(&serial(1)).await.unwrap(), None);
        reg.revoke_reader_certificate(&stolen, std::slice::from_ref(&revoked))
            .await
            .unwrap();
        let got = reg.reader_revocation(&serial(1)).await.unwrap().unwrap();
        assert_eq!(
            (got.serial.clone(), got.reason, got.relying_party_id.clone()),
            (
                serial(1),
                RevocationReason::KeyCompromise,
                "rp_1".to_owned()
            )
        );
        assert!(
            (got.revoked_at - T1).abs() < Duration::milliseconds(1),
            "{got:?}"
        );
        // Again, with another reason: refused, nothing changes.
        let again = ReaderRevocation {
            reason: RevocationReason::CessationOfOperation,
            ..stolen.clone()
        };
        let err = reg
            .revoke_reader_certificate(&again, std::slice::from_ref(&revoked))
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        assert_eq!(
            reg.events_for_certificate(&serial(1)).await.unwrap().len(),
            1
        );
        assert_eq!(
            reg.reader_revocation(&serial(1))
                .await
                .unwrap()
                .unwrap()
                .reason,
            RevocationReason::KeyCompromise
        );
        // A second one that expires sooner.
        let short = ReaderRevocation {
            serial: serial(2),
            reason: RevocationReason::Unspecified,
            not_after: T1 + Duration::days(10),
            ..stolen.clone()
        };
        reg.revoke_reader_certificate(&short, &[]).await.unwrap();
        let listed = |v: Vec<ReaderRevocation>| v.into_iter().map(|r| r.serial).collect::<Vec<_>>();
        assert_eq!(
            listed(reg.reader_revocations(T1).await.unwrap()),
            vec![serial(1), serial(2)]
        );
        assert_eq!(
            listed(
                reg.reader_revocations(T1 + Duration::days(11))
                    .await
                    .unwrap()
            ),
            vec![serial(1)]
        );
        assert!(
            reg.reader_revocations(T1 + Duration::days(81))
                .await
                .unwrap()
                .is_empty()
        );
        // Revoked after it expired: invalid.
        let late = ReaderRevocation {
            serial: serial(3),
            revoked_at: T1 + Duration::days(100),
            ..stolen
        };
        assert!(matches!(
            reg.revoke_reader_certificate(&late, &[]).await,
            Err(RegistryError::Invalid(_))
        ));
        assert_eq!(reg.reader_revocation(&serial(3)).await.unwrap(), None);
    }

    pub async fn successors_follow_replaces_links_once(ctx: Ctx) {
        let reg = ctx.reg.as_ref();
        let e = enrolment("s", 1);
        reg.enrol(&e).await.unwrap();
        let first = e.certificates[0].serial.clone();
        assert_eq!(reg.successor(&first).await.unwrap(), None);
        // Renewal links the new certificate to the old one.
        let mut second = cert(50, CertClass::CardSign, "s");
        second.replaces = Some(first.clone());
        let plan = Plan::for_renewal(&credentials(reg, "s").await, &first, T1).unwrap();
        reg.replace(&plan, std::slice::from_ref(&second), T1, &[])
            .await
            .unwrap();
        let mut third = cert(51, CertClass::CardSign, "s");
        third.replaces = Some(second.serial.clone());
        let plan = Plan::for_renewal(&credentials(reg, "s").await, &second.serial, T1).unwrap();
        reg.replace(&plan, std::slice::from_ref(&third), T1, &[])
            .await
            .unwrap();
        let next = reg.successor(&first).await.unwrap().unwrap();
        assert_eq!(next.serial, second.serial);
        let next = reg.successor(&next.serial).await.unwrap().unwrap();
        assert_eq!(next.serial, third.serial);
        assert_eq!(reg.successor(&third.serial).await.unwrap(), None);
        // The pair is not a successor.
        assert_eq!(
            reg.successor(&e.certificates[1].serial).await.unwrap(),
            None
        );
        // A second certificate replacing the same one is refused (chains stay linear).
        let mut fork = cert(52, CertClass::CardSign, "s");
        fork.replaces = Some(first.clone());
        let err = reg
            .add_certificates(&[fork.clone()], &[])
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }), "{err:?}");
        assert_eq!(reg.certificate(&fork.serial).await.unwrap(), None);
        assert_eq!(
            reg.successor(&first).await.unwrap().map(|c| c.serial),
            Some(second.serial.clone())
        );
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
    enrol_batch_matches_the_one_by_one_path,
    enrol_batch_larger_than_one_statement,
    renewal_supersedes_old_and_links_new_atomically,
    concurrent_enrols_are_group_committed_and_all_land,
    reopening_keeps_data,
    personal_data_never_in_error_messages,
    provisioning_supersedes_the_old_phone_atomically,
    provisioning_refusals_change_nothing,
    remote_wipe_and_confirmation_follow_the_device_states,
    device_status_rules_are_enforced_by_the_schema,
    contacts_are_set_replaced_and_redacted,
    events_since_pages_by_id_and_add_events_batches,
    upgrade_from_schema_v1_keeps_phones,
    relying_parties_are_found_by_token_hash_and_unique,
    successors_follow_replaces_links_once,
    reader_revocations_are_stored_once_and_expire,
    mdoc_indexes_are_allocated_once_and_follow_the_phone,
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
