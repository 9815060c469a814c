//! `shomei bench …`: measurements of the real service paths, each printed
//! beside a baseline measured in the same run (see BENCHMARKS.md).
//!
//! * `issue`: POST /v1/cards on loopback (CSR check, signing, registry
//!   commit) vs raw RSA-2048 signatures with the CA's own key.
//! * `ocsp`: POST /ocsp/sign with and without nonces vs `openssl ocsp`
//!   serving the same certificates with the same delegated responder key.
//! * `crl`: a sharded CRL set of a million entries vs the raw signing time.
//! * `freshness`: revoke call returned → OCSP says `revoked`, vs one OCSP
//!   round trip.
//! * `provision`: `phone provision` end to end vs two RSA-2048 key
//!   generations.
//! * `se-sign`: a secure-element signature vs the bare aws-lc-rs key.
//!
//! All preparation (keys, CSRs, request bodies) happens before the timers.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use shomei_authority_server::home::{Home, InitOptions, pem};
use shomei_authority_server::{AppState, Clock, RunningAuthority, SystemClock};
use shomei_core::{BasicFour, CertClass, CertStatus, RevocationReason, Root, Serial, Sex, Signer};
use shomei_pki::RsaSigner;
use shomei_pki::ocsp::{CertIdHash, CertState};
use shomei_pki::profile::{PublicationPoints, RootCa};

use crate::cli::BenchCmd;
use crate::output::{Failure, emit};

pub async fn run(cmd: BenchCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Issue {
            database,
            count,
            concurrency,
        } => {
            if count == 0 || concurrency == 0 {
                return Err(Failure::input(
                    "--count and --concurrency must be at least 1",
                ));
            }
            issue(database.as_deref(), count, concurrency, json).await
        }
        BenchCmd::Ocsp {
            requests,
            concurrency,
            certs,
        } => {
            if requests == 0 || concurrency == 0 || certs < 5 {
                return Err(Failure::input(
                    "--requests and --concurrency must be at least 1, --certs at least 5",
                ));
            }
            ocsp(requests, concurrency, certs, json).await
        }
        BenchCmd::Crl { revoked, shards } => {
            if revoked == 0 || shards == 0 || shards > 4096 {
                return Err(Failure::input(
                    "--revoked must be at least 1 and --shards between 1 and 4096",
                ));
            }
            tokio::task::block_in_place(|| crl(revoked, shards, json))
        }
        BenchCmd::Freshness { samples } => {
            if samples == 0 {
                return Err(Failure::input("--samples must be at least 1"));
            }
            freshness(samples, json).await
        }
        BenchCmd::Provision { count } => {
            if count == 0 {
                return Err(Failure::input("--count must be at least 1"));
            }
            provision(count, json).await
        }
        BenchCmd::Login { seconds, revoked } => {
            if seconds <= 0.0 || !seconds.is_finite() {
                return Err(Failure::input("--seconds must be positive"));
            }
            tokio::task::block_in_place(|| crate::bench_rp::login(seconds, revoked, json))
        }
        BenchCmd::VerifyDoc { seconds, size } => {
            if seconds <= 0.0 || !seconds.is_finite() || size == 0 {
                return Err(Failure::input("--seconds and --size must be positive"));
            }
            tokio::task::block_in_place(|| crate::bench_rp::verify_doc(seconds, size, json))
        }
        BenchCmd::Oidc { count } => {
            if count == 0 {
                return Err(Failure::input("--count must be at least 1"));
            }
            crate::bench_rp::oidc(count, json).await
        }
        BenchCmd::SeSign { iterations } => {
            if iterations == 0 {
                return Err(Failure::input("--iterations must be at least 1"));
            }
            tokio::task::block_in_place(|| se_sign(iterations, json))
        }
        BenchCmd::Present { count } => {
            if count == 0 {
                return Err(Failure::input("--count must be at least 1"));
            }
            crate::bench_mdoc::present(count, json).await
        }
        BenchCmd::MdocVerify { seconds } => {
            if seconds <= 0.0 || !seconds.is_finite() {
                return Err(Failure::input("--seconds must be positive"));
            }
            tokio::task::block_in_place(|| crate::bench_mdoc::mdoc_verify(seconds, json))
        }
    }
}

// ------------------------------------------------------------------ shared

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    json!({"nproc": cores(), "cpu": cpu, "loadavg_at_end": load})
}

pub(crate) fn bar(json: bool, len: u64, what: &str) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// Percentile (0..=100) of sorted microseconds, in milliseconds.
pub(crate) fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_us.len() as f64 - 1.0)).round() as usize;
    sorted_us[rank.min(sorted_us.len() - 1)] as f64 / 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU accounting from /proc: this process, PostgreSQL and openssl
/// processes, and the whole machine.
struct CpuSnapshot {
    at: Instant,
    own: u64,
    client: u64,
    postgres: u64,
    openssl: u64,
    busy: u64,
    total: u64,
}

/// Cores used over an interval: by this process (client and server both
/// live here), by PostgreSQL and openssl processes, and by everything else.
struct CpuUse {
    own_cores: f64,
    /// Of `own_cores`, the load generator's threads (`bench-client`).
    client_cores: f64,
    postgres_cores: f64,
    openssl_cores: f64,
    other_cores: f64,
    idle_cores: f64,
}

/// utime + stime (clock ticks) and the command name from a /proc stat file.
fn proc_ticks(path: &Path) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let (head, rest) = s.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    // After ")": state is field 3 overall; utime and stime are 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        comm,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

impl CpuSnapshot {
    fn take() -> Self {
        let own = proc_ticks(Path::new("/proc/self/stat")).map_or(0, |(_, t)| t);
        let mut client = 0;
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for e in dir.flatten() {
                if let Some((comm, t)) = proc_ticks(&e.path().join("stat"))
                    && comm.starts_with(CLIENT_THREADS)
                {
                    client += t;
                }
            }
        }
        let (mut postgres, mut openssl) = (0, 0);
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let name = e.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                match proc_ticks(&e.path().join("stat")) {
                    Some((comm, t)) if comm.starts_with("postgres") => postgres += t,
                    Some((comm, t)) if comm == "openssl" => openssl += t,
                    _ => {}
                }
            }
        }
        let (busy, total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?;
                let v: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|x| x.parse().ok())
                    .collect();
                let total: u64 = v.iter().take(8).sum();
                let idle = v.get(3)? + v.get(4)?;
                Some((total - idle, total))
            })
            .unwrap_or((0, 0));
        Self {
            at: Instant::now(),
            own,
            client,
            postgres,
            openssl,
            busy,
            total,
        }
    }

    fn since(&self) -> CpuUse {
        let now = Self::take();
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        // Clock ticks are 1/100 s on Linux.
        let cores_of = |a: u64, b: u64| a.saturating_sub(b) as f64 / 100.0 / secs;
        let own_cores = cores_of(now.own, self.own);
        let client_cores = cores_of(now.client, self.client).min(own_cores);
        let postgres_cores = cores_of(now.postgres, self.postgres);
        let openssl_cores = cores_of(now.openssl, self.openssl);
        let total = now.total.saturating_sub(self.total).max(1) as f64;
        let busy_cores = now.busy.saturating_sub(self.busy) as f64 / total * cores() as f64;
        CpuUse {
            own_cores,
            client_cores,
            postgres_cores,
            openssl_cores,
            other_cores: (busy_cores - own_cores - postgres_cores - openssl_cores).max(0.0),
            idle_cores: (cores() as f64 - busy_cores).max(0.0),
        }
    }
}

impl CpuUse {
    /// Cores of this process not spent in the load generator: the service
    /// (handlers, registry, signing) plus anything else in-process.
    fn server_cores(&self) -> f64 {
        (self.own_cores - self.client_cores).max(0.0)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "this_process_cores": self.own_cores,
            "of_which_load_generator_cores": self.client_cores,
            "of_which_service_cores": self.server_cores(),
            "postgres_cores": self.postgres_cores,
            "openssl_cores": self.openssl_cores,
            "other_processes_cores": self.other_cores,
            "idle_cores": self.idle_cores,
        })
    }

    fn human(&self) -> String {
        let mut s = format!(
            "this process {:.2} cores (service {:.2}, load generator {:.2})",
            self.own_cores,
            self.server_cores(),
            self.client_cores
        );
        if self.postgres_cores >= 0.005 {
            s.push_str(&format!(", postgres {:.2}", self.postgres_cores));
        }
        if self.openssl_cores >= 0.005 {
            s.push_str(&format!(", openssl {:.2}", self.openssl_cores));
        }
        s.push_str(&format!(
            ", other processes {:.2}, idle {:.2}",
            self.other_cores, self.idle_cores
        ));
        s
    }
}

/// Runs `f(0..n)` on `threads` OS threads; results in index order.
fn par_map<T: Send>(
    n: usize,
    threads: usize,
    pb: &ProgressBar,
    f: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    let next = AtomicUsize::new(0);
    let mut parts: Vec<Vec<(usize, T)>> = Vec::new();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<Vec<(usize, T)>> {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        out.push((i, f(i)?));
                        pb.inc(1);
                    }
                    Ok(out)
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => parts.push(r?),
                Err(_) => bail!("a worker thread panicked"),
            }
        }
        Ok(())
    })?;
    let mut all: Vec<(usize, T)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

/// An authority started in-process exactly as the sandbox does.
pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) base: String,
    pub(crate) token: String,
    running: RunningAuthority,
}

impl Fixture {
    async fn start(database: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(database, |_| Ok(())).await
    }

    /// As [`Fixture::start`], running `prepare` on the authority folder
    /// after it is created and before the authority loads it.
    pub(crate) async fn start_with(
        database: Option<&str>,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("shomei-bench-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        // The URLs go into the certificates, so pick the port first.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let base = format!("http://127.0.0.1:{port}");
        let dir = tmp.path().join("authority");
        Home::init(
            &dir,
            &InitOptions {
                name: "Shomei Bench Authority".into(),
                base_url: base.clone(),
                crl_shards: 4,
                manufacturer_roots: vec![],
            },
            SystemClock.now(),
        )
        .context("cannot create the bench authority")?;
        prepare(&dir)?;
        let state = shomei_authority_server::load(&dir, database, Arc::new(SystemClock))
            .await
            .context("cannot load the bench authority")?;
        let running =
            shomei_authority_server::serve(state, SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let token = std::fs::read_to_string(dir.join("operator.token"))?
            .trim()
            .to_owned();
        Ok(Self {
            _tmp: tmp,
            dir,
            base,
            token,
            running,
        })
    }

    fn state(&self) -> &Arc<AppState> {
        &self.running.state
    }

    pub(crate) async fn stop(self) {
        let state = self.running.state.clone();
        self.running.stop().await;
        // Let the CRL publisher finish shards a revocation marked dirty
        // before the registry goes away under it.
        tokio::time::sleep(shomei_authority_server::publish::CRL_DEBOUNCE * 5).await;
        state.registry.close().await;
    }
}

pub(crate) fn holder(i: usize) -> anyhow::Result<BasicFour> {
    Ok(BasicFour::new(
        &format!("試験 太郎{i}"),
        "東京都千代田区千代田1-1",
        "1980-04-01".parse()?,
        Sex::Male,
    )?)
}

/// `n` JSON bodies for POST /v1/cards (adult holders: two CSRs each), built
/// from a pool of `keys` RSA-2048 keys; a body's two CSRs never share a key.
/// Also returns the CSRs (sign, auth) of each body.
type Csrs = Vec<(Vec<u8>, Vec<u8>)>;

fn enrol_bodies(n: usize, keys: usize, json: bool) -> anyhow::Result<(Vec<Vec<u8>>, Csrs)> {
    let keys = keys.max(2) & !1;
    let pb = bar(json, keys as u64, "RSA-2048 keys (untimed)");
    let pool = par_map(keys, cores(), &pb, |_| Ok(RsaSigner::generate()?))?;
    pb.finish_and_clear();
    let pb = bar(json, n as u64, "CSR pairs (untimed)");
    let built = par_map(n, cores(), &pb, |i| {
        let sign = shomei_pki::csr::build_csr(&pool[(2 * i) % keys], &format!("bench {i} sign"))?;
        let auth =
            shomei_pki::csr::build_csr(&pool[(2 * i + 1) % keys], &format!("bench {i} auth"))?;
        let body = serde_json::to_vec(&json!({
            "holder": holder(i)?,
            "sign_csr": B64.encode(&sign),
            "auth_csr": B64.encode(&auth),
        }))?;
        Ok((body, (sign, auth)))
    })?;
    pb.finish_and_clear();
    Ok(built.into_iter().unzip())
}

/// Thread name prefix of the load generator's own runtime.
const CLIENT_THREADS: &str = "bench-client";

/// A separate runtime for the HTTP clients, so that /proc tells their CPU
/// apart from the service's (which runs on the main runtime).
fn client_runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RT: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores())
            .thread_name(CLIENT_THREADS)
            .enable_all()
            .build()
            .ok()
    })
    .as_ref()
    .context("cannot start the load generator's runtime")
}

/// One HTTP load: `total` POSTs to `url` (body `i % bodies.len()`) from
/// `concurrency` clients, each with its own keep-alive connection.
struct Load {
    url: String,
    content_type: &'static str,
    bearer: Option<String>,
    bodies: Arc<Vec<Vec<u8>>>,
    total: usize,
    concurrency: usize,
    expect: u16,
    /// Keep the response body of every `keep_every`-th request (0: none).
    keep_every: usize,
    /// Reuse connections (false: a new TCP connection per request).
    keep_alive: bool,
}

struct LoadResult {
    elapsed: Duration,
    /// Sorted, microseconds.
    latencies_us: Vec<u64>,
    kept: Vec<(usize, Vec<u8>)>,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
}

async fn drive(load: Load, pb: &ProgressBar) -> anyhow::Result<LoadResult> {
    let load = Arc::new(load);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let rt = client_runtime()?;
    let started = Instant::now();
    for _ in 0..load.concurrency.min(load.total) {
        let load = load.clone();
        let next = next.clone();
        let pb = pb.clone();
        tasks.spawn_on(
            async move {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(if load.keep_alive { 1 } else { 0 })
                    .build()?;
                // Parsed once: URL parsing is not what we measure.
                let url = reqwest::Url::parse(&load.url)?;
                let mut lat = Vec::new();
                let mut kept = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= load.total {
                        break;
                    }
                    let body = load.bodies[i % load.bodies.len()].clone();
                    let t = Instant::now();
                    let mut req = client
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, load.content_type)
                        .body(body);
                    if let Some(token) = &load.bearer {
                        req = req.bearer_auth(token);
                    }
                    let resp = req
                        .send()
                        .await
                        .with_context(|| format!("POST {}", load.url))?;
                    let status = resp.status().as_u16();
                    let bytes = resp.bytes().await?;
                    lat.push(t.elapsed().as_micros() as u64);
                    if status != load.expect {
                        bail!(
                            "POST {} answered {status}: {}",
                            load.url,
                            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                        );
                    }
                    if load.keep_every > 0 && i.is_multiple_of(load.keep_every) {
                        kept.push((i, bytes.to_vec()));
                    }
                    pb.inc(1);
                }
                anyhow::Ok((lat, kept))
            },
            rt.handle(),
        );
    }
    let mut latencies_us = Vec::with_capacity(load.total);
    let mut kept = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (l, k) = r.context("a client task failed")??;
        latencies_us.extend(l);
        kept.extend(k);
    }
    let elapsed = started.elapsed();
    latencies_us.sort_unstable();
    kept.sort_by_key(|(i, _)| *i);
    Ok(LoadResult {
        elapsed,
        latencies_us,
        kept,
    })
}

/// Raw RSA-2048 PKCS#1 v1.5 SHA-256 signatures/s (aws-lc-rs through
/// `RsaSigner`) on `threads` threads signing for `dur`.
fn raw_rsa(key: &RsaSigner, threads: usize, dur: Duration, msg: &[u8]) -> anyhow::Result<f64> {
    let barrier = Barrier::new(threads);
    let results: Vec<(u64, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<(u64, Duration)> {
                    barrier.wait();
                    let t = Instant::now();
                    let mut n = 0u64;
                    while t.elapsed() < dur {
                        key.sign(msg)?;
                        n += 1;
                    }
                    Ok((n, t.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let ops: u64 = results.iter().map(|r| r.0).sum();
    let secs = results
        .iter()
        .map(|r| r.1.as_secs_f64())
        .fold(0.0, f64::max);
    Ok(ops as f64 / secs)
}

// ------------------------------------------------------------------ issue

async fn issue(
    database: Option<&str>,
    count: usize,
    concurrency: usize,
    json: bool,
) -> anyhow::Result<()> {
    let scratch = match database {
        Some(url) => Some(ScratchDb::create(url).await?),
        None => None,
    };
    let result = issue_on(
        scratch.as_ref().map(|d| d.url.as_str()),
        count,
        concurrency,
        json,
    )
    .await;
    if let Some(db) = scratch
        && let Err(e) = db.drop_it().await
    {
        eprintln!("warning: cannot drop the bench database: {e:#}");
    }
    let (value, human) = result?;
    emit(json, &value, &human);
    Ok(())
}

async fn issue_on(
    database: Option<&str>,
    count: usize,
    concurrency: usize,
    json: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    let fx = Fixture::start(database).await?;
    let backend = fx.state().registry.backend();
    let result = issue_measure(&fx, count, concurrency, json).await;
    fx.stop().await;
    let f = result?;
    let raw = f.raw_before.max(f.raw_after);
    let ratio = f.service / raw;
    // Per core-second of CPU: certificates per second the service (this
    // process minus the load generator's threads) made per core it got,
    // against signatures per core-second of the raw baseline.
    let per_core = |rate: f64, c: &CpuUse| rate / c.server_cores().max(1e-9);
    let ratio_per_core = per_core(f.service, &f.cpu) / per_core(raw, &f.raw_cpu);
    let value = json!({
        "bench": "issue",
        "machine": machine(),
        "registry": backend,
        "enrolments": count,
        "certificates": 2 * count,
        "concurrency": concurrency,
        "service_certs_per_s": f.service,
        "enrol_latency_ms": {"p50": f.p50, "p99": f.p99},
        "cpu_during_load": f.cpu.json(),
        "baseline": {
            "what": "raw RSA-2048 PKCS#1 v1.5 SHA-256 signatures/s (aws-lc-rs via RsaSigner, the CA's key)",
            "threads": f.threads,
            "sigs_per_s_before": f.raw_before,
            "sigs_per_s_after": f.raw_after,
            "sigs_per_s": raw,
        },
        "ratio": ratio,
        "target_ratio": 0.8,
        "baseline_cpu": f.raw_cpu.json(),
        "ratio_per_core_second": ratio_per_core,
        "breakdown_no_http_no_registry": {
            "what": "Authority::enrol (2 CSR checks + 2 certificates) on the same threads",
            "certs_per_s": f.ca_core,
        },
        "breakdown_registry_alone": {
            "what": "Registry::enrol (group commit) of enrolments shaped like the service's, same concurrency, no HTTP, no signing",
            "certs_per_s": f.registry_alone,
        },
        "group_commit": {"transactions": f.stats.transactions, "enrolments": f.stats.enrolments, "largest_batch": f.stats.largest_batch},
    });
    let human = format!(
        "bench issue ({backend}, {count} enrolments = {} certificates, {concurrency} clients, {} cores)\n\
         \x20 service   {:>9.0} certificates/s   (enrolment p50 {:.1} ms, p99 {:.1} ms)\n\
         \x20 baseline  {raw:>9.0} raw RSA-2048 signatures/s on {} thread(s) (before {:.0}, after {:.0})\n\
         \x20 ratio     {:>9.1} %   (target ≥ 80 %)\n\
         \x20 breakdown: CA core alone (CSR checks + signing, no HTTP, no registry) {:.0} certificates/s\n\
         \x20 breakdown: registry alone (group-committed Registry::enrol, no HTTP, no signing) {:.0} certificates/s\n\
         \x20 group commit: {} transactions for {} enrolments, largest batch {}\n\
         \x20 CPU during the load: {}\n\
         \x20 CPU during the baseline: {}\n\
         \x20 per core-second of CPU: service {:.0} certificates (load generator excluded), baseline {:.0} signatures ({:.1} %)",
        2 * count,
        cores(),
        f.service,
        f.p50,
        f.p99,
        f.threads,
        f.raw_before,
        f.raw_after,
        ratio * 100.0,
        f.ca_core,
        f.registry_alone,
        f.stats.transactions,
        f.stats.enrolments,
        f.stats.largest_batch,
        f.cpu.human(),
        f.raw_cpu.human(),
        per_core(f.service, &f.cpu),
        per_core(raw, &f.raw_cpu),
        ratio_per_core * 100.0,
    );
    Ok((value, human))
}

struct IssueFigures {
    service: f64,
    raw_before: f64,
    raw_after: f64,
    threads: usize,
    stats: shomei_registry::GroupCommitStats,
    p50: f64,
    p99: f64,
    ca_core: f64,
    /// Certificates/s the registry alone stores (2 per enrolment).
    registry_alone: f64,
    cpu: CpuUse,
    /// CPU during the faster of the two baseline runs.
    raw_cpu: CpuUse,
}

async fn issue_measure(
    fx: &Fixture,
    count: usize,
    concurrency: usize,
    json: bool,
) -> anyhow::Result<IssueFigures> {
    let (bodies, csrs) =
        tokio::task::block_in_place(|| enrol_bodies(count, (2 * count).min(256), json))?;
    let ca_key = RsaSigner::from_pkcs8(&std::fs::read(fx.dir.join("keys/sign-root.p8"))?)?;
    // Baseline message: about the size of a card certificate's TBSCertificate.
    let msg = vec![0x5au8; 1200];
    let threads = concurrency.min(cores());
    let raw_cpu = CpuSnapshot::take();
    let raw_before =
        tokio::task::block_in_place(|| raw_rsa(&ca_key, threads, Duration::from_secs(3), &msg))?;
    let raw_before_cpu = raw_cpu.since();
    // Warm up: connections, SQLite pages, allocator (not counted).
    let warm = concurrency.saturating_mul(2).min(count);
    let (warm_bodies, _) = tokio::task::block_in_place(|| enrol_bodies(warm, 16, true))?;
    drive(
        Load {
            url: format!("{}/v1/cards", fx.base),
            content_type: "application/json",
            bearer: Some(fx.token.clone()),
            bodies: Arc::new(warm_bodies),
            total: warm,
            concurrency,
            expect: 201,
            keep_every: 0,
            keep_alive: true,
        },
        &ProgressBar::hidden(),
    )
    .await?;
    let before = fx.state().registry.group_commit_stats();
    let pb = bar(json, count as u64, "POST /v1/cards");
    let cpu = CpuSnapshot::take();
    let r = drive(
        Load {
            url: format!("{}/v1/cards", fx.base),
            content_type: "application/json",
            bearer: Some(fx.token.clone()),
            bodies: Arc::new(bodies),
            total: count,
            concurrency,
            expect: 201,
            keep_every: count.div_ceil(20),
            keep_alive: true,
        },
        &pb,
    )
    .await?;
    let cpu = cpu.since();
    pb.finish_and_clear();
    let after = fx.state().registry.group_commit_stats();
    // Check a sample: both certificates present and issued by the roots.
    for (_, body) in &r.kept {
        let v: serde_json::Value = serde_json::from_slice(body)?;
        for (field, root) in [
            ("sign_cert", &fx.state().sign_root_der),
            ("auth_cert", &fx.state().auth_root_der),
        ] {
            let der = B64.decode(v[field].as_str().context("certificate missing")?)?;
            shomei_pki::cms::check_issued_by(&der, root)
                .with_context(|| format!("{field} does not chain to its root"))?;
        }
    }
    let expected = fx.state().status.len();
    if expected != 2 * (count + warm) {
        bail!(
            "the status cache holds {expected} certificates, expected {}",
            2 * (count + warm)
        );
    }
    let raw_cpu = CpuSnapshot::take();
    let raw_after =
        tokio::task::block_in_place(|| raw_rsa(&ca_key, threads, Duration::from_secs(3), &msg))?;
    let raw_after_cpu = raw_cpu.since();
    // Breakdown: the CA core alone on the same threads (nothing stored).
    let ca_core = tokio::task::block_in_place(|| -> anyhow::Result<f64> {
        let m = count.min(500);
        let holders = (0..m).map(holder).collect::<anyhow::Result<Vec<_>>>()?;
        let now = SystemClock.now();
        let authority = &fx.state().authority;
        let t = Instant::now();
        par_map(m, threads, &ProgressBar::hidden(), |i| {
            let req = shomei_ca::EnrolRequest {
                holder: &holders[i],
                sign_csr: Some(&csrs[i].0),
                auth_csr: &csrs[i].1,
            };
            authority
                .enrol(&req, now, &mut shomei_pki::SystemRandom::new())
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })?;
        Ok((2 * m) as f64 / t.elapsed().as_secs_f64())
    })?;
    // Breakdown: the registry alone (group-committed enrolments with the
    // same shape, from as many concurrent tasks; no HTTP, no signing).
    let sample = r
        .kept
        .first()
        .map(|(_, body)| -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
            let v: serde_json::Value = serde_json::from_slice(body)?;
            let der = |f: &str| -> anyhow::Result<Vec<u8>> {
                Ok(B64.decode(v[f].as_str().context("certificate missing")?)?)
            };
            Ok((der("sign_cert")?, der("auth_cert")?))
        })
        .context("no sample response")??;
    let registry_alone = registry_rate(fx, count.min(2000), concurrency, &sample).await?;
    Ok(IssueFigures {
        service: (2 * count) as f64 / r.elapsed.as_secs_f64(),
        raw_before,
        raw_after,
        threads,
        stats: shomei_registry::GroupCommitStats {
            transactions: after.transactions - before.transactions,
            enrolments: after.enrolments - before.enrolments,
            largest_batch: after.largest_batch,
        },
        p50: pct_ms(&r.latencies_us, 50.0),
        p99: pct_ms(&r.latencies_us, 99.0),
        ca_core,
        registry_alone,
        cpu,
        raw_cpu: if raw_before >= raw_after {
            raw_before_cpu
        } else {
            raw_after_cpu
        },
    })
}

/// Certificates/s that `Registry::enrol` stores from `concurrency` tasks:
/// `n` enrolments built as the enrol handler builds them (holder, card, two
/// certificates with the sample DERs, two events), fresh ids and serials.
async fn registry_rate(
    fx: &Fixture,
    n: usize,
    concurrency: usize,
    sample: &(Vec<u8>, Vec<u8>),
) -> anyhow::Result<f64> {
    use shomei_registry::{Actor, CertRecord, Enrolment, Event, HolderRecord};
    let now = SystemClock.now();
    let not_after = now + time::Duration::days(365 * 5);
    let shards = fx.state().authority.config().crl_shards;
    let mut rng = shomei_pki::SystemRandom::new();
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let holder_id = format!("h_bench_registry_{i:08}");
        let card_id = format!("c_bench_registry_{i:08}");
        let sign = Serial::random(&mut rng).map_err(|_| anyhow::anyhow!("randomness failed"))?;
        let auth = Serial::random(&mut rng).map_err(|_| anyhow::anyhow!("randomness failed"))?;
        let cert = |serial: &Serial, class: CertClass, pair: &Serial, der: &[u8]| CertRecord {
            serial: serial.clone(),
            class,
            holder_id: holder_id.clone(),
            card_id: Some(card_id.clone()),
            device_id: None,
            status: CertStatus::Active,
            reason: None,
            status_changed_at: None,
            not_before: now,
            not_after,
            shard: serial.shard(shards),
            parent: None,
            pair: Some(pair.clone()),
            replaces: None,
            der: der.to_vec(),
            issued_at: now,
        };
        let certificates = vec![
            cert(&sign, CertClass::CardSign, &auth, &sample.0),
            cert(&auth, CertClass::CardAuth, &sign, &sample.1),
        ];
        let events = certificates
            .iter()
            .map(|c| Event {
                at: now,
                actor: Actor::Operator("operator".into()),
                action: "issued".into(),
                holder_id: Some(holder_id.clone()),
                serial: Some(c.serial.clone()),
                detail: json!({"class": c.class.as_str(), "card_id": card_id}),
            })
            .collect();
        items.push(Enrolment {
            holder: HolderRecord {
                id: holder_id.clone(),
                basic_four: holder(i)?,
                created_at: now,
                updated_at: now,
            },
            card_id: card_id.clone(),
            certificates,
            events,
        });
    }
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let t = Instant::now();
    for _ in 0..concurrency.min(n) {
        let (items, next, registry) = (items.clone(), next.clone(), fx.state().registry.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(e) = items.get(i) else { break };
                registry.enrol(e).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a registry task failed")??;
    }
    Ok((2 * n) as f64 / t.elapsed().as_secs_f64())
}

/// A throw-away PostgreSQL database on the server `--database` names.
struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    async fn create(admin: &str) -> anyhow::Result<Self> {
        use sqlx::Connection;
        if !(admin.starts_with("postgres://") || admin.starts_with("postgresql://")) {
            return Err(Failure::input(
                "--database must be a postgres:// URL (SQLite is the default)",
            ));
        }
        let mut rnd = [0u8; 6];
        shomei_core::RandomSource::fill(&mut shomei_pki::SystemRandom::new(), &mut rnd)
            .map_err(|_| anyhow::anyhow!("randomness failed"))?;
        let name = format!("shomei_bench_{}", hex::encode(rnd));
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .context("cannot connect to the --database server")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .context("CREATE DATABASE failed")?;
        conn.close().await.ok();
        let url = with_database(admin, &name)?;
        Ok(Self {
            admin: admin.to_owned(),
            name,
            url,
        })
    }

    async fn drop_it(self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await.ok();
        Ok(())
    }
}

/// `url` with its database path replaced by `name` (query kept).
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("--database is not a URL")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    let mut out = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

// ------------------------------------------------------------------ ocsp

/// What the registry says about one signing certificate.
#[derive(Clone)]
struct Expected {
    serial: Serial,
    revoked: Option<(i64, RevocationReason)>,
}

async fn ocsp(requests: usize, concurrency: usize, certs: usize, json: bool) -> anyhow::Result<()> {
    let fx = Fixture::start(None).await?;
    let result = ocsp_measure(&fx, requests, concurrency, certs, json).await;
    fx.stop().await;
    let (value, human) = result?;
    emit(json, &value, &human);
    Ok(())
}

/// Enrols `n` adult holders; returns each holder's signing certificate DER.
async fn enrol_holders(fx: &Fixture, n: usize, json: bool) -> anyhow::Result<Vec<Vec<u8>>> {
    let (bodies, _) = tokio::task::block_in_place(|| enrol_bodies(n, n.min(32) * 2, json))?;
    let pb = bar(json, n as u64, "enrolling holders");
    let r = drive(
        Load {
            url: format!("{}/v1/cards", fx.base),
            content_type: "application/json",
            bearer: Some(fx.token.clone()),
            bodies: Arc::new(bodies),
            total: n,
            concurrency: 8,
            expect: 201,
            keep_every: 1,
            keep_alive: true,
        },
        &pb,
    )
    .await?;
    pb.finish_and_clear();
    r.kept
        .iter()
        .map(|(_, body)| {
            let v: serde_json::Value = serde_json::from_slice(body)?;
            Ok(B64.decode(v["sign_cert"].as_str().context("no signing certificate")?)?)
        })
        .collect()
}

async fn revoke(
    http: &reqwest::Client,
    fx: &Fixture,
    serial: &Serial,
    reason: &str,
) -> anyhow::Result<()> {
    let resp = http
        .post(format!(
            "{}/v1/certificates/{}/revoke",
            fx.base,
            serial.to_hex()
        ))
        .bearer_auth(&fx.token)
        .json(&json!({"reason": reason}))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "revocation failed: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// openssl index.txt time: UTCTime before 2050, GeneralizedTime after.
fn index_time(t: shomei_core::Timestamp) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let y = t.year();
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if (1950..2050).contains(&y) {
        format!("{:02}{rest}", y % 100)
    } else {
        format!("{y:04}{rest}")
    }
}

struct Openssl {
    child: Child,
}

impl Openssl {
    fn start(args: &[String], port: u16) -> anyhow::Result<Self> {
        let mut cmd = Command::new("openssl");
        cmd.arg("ocsp")
            .args(args)
            .arg("-port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Own process group: `-multi` children go with the parent.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("cannot run openssl")?;
        Ok(Self { child })
    }

    fn stop(mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM to the group we created (its id is the child's pid);
            // openssl's -multi parent forwards it to its children.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg("--")
                .arg(format!("-{}", self.child.id()))
                .status();
            for _ in 0..50 {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Sends requests until one succeeds (the server is up), for up to 10 s.
async fn wait_ready(url: &str, body: &[u8]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A fresh client each time, dropped at once: a single-threaded
        // responder would otherwise wait on our idle keep-alive connection.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?;
        let r = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
            .body(body.to_vec())
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
                return Ok(());
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(resp) => bail!("{url} answered {}", resp.status()),
            Err(e) => return Err(e).with_context(|| format!("{url} did not come up")),
        }
    }
}

struct OcspRun {
    name: String,
    rate: f64,
    p50: f64,
    p99: f64,
    verified: usize,
    cpu: CpuUse,
    /// Answered by openssl processes (not this process).
    openssl: bool,
}

impl OcspRun {
    /// Server CPU per answer (µs): the service's cores in this process, or
    /// the openssl processes' when openssl answered.
    fn server_us(&self) -> f64 {
        let cores = if self.openssl {
            self.cpu.openssl_cores
        } else {
            self.cpu.server_cores()
        };
        cores / self.rate.max(1e-9) * 1e6
    }

    fn json(&self) -> serde_json::Value {
        json!({"requests_per_s": self.rate, "latency_ms": {"p50": self.p50, "p99": self.p99}, "verified_samples": self.verified, "cpu": self.cpu.json(), "server_cpu_us_per_request": self.server_us()})
    }
}

/// What every OCSP run shares.
struct OcspCtx<'a> {
    expected: &'a [Expected],
    root_der: &'a [u8],
    requests: usize,
    concurrency: usize,
    json: bool,
    /// The bench authority's base URL (other URLs are openssl's).
    base: &'a str,
}

/// One measured OCSP run; `bodies[k]` asks about `expected[which[k]]`
/// (with nonce `nonces[k]` if given).
async fn ocsp_run(
    ctx: &OcspCtx<'_>,
    name: &str,
    url: &str,
    bodies: &Arc<Vec<Vec<u8>>>,
    nonces: Option<&[Vec<u8>]>,
    which: &[usize],
    keep_alive: bool,
) -> anyhow::Result<OcspRun> {
    let OcspCtx {
        expected,
        root_der,
        requests,
        concurrency,
        json,
        ..
    } = *ctx;
    let pb = bar(json, requests as u64, name);
    let cpu = CpuSnapshot::take();
    let r = drive(
        Load {
            url: url.to_owned(),
            content_type: "application/ocsp-request",
            bearer: None,
            bodies: bodies.clone(),
            total: requests,
            concurrency,
            expect: 200,
            keep_every: requests.div_ceil(100).max(1),
            keep_alive,
        },
        &pb,
    )
    .await?;
    let cpu = cpu.since();
    pb.finish_and_clear();
    let now = SystemClock.now();
    for (i, body) in &r.kept {
        let k = i % bodies.len();
        let exp = &expected[which[k]];
        let summary = shomei_pki::ocsp::parse_response(body, root_der, now)
            .with_context(|| format!("{name}: response {i} does not verify"))?;
        if let Some(nonces) = nonces
            && summary.nonce.as_deref() != Some(nonces[k].as_slice())
        {
            bail!("{name}: response {i} does not echo its nonce");
        }
        let st = summary
            .status_of(&exp.serial)
            .with_context(|| format!("{name}: response {i} is about another certificate"))?;
        let ok = match (&st.state, &exp.revoked) {
            (CertState::Good, None) => true,
            (CertState::Revoked { at, reason }, Some((t, r))) => {
                reason == r && at.unix_timestamp() == *t
            }
            _ => false,
        };
        if !ok {
            bail!(
                "{name}: response {i} says {:?} for {}, the registry says {}",
                st.state,
                exp.serial,
                if exp.revoked.is_some() {
                    "revoked"
                } else {
                    "good"
                }
            );
        }
    }
    Ok(OcspRun {
        name: name.to_owned(),
        rate: r.rate(),
        p50: pct_ms(&r.latencies_us, 50.0),
        p99: pct_ms(&r.latencies_us, 99.0),
        verified: r.kept.len(),
        cpu,
        openssl: !url.starts_with(ctx.base),
    })
}

async fn ocsp_measure(
    fx: &Fixture,
    requests: usize,
    concurrency: usize,
    certs: usize,
    json: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    let state = fx.state().clone();
    let root_der = state.sign_root_der.clone();
    let cert_ders = enrol_holders(fx, certs, json).await?;
    // Revoke every fifth signing certificate, with varied reasons.
    let http = reqwest::Client::new();
    let reasons = [
        "keyCompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
    ];
    let mut serials = Vec::with_capacity(certs);
    for der in &cert_ders {
        serials.push(serial_of(der)?);
    }
    for (k, serial) in serials.iter().enumerate().filter(|(k, _)| k % 5 == 0) {
        revoke(&http, fx, serial, reasons[(k / 5) % reasons.len()]).await?;
    }
    // index.txt from the registry records.
    let mut index = String::new();
    let mut expected = Vec::with_capacity(certs);
    for serial in &serials {
        let rec = state
            .registry
            .certificate(serial)
            .await?
            .context("the registry lost a certificate")?;
        let revoked = match (rec.status, rec.reason, rec.status_changed_at) {
            (CertStatus::Revoked, Some(reason), Some(at)) => Some((at, reason)),
            (CertStatus::Active, _, _) => None,
            (s, _, _) => bail!("unexpected status {} in the bench registry", s.as_str()),
        };
        let (flag, rev) = match &revoked {
            Some((at, reason)) => ("R", format!("{},{}", index_time(*at), reason.as_str())),
            None => ("V", String::new()),
        };
        index.push_str(&format!(
            "{flag}\t{}\t{rev}\t{}\tunknown\t/C=JP/CN={}\n",
            index_time(rec.not_after),
            serial.to_hex(),
            serial.to_hex()
        ));
        expected.push(Expected {
            serial: serial.clone(),
            revoked: revoked.map(|(at, r)| (at.unix_timestamp(), r)),
        });
    }
    let work = fx
        .dir
        .parent()
        .context("no temporary folder")?
        .join("openssl");
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("index.txt"), &index)?;
    std::fs::write(
        work.join("ocsp-sign.pem"),
        pem(
            "CERTIFICATE",
            &std::fs::read(fx.dir.join("ca/ocsp-sign.der"))?,
        ),
    )?;
    let st = Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-in"])
        .arg(fx.dir.join("keys/ocsp-sign.p8"))
        .arg("-out")
        .arg(work.join("ocsp-sign.key.pem"))
        .stderr(Stdio::null())
        .status()
        .context("cannot run openssl pkey")?;
    if !st.success() {
        bail!("openssl pkey could not convert the responder key");
    }

    // Requests (untimed): one per measured request with a fresh nonce; one
    // per certificate without.
    let (with_nonce, nonces, which_n, without, which_c) =
        tokio::task::block_in_place(|| -> anyhow::Result<_> {
            let mut rng = shomei_pki::SystemRandom::new();
            let mut with_nonce = Vec::with_capacity(requests);
            let mut nonces = Vec::with_capacity(requests);
            let mut which = Vec::with_capacity(requests);
            for i in 0..requests {
                let k = i % certs;
                let mut nonce = vec![0u8; 32];
                shomei_core::RandomSource::fill(&mut rng, &mut nonce)
                    .map_err(|_| anyhow::anyhow!("randomness failed"))?;
                nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
                with_nonce.push(shomei_pki::ocsp::build_request(
                    &cert_ders[k],
                    &root_der,
                    CertIdHash::Sha1,
                    Some(&nonce),
                )?);
                nonces.push(nonce);
                which.push(k);
            }
            let mut without = Vec::with_capacity(certs);
            for der in &cert_ders {
                without.push(shomei_pki::ocsp::build_request(
                    der,
                    &root_der,
                    CertIdHash::Sha1,
                    None,
                )?);
            }
            Ok((
                with_nonce,
                nonces,
                which,
                without,
                (0..certs).collect::<Vec<_>>(),
            ))
        })?;
    let with_nonce = Arc::new(with_nonce);

    // Breakdown (no HTTP): the responder core and the raw P-256 signature,
    // one thread each.
    let (core_rate, ecdsa_rate) = tokio::task::block_in_place(|| -> anyhow::Result<(f64, f64)> {
        let now = SystemClock.now();
        let m = requests.min(20_000);
        let t = Instant::now();
        for req in with_nonce.iter().take(m) {
            std::hint::black_box(state.ocsp.answer(req, &state.status, now));
        }
        let core_rate = m as f64 / t.elapsed().as_secs_f64();
        let key = shomei_pki::EcdsaP256Signer::from_pkcs8(&std::fs::read(
            fx.dir.join("keys/ocsp-sign.p8"),
        )?)?;
        let msg = vec![0x5au8; 250];
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed() < Duration::from_secs(2) {
            std::hint::black_box(key.sign(&msg)?);
            n += 1;
        }
        Ok((core_rate, n as f64 / t.elapsed().as_secs_f64()))
    })?;
    let without = Arc::new(without);
    let ours = format!("{}/ocsp/sign", fx.base);

    // Warm up ours (connections, caches of the allocator), then measure.
    drive(
        Load {
            url: ours.clone(),
            content_type: "application/ocsp-request",
            bearer: None,
            bodies: with_nonce.clone(),
            total: requests.min(2000),
            concurrency,
            expect: 200,
            keep_every: 0,
            keep_alive: true,
        },
        &ProgressBar::hidden(),
    )
    .await?;
    let ctx = OcspCtx {
        expected: &expected,
        root_der: &root_der,
        requests,
        concurrency,
        json,
        base: &fx.base,
    };
    let ours_nonce = ocsp_run(
        &ctx,
        "shomei, nonce (signed each)",
        &ours,
        &with_nonce,
        Some(&nonces),
        &which_n,
        true,
    )
    .await?;
    let ours_close = ocsp_run(
        &ctx,
        "shomei, nonce, connection per request",
        &ours,
        &with_nonce,
        Some(&nonces),
        &which_n,
        false,
    )
    .await?;
    // Cached: every distinct request once (fills the cache), then measure.
    drive(
        Load {
            url: ours.clone(),
            content_type: "application/ocsp-request",
            bearer: None,
            bodies: without.clone(),
            total: certs,
            concurrency,
            expect: 200,
            keep_every: 0,
            keep_alive: true,
        },
        &ProgressBar::hidden(),
    )
    .await?;
    let ours_cached = ocsp_run(
        &ctx,
        "shomei, no nonce (cached)",
        &ours,
        &without,
        None,
        &which_c,
        true,
    )
    .await?;

    // openssl ocsp, plain (single process) and -multi.
    let base_args: Vec<String> = vec![
        "-index".into(),
        work.join("index.txt").display().to_string(),
        "-rsigner".into(),
        work.join("ocsp-sign.pem").display().to_string(),
        "-rkey".into(),
        work.join("ocsp-sign.key.pem").display().to_string(),
        "-CA".into(),
        fx.dir.join("ca/sign.pem").display().to_string(),
        "-ndays".into(),
        "1".into(),
    ];
    let mut openssl_runs = Vec::new();
    let mut openssl_errors = Vec::new();
    let multi = cores().max(2);
    for (label, extra) in [
        (
            "openssl ocsp".to_owned(),
            vec!["-nrequest".to_owned(), (requests + 1).to_string()],
        ),
        (
            format!("openssl ocsp -multi {multi}"),
            vec!["-multi".to_owned(), multi.to_string()],
        ),
    ] {
        let port = free_port()?;
        let mut args = base_args.clone();
        args.extend(extra);
        let server = Openssl::start(&args, port)?;
        let url = format!("http://127.0.0.1:{port}/");
        let outcome = async {
            wait_ready(&url, &with_nonce[0]).await?;
            // openssl answers HTTP/1.0 and closes every connection; the
            // client then reconnects (keep-alive is offered, not taken).
            ocsp_run(
                &ctx,
                &format!("{label}, nonce"),
                &url,
                &with_nonce,
                Some(&nonces),
                &which_n,
                true,
            )
            .await
        }
        .await;
        tokio::task::block_in_place(|| server.stop());
        match outcome {
            Ok(run) => openssl_runs.push((label, run)),
            Err(e) => openssl_errors.push(json!({"run": label, "error": format!("{e:#}")})),
        }
    }
    let plain = openssl_runs
        .iter()
        .find(|(l, _)| l == "openssl ocsp")
        .map(|(_, r)| r.rate);
    let ratio = plain.map(|p| ours_nonce.rate / p);
    let ratio_close = plain.map(|p| ours_close.rate / p);
    let plain_us = openssl_runs
        .iter()
        .find(|(l, _)| l == "openssl ocsp")
        .map(|(_, r)| r.server_us());
    let ratio_cpu = plain_us.map(|p| p / ours_nonce.server_us().max(1e-9));
    let value = json!({
        "bench": "ocsp",
        "machine": machine(),
        "certificates": certs,
        "revoked": expected.iter().filter(|e| e.revoked.is_some()).count(),
        "requests": requests,
        "concurrency": concurrency,
        "cert_id_hash": "SHA-1",
        "shomei_nonce": ours_nonce.json(),
        "shomei_nonce_connection_per_request": ours_close.json(),
        "shomei_no_nonce_cached": ours_cached.json(),
        "breakdown_1_thread_no_http": {
            "responder_answers_per_s": core_rate,
            "raw_p256_signatures_per_s": ecdsa_rate,
        },
        "baseline": openssl_runs.iter().map(|(l, r)| (l.clone(), r.json())).collect::<serde_json::Map<_, _>>(),
        "baseline_errors": openssl_errors,
        "ratio_vs_openssl": ratio,
        "ratio_vs_openssl_both_connection_per_request": ratio_close,
        "ratio_server_cpu_per_answer_openssl_over_shomei": ratio_cpu,
        "target_ratio": 5.0,
    });
    let mut human = format!(
        "bench ocsp ({certs} signing certificates, {} revoked; {requests} requests per run, {concurrency} keep-alive clients, {} cores)\n",
        expected.iter().filter(|e| e.revoked.is_some()).count(),
        cores()
    );
    for r in [&ours_nonce, &ours_close, &ours_cached]
        .into_iter()
        .chain(openssl_runs.iter().map(|(_, r)| r))
    {
        human.push_str(&format!(
            "  {:<40} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} responses verified)\n  {:<40} server CPU {:.0} µs per answer; CPU: {}\n",
            r.name,
            r.rate,
            r.p50,
            r.p99,
            r.verified,
            "",
            r.server_us(),
            r.cpu.human()
        ));
    }
    human.push_str(&format!(
        "  breakdown, 1 thread, no HTTP: responder answer() {core_rate:.0}/s, raw P-256 signatures {ecdsa_rate:.0}/s\n"
    ));
    for e in &openssl_errors {
        human.push_str(&format!("  {} failed: {}\n", e["run"], e["error"]));
    }
    match (ratio, ratio_close, ratio_cpu) {
        (Some(x), Some(y), Some(z)) => human.push_str(&format!(
            "  ratio (shomei with nonce / openssl ocsp): {x:.1}x   (target ≥ 5x); both with a connection per request: {y:.1}x; server CPU per answer, openssl / shomei: {z:.1}x"
        )),
        _ => human.push_str("  ratio: openssl ocsp did not run"),
    }
    Ok((value, human))
}

fn serial_of(cert_der: &[u8]) -> anyhow::Result<Serial> {
    // TBSCertificate: [0] version, then serialNumber INTEGER.
    let cert = der_inner(cert_der).context("certificate")?;
    let tbs = der_inner(cert).context("tbsCertificate")?;
    let (_, version_len) = der_tlv(tbs).context("version")?;
    let (serial_body, _) = der_tlv(&tbs[version_len..]).context("serial")?;
    Ok(Serial::from_be_bytes(serial_body)?)
}

/// The content of the first TLV of `der` and that TLV's whole length.
fn der_tlv(der: &[u8]) -> Option<(&[u8], usize)> {
    let first = *der.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    Some((der.get(hdr..hdr + len)?, hdr + len))
}

/// The content of the outer SEQUENCE of `der`.
fn der_inner(der: &[u8]) -> Option<&[u8]> {
    der_tlv(der).map(|(c, _)| c)
}

fn free_port() -> anyhow::Result<u16> {
    // openssl ocsp binds [::]:PORT; make sure the port is free there too.
    for _ in 0..20 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if TcpListener::bind(("::", port)).is_ok() || TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port")
}

// ------------------------------------------------------------------ crl

fn crl(revoked: u64, shards: u32, json: bool) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let key = RsaSigner::generate()?;
    let serial = Serial::from_be_bytes(&[0x01])?;
    let ca = RootCa::create(
        Root::Sign,
        "Shomei Bench Authority",
        Arc::new(key),
        &serial,
        now,
    )?;
    let points = PublicationPoints::new("http://127.0.0.1:8700");
    let next = now + time::Duration::hours(24);
    let t = Instant::now();
    let groups = shomei_pki::crl::synthetic_revocations(revoked, shards, now);
    let synth = t.elapsed();
    let pb = bar(json, u64::from(shards), "build_crl per shard");
    let mut ders = Vec::with_capacity(shards as usize);
    let mut times = Vec::with_capacity(shards as usize);
    let t = Instant::now();
    for (shard, entries) in groups.iter().enumerate() {
        let ts = Instant::now();
        let der = shomei_pki::crl::build_crl(
            &ca,
            &points,
            CertClass::CardSign,
            shard as u32,
            1,
            now,
            next,
            entries,
        )?;
        times.push(ts.elapsed());
        ders.push(der);
        pb.inc(1);
    }
    let total = t.elapsed();
    pb.finish_and_clear();
    let bytes: usize = ders.iter().map(Vec::len).sum();
    let entries: usize = groups.iter().map(Vec::len).sum();
    // Check: every shard parses and lists its entries.
    for (der, group) in ders.iter().zip(&groups) {
        let s = shomei_pki::crl::parse_crl_summary(der)?;
        if s.entries != group.len() {
            bail!(
                "a shard lists {} entries, expected {}",
                s.entries,
                group.len()
            );
        }
    }
    // Baseline: the raw RSA signature over one shard's TBSCertList.
    let biggest = ders
        .iter()
        .enumerate()
        .max_by_key(|(_, d)| d.len())
        .map(|(i, _)| i)
        .context("no shards")?;
    let inner = der_inner(&ders[biggest]).context("CRL")?;
    let (_, tbs_len) = der_tlv(inner).context("tbsCertList")?;
    let tbs = inner[..tbs_len].to_vec();
    let mut sign_times = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        ca.signer().sign(&tbs)?;
        sign_times.push(t.elapsed());
    }
    sign_times.sort();
    let sign_one = sign_times[sign_times.len() / 2];
    // Outside check: openssl parses a shard (and verifies it with the root).
    let tmp = tempfile::Builder::new()
        .prefix("shomei-bench-crl-")
        .tempdir()?;
    let crl_path = tmp.path().join("shard.crl");
    let root_path = tmp.path().join("root.pem");
    std::fs::write(&crl_path, &ders[biggest])?;
    std::fs::write(&root_path, pem("CERTIFICATE", ca.cert_der()))?;
    let spawn = time_command(Command::new("openssl").arg("version"))?.0;
    let (parse, ok) = time_command(
        Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-in"])
            .arg(&crl_path),
    )?;
    if !ok {
        bail!("openssl crl could not parse the shard");
    }
    let verify = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&crl_path)
        .arg("-CAfile")
        .arg(&root_path)
        .output()?;
    let verified =
        verify.status.success() && String::from_utf8_lossy(&verify.stderr).contains("verify OK");
    times.sort();
    let per_shard_p50 = times[times.len() / 2];
    let per_entry_ns = total.as_nanos() as f64 / entries as f64;
    let signing_total = sign_one * shards;
    let value = json!({
        "bench": "crl",
        "machine": machine(),
        "revoked": entries,
        "shards": shards,
        "total_ms": ms(total),
        "total_bytes": bytes,
        "per_entry_ns": per_entry_ns,
        "per_entry_bytes": bytes as f64 / entries as f64,
        "per_shard_ms": {"p50": ms(per_shard_p50), "max": ms(times[times.len() - 1])},
        "largest_shard": {"entries": groups[biggest].len(), "bytes": ders[biggest].len()},
        "synthetic_revocations_ms": ms(synth),
        "baseline": {
            "raw_rsa_sign_one_shard_ms": ms(sign_one),
            "raw_rsa_sign_all_shards_ms": ms(signing_total),
            "signing_share": signing_total.as_secs_f64() / total.as_secs_f64(),
            "openssl_crl_parse_ms": ms(parse),
            "openssl_process_start_ms": ms(spawn),
            "openssl_verify_ok": verified,
        },
    });
    let human = format!(
        "bench crl ({entries} revoked in {shards} shards, 1 thread)\n\
         \x20 build_crl, all shards   {:>9.1} ms   {:>7.1} MB   ({:.0} ns and {:.1} bytes per entry)\n\
         \x20 per shard               p50 {:.2} ms, max {:.2} ms   (largest: {} entries, {} bytes)\n\
         \x20 baseline: raw RSA-2048 signature of one shard's TBSCertList {:.3} ms (x{shards} = {:.1} ms, {:.1} % of the total: the rest is encoding)\n\
         \x20 baseline: openssl crl -inform DER -noout on the largest shard {:.1} ms (process start alone {:.1} ms); signature {}",
        ms(total),
        bytes as f64 / 1e6,
        per_entry_ns,
        bytes as f64 / entries as f64,
        ms(per_shard_p50),
        ms(times[times.len() - 1]),
        groups[biggest].len(),
        ders[biggest].len(),
        ms(sign_one),
        ms(signing_total),
        100.0 * signing_total.as_secs_f64() / total.as_secs_f64(),
        ms(parse),
        ms(spawn),
        if verified {
            "verify OK (openssl crl -CAfile)"
        } else {
            "NOT verified by openssl"
        },
    );
    emit(json, &value, &human);
    Ok(())
}

fn time_command(cmd: &mut Command) -> anyhow::Result<(Duration, bool)> {
    let mut best = Duration::MAX;
    let mut ok = true;
    for _ in 0..5 {
        let t = Instant::now();
        let st = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run openssl")?;
        best = best.min(t.elapsed());
        ok &= st.success();
    }
    Ok((best, ok))
}

// ------------------------------------------------------------------ freshness

async fn freshness(samples: usize, json: bool) -> anyhow::Result<()> {
    let fx = Fixture::start(None).await?;
    let result = freshness_measure(&fx, samples, json).await;
    fx.stop().await;
    let (value, human) = result?;
    emit(json, &value, &human);
    Ok(())
}

async fn ocsp_check(
    http: &reqwest::Client,
    url: &str,
    req: &[u8],
    nonce: &[u8],
    root: &[u8],
    serial: &Serial,
) -> anyhow::Result<CertState> {
    let body = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
        .body(req.to_vec())
        .send()
        .await?
        .bytes()
        .await?;
    let summary = shomei_pki::ocsp::parse_response(&body, root, SystemClock.now())?;
    if summary.nonce.as_deref() != Some(nonce) {
        bail!("the OCSP responder did not echo our nonce");
    }
    Ok(summary
        .status_of(serial)
        .context("the response is about another certificate")?
        .state)
}

async fn freshness_measure(
    fx: &Fixture,
    samples: usize,
    json: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    let root = fx.state().sign_root_der.clone();
    let certs = enrol_holders(fx, samples, json).await?;
    let url = format!("{}/ocsp/sign", fx.base);
    let http = reqwest::Client::new();
    let mut rng = shomei_pki::SystemRandom::new();
    let mut rtt = Vec::with_capacity(samples);
    let mut fresh = Vec::with_capacity(samples);
    let mut max_polls = 0usize;
    let mut counter = 0u64;
    let mut request = |der: &[u8]| -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        counter += 1;
        let mut nonce = vec![0u8; 32];
        shomei_core::RandomSource::fill(&mut rng, &mut nonce)
            .map_err(|_| anyhow::anyhow!("randomness failed"))?;
        nonce[..8].copy_from_slice(&counter.to_be_bytes());
        let req = shomei_pki::ocsp::build_request(der, &root, CertIdHash::Sha1, Some(&nonce))?;
        Ok((req, nonce))
    };
    let pb = bar(json, samples as u64, "revoke → OCSP revoked");
    for der in &certs {
        let serial = serial_of(der)?;
        // Baseline: one OCSP round trip (request, signed answer, verify).
        let (req, nonce) = request(der)?;
        let t = Instant::now();
        let st = ocsp_check(&http, &url, &req, &nonce, &root, &serial).await?;
        rtt.push(t.elapsed());
        if st != CertState::Good {
            bail!("certificate {serial} is not good before its revocation");
        }
        let polls_prepared: Vec<_> = (0..4)
            .map(|_| request(der))
            .collect::<anyhow::Result<_>>()?;
        revoke(&http, fx, &serial, "keyCompromise").await?;
        let t = Instant::now();
        let mut polls = 0usize;
        loop {
            let (req, nonce) = match polls_prepared.get(polls) {
                Some(p) => p.clone(),
                None => request(der)?,
            };
            polls += 1;
            let st = ocsp_check(&http, &url, &req, &nonce, &root, &serial).await?;
            if matches!(st, CertState::Revoked { .. }) {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("OCSP still says {st:?} 10 s after the revoke call returned");
            }
        }
        fresh.push(t.elapsed());
        max_polls = max_polls.max(polls);
        pb.inc(1);
    }
    pb.finish_and_clear();
    rtt.sort();
    fresh.sort();
    let stat = |v: &[Duration]| json!({"min": ms(v[0]), "p50": ms(v[v.len() / 2]), "max": ms(v[v.len() - 1])});
    let value = json!({
        "bench": "freshness",
        "machine": machine(),
        "samples": samples,
        "revoke_to_ocsp_revoked_ms": stat(&fresh),
        "max_polls": max_polls,
        "baseline": {"ocsp_round_trip_ms": stat(&rtt)},
    });
    let human = format!(
        "bench freshness ({samples} revocations; OCSP polled at once after the revoke call returned)\n\
         \x20 revoke returned → OCSP says revoked   min {:.2} ms   p50 {:.2} ms   max {:.2} ms   (at most {max_polls} poll(s))\n\
         \x20 baseline: one OCSP round trip          min {:.2} ms   p50 {:.2} ms   max {:.2} ms",
        ms(fresh[0]),
        ms(fresh[fresh.len() / 2]),
        ms(fresh[fresh.len() - 1]),
        ms(rtt[0]),
        ms(rtt[rtt.len() / 2]),
        ms(rtt[rtt.len() - 1]),
    );
    Ok((value, human))
}

// ------------------------------------------------------------------ provision

pub(crate) const CARD_PASSWORD: &str = "BENCH2026";
pub(crate) const CARD_PIN: &str = "4321";
pub(crate) const PHONE_PASSWORD: &str = "PHONE2026";
pub(crate) const PHONE_PIN: &str = "2468";

async fn provision(count: usize, json: bool) -> anyhow::Result<()> {
    let work = tempfile::Builder::new()
        .prefix("shomei-bench-phones-")
        .tempdir()
        .context("cannot create a temporary folder")?;
    // The authority reads its trusted manufacturer roots when it loads, so
    // the manufacturer exists (and is trusted) before the authority starts.
    let maker = crate::phone_cmd::manufacturer(&work.path().join("se-manufacturer"))?;
    let fx = Fixture::start_with(None, |dir| {
        crate::phone_cmd::trust_manufacturer(&maker, dir).map(|_| ())
    })
    .await?;
    let result = provision_measure(&fx, &maker, work.path(), count, json).await;
    fx.stop().await;
    let (value, human) = result?;
    emit(json, &value, &human);
    Ok(())
}

async fn provision_measure(
    fx: &Fixture,
    maker: &shomei_se_sim::SimManufacturer,
    work: &Path,
    count: usize,
    json: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    let pb = bar(json, count as u64, "phone provision");
    let mut issue_times = Vec::with_capacity(count);
    let mut create_times = Vec::with_capacity(count);
    let mut times = Vec::with_capacity(count);
    let cpu = CpuSnapshot::take();
    for i in 0..count {
        // Untimed: a freshly issued card for a new adult holder.
        let card_path = work.join(format!("card{i}.jpki"));
        let t = Instant::now();
        crate::card_cmd::issue(
            &fx.base,
            &fx.token,
            &holder(i)?,
            CARD_PASSWORD,
            CARD_PIN,
            &card_path,
        )
        .await?;
        issue_times.push(t.elapsed());
        let phone_dir = work.join(format!("phone{i}"));
        let elapsed = tokio::task::block_in_place(|| -> anyhow::Result<(Duration, Duration)> {
            let mut card = crate::card_cmd::open(&card_path)?;
            let mut http = crate::phone_cmd::Http::new()?;
            // Untimed: the phone leaves the factory (its secure element is
            // personalised by the manufacturer), reported on its own.
            let t = Instant::now();
            let mut phone = shomei_phone::Phone::create(&phone_dir, maker, SystemClock.now())
                .map_err(crate::phone_cmd::phone_error)?;
            let created = t.elapsed();
            let req = shomei_phone::ProvisionRequest {
                authority: &fx.base,
                card_password: CARD_PASSWORD,
                sign_password: PHONE_PASSWORD,
                auth_pin: PHONE_PIN,
                notify_email: None,
            };
            let t = Instant::now();
            let out = phone
                .provision(&mut card, &mut http, &req)
                .map_err(crate::phone_cmd::phone_error)?;
            let took = t.elapsed();
            if !phone.is_provisioned() || out.sign_serial.is_empty() || out.auth_serial.is_empty() {
                bail!("phone {i} is not provisioned after `provision` returned");
            }
            Ok((created, took))
        })?;
        create_times.push(elapsed.0);
        times.push(elapsed.1);
        pb.inc(1);
    }
    let cpu = cpu.since();
    pb.finish_and_clear();
    // Baseline, same run: two RSA-2048 key generations with aws-lc-rs.
    let pb = bar(json, count as u64, "baseline: 2 RSA-2048 keys");
    let mut keygen = Vec::with_capacity(count);
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        for _ in 0..count {
            let t = Instant::now();
            let a = RsaSigner::generate()?;
            let b = RsaSigner::generate()?;
            keygen.push(t.elapsed());
            drop((a, b));
            pb.inc(1);
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    let sorted_us = |v: &[Duration]| {
        let mut us: Vec<u64> = v.iter().map(|d| d.as_micros() as u64).collect();
        us.sort_unstable();
        us
    };
    let (prov, keys, issue, create) = (
        sorted_us(&times),
        sorted_us(&keygen),
        sorted_us(&issue_times),
        sorted_us(&create_times),
    );
    let stat = |us: &[u64]| json!({"min": pct_ms(us, 0.0), "p50": pct_ms(us, 50.0), "p95": pct_ms(us, 95.0), "max": pct_ms(us, 100.0)});
    let p50 = pct_ms(&prov, 50.0);
    let p95 = pct_ms(&prov, 95.0);
    let k50 = pct_ms(&keys, 50.0);
    let value = json!({
        "bench": "provision",
        "machine": machine(),
        "count": count,
        "phone_provision_ms": stat(&prov),
        "goal_ms": 1000.0,
        "meets_goal_p95": p95 < 1000.0,
        "untimed": {
            "card_issue_ms": stat(&issue),
            "phone_create_ms": stat(&create),
        },
        "cpu_whole_loop": cpu.json(),
        "baseline": {"two_rsa2048_keygens_ms": stat(&keys)},
        "keygen_share_of_p50": if p50 > 0.0 { k50 / p50 } else { 0.0 },
    });
    let human = format!(
        "bench provision ({count} phones, one freshly issued card each; authority in-process on loopback, SQLite)\n\
         \x20 phone provision end to end             min {:.1} ms   p50 {:.1} ms   p95 {:.1} ms   max {:.1} ms   (goal < 1000 ms: {})\n\
         \x20 baseline: 2 × RSA-2048 keygen, aws-lc-rs min {:.1} ms   p50 {:.1} ms   p95 {:.1} ms   max {:.1} ms   ({:.0} % of the provisioning p50)\n\
         \x20 untimed: card issue p50 {:.1} ms; phone create (SE manufacture) p50 {:.1} ms\n\
         \x20 CPU over the whole loop (card issue included): {}",
        pct_ms(&prov, 0.0),
        p50,
        p95,
        pct_ms(&prov, 100.0),
        if p95 < 1000.0 { "met" } else { "NOT met" },
        pct_ms(&keys, 0.0),
        k50,
        pct_ms(&keys, 95.0),
        pct_ms(&keys, 100.0),
        if p50 > 0.0 { 100.0 * k50 / p50 } else { 0.0 },
        pct_ms(&issue, 50.0),
        pct_ms(&create, 50.0),
        cpu.human(),
    );
    Ok((value, human))
}

// ------------------------------------------------------------------ se-sign

fn se_sign(iterations: u32, json: bool) -> anyhow::Result<()> {
    let r = shomei_se_sim::bench::measure_sign_overhead(iterations)
        .map_err(|e| anyhow::anyhow!("secure-element bench failed: {e}"))?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let value = json!({
        "bench": "se-sign",
        "machine": machine(),
        "iterations": r.iterations,
        "element_per_sign_us": us(r.element_per_sign),
        "baseline": {"raw_aws_lc_rs_per_sign_us": us(r.raw_per_sign)},
        "overhead_percent": r.overhead_percent,
        "goal_percent": 10.0,
        "meets_goal": r.overhead_percent < 10.0,
        "storage_commits_while_signing": r.commits_while_signing,
    });
    let human = format!(
        "bench se-sign ({} RSA-2048 signatures each way, alternated, one session unlock; medians)\n\
         \x20 secure element sign                 {:>8.1} µs\n\
         \x20 baseline: bare aws-lc-rs RsaSigner  {:>8.1} µs\n\
         \x20 overhead {:+.2} % (goal < 10 %: {}); sealed-store commits while signing: {}",
        r.iterations,
        us(r.element_per_sign),
        us(r.raw_per_sign),
        r.overhead_percent,
        if r.overhead_percent < 10.0 {
            "met"
        } else {
            "NOT met"
        },
        r.commits_while_signing,
    );
    emit(json, &value, &human);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:55433/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:55433/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "y").unwrap(),
            "postgresql://u:p@h/y?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "z").unwrap(),
            "postgres://h:5432/z"
        );
    }

    #[test]
    fn index_times() {
        use time::macros::datetime;
        assert_eq!(
            index_time(datetime!(2036-04-01 12:34:56 UTC)),
            "360401123456Z"
        );
        assert_eq!(
            index_time(datetime!(2051-01-02 03:04:05 UTC)),
            "20510102030405Z"
        );
    }
}
