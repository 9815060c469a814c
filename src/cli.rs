//! Command-line definitions (see CONTRACT.md for the stable surface).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shōmei: a national digital-identity system (authority, card, phone, relying party).
#[derive(Parser, Debug)]
#[command(name = "shomei", version, about)]
pub struct Cli {
    /// Print exactly one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log progress to stderr (SHOMEI_LOG=debug for more).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The authority (the J-LIS role): CA, registry, CRLs, OCSP.
    #[command(subcommand)]
    Authority(AuthorityCmd),
    /// The holder's emulated My Number Card.
    #[command(subcommand)]
    Card(CardCmd),
    /// The holder's phone: JPKI on its secure element, put there from the card.
    #[command(subcommand)]
    Phone(crate::phone_cmd::PhoneCmd),
    /// The relying party's OpenID Connect provider ("log in with My Number").
    #[command(subcommand)]
    Verifier(crate::verifier_cmd::VerifierCmd),
    /// Verify what holders sign.
    #[command(subcommand)]
    Verify(crate::verifier_cmd::VerifyCmd),
    /// An ISO 18013-5 mdoc reader: request and verify a mobile ID in person.
    #[command(subcommand)]
    Reader(crate::mdoc_cmd::ReaderCmd),
    /// Run the whole story step by step on an embedded authority.
    Sandbox(SandboxArgs),
    /// Measure issuance, OCSP, CRLs and revocation freshness, each beside a
    /// baseline measured in the same run.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand, Debug)]
pub enum AuthorityCmd {
    /// Create an authority folder: roots, OCSP responders, registry, operator token.
    Init {
        #[arg(long)]
        data: PathBuf,
        /// CRL shards per certificate class.
        #[arg(long, default_value_t = 16)]
        crl_shards: u32,
        /// Public base URL written into certificates (CRL and OCSP locations).
        #[arg(long, default_value = "http://127.0.0.1:8700")]
        base_url: String,
        /// Authority name (the roots' O).
        #[arg(long, default_value = "Shomei Authority")]
        name: String,
        /// Do not trust the development secure-element manufacturer (whose
        /// key is public; it lets simulated phones provision out of the
        /// box). Use this for anything but testing.
        #[arg(long)]
        no_development_manufacturer: bool,
    },
    /// Serve the authority over HTTP.
    Serve {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: SocketAddr,
        /// Registry URL (postgres://…); default: DIR/registry.sqlite.
        #[arg(long)]
        database: Option<String>,
    },
    /// Register a relying party for linkage lookups (GET /v1/linkage/{serial});
    /// its bearer token is written to --out (mode 0600), shown nowhere else.
    RegisterRp {
        /// The authority's URL.
        #[arg(long)]
        authority: String,
        #[arg(long)]
        operator_token_file: PathBuf,
        /// Unique name: 1-64 of letters, digits, '-', '_', '.'.
        #[arg(long)]
        name: String,
        /// Where to write the relying party's token (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum KindArg {
    Sign,
    Auth,
}

#[derive(Subcommand, Debug)]
pub enum CardCmd {
    /// Manufacture a card, enrol its holder at the authority and personalise it.
    Issue {
        #[arg(long)]
        authority: String,
        #[arg(long)]
        operator_token_file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        address: String,
        /// Birth date, ISO 8601 (1990-04-01).
        #[arg(long)]
        birth: String,
        /// 1 male, 2 female, 3 not known.
        #[arg(long)]
        sex: String,
        /// Signing password: 6-16 of A-Z0-9 (ignored for holders under 15);
        /// asked for at the terminal when neither it nor its file is given.
        #[arg(long)]
        sign_password: Option<String>,
        #[arg(long)]
        sign_password_file: Option<PathBuf>,
        /// Authentication PIN: 4 digits (asked for at the terminal when
        /// neither it nor its file is given).
        #[arg(long)]
        auth_pin: Option<String>,
        #[arg(long)]
        auth_pin_file: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        face: crate::face_cmd::IssueFaceArgs,
    },
    /// Read the card face: the text AP's basic four (and the My Number with
    /// --show-my-number) and the visual AP's authority-signed face.
    ReadFace(crate::face_cmd::ReadFaceArgs),
    /// Read a certificate from the card (the signing one needs the password).
    ReadCert {
        #[arg(long)]
        card: PathBuf,
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a file with the card: detached CMS SignedData (DER).
    Sign {
        #[arg(long)]
        card: PathBuf,
        #[arg(long, value_enum)]
        kind: KindArg,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        pin_file: Option<PathBuf>,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Answer a relying party's login page with the card's authentication
    /// key (and, for name/address/birth date/sex, its signing key).
    Login {
        #[arg(long)]
        card: PathBuf,
        /// The login URL the relying party's page shows.
        #[arg(long)]
        url: String,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        pin_file: Option<PathBuf>,
        /// The card's signing password (for basic-four scopes).
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Tries left per PIN and certificate serials.
    Status {
        #[arg(long)]
        card: PathBuf,
    },
    /// Plug the card into pcscd through the vsmartcard vpcd driver (PC/SC).
    ServeVpcd {
        #[arg(long)]
        card: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 35963)]
        port: u16,
    },
    /// Suspend one of your certificates, proving with the card (auth PIN).
    Suspend(HolderActionArgs),
    /// Lift a suspension, proving with the card (auth PIN).
    Resume(HolderActionArgs),
    /// Revoke one of your certificates, proving with the card (auth PIN).
    Revoke(HolderActionArgs),
}

#[derive(Args, Debug)]
pub struct HolderActionArgs {
    #[arg(long)]
    pub authority: String,
    #[arg(long)]
    pub card: PathBuf,
    /// Authentication PIN (4 digits).
    #[arg(long)]
    pub pin: Option<String>,
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
    /// The certificate to act on (default: this card's authentication certificate).
    #[arg(long)]
    pub serial: Option<String>,
    /// Revocation reason (revoke only).
    #[arg(long, default_value = "keyCompromise")]
    pub reason: String,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Keep the sandbox's files here (default: a fresh temporary folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Leave the services running afterwards and print their URLs.
    #[arg(long)]
    pub serve: bool,
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Certificates/s through POST /v1/cards (CSR check, signing, registry
    /// commit) vs raw RSA-2048 signatures/s on as many threads.
    Issue {
        /// Registry server URL (postgres://…/postgres): a fresh database is
        /// created there for the run and dropped after. Default: SQLite in a
        /// temporary folder.
        #[arg(long)]
        database: Option<String>,
        /// Enrolments (2 certificates each).
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// Concurrent HTTP clients (the registry group-commits what is in flight).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// OCSP over HTTP (fresh signatures with nonces, and cached nonce-less)
    /// vs `openssl ocsp` serving the same certificates.
    Ocsp {
        /// Requests per measured run.
        #[arg(long, default_value_t = 20000)]
        requests: usize,
        /// Concurrent keep-alive clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Holders enrolled (their signing certificates are queried; every
        /// fifth is revoked).
        #[arg(long, default_value_t = 200)]
        certs: usize,
    },
    /// Time and bytes per entry of a CRL shard set vs the raw signing time.
    Crl {
        /// Revoked certificates in total.
        #[arg(long, default_value_t = 1_000_000)]
        revoked: u64,
        /// CRL shards.
        #[arg(long, default_value_t = 64)]
        shards: u32,
    },
    /// Time from a revoke call returning to OCSP answering `revoked` vs one
    /// OCSP round trip.
    Freshness {
        /// Certificates revoked (one sample each).
        #[arg(long, default_value_t = 100)]
        samples: usize,
    },
    /// Wall time of `phone provision` end to end (card read over APDUs,
    /// card password, two attested secure-element RSA keys, CSRs, card
    /// signature, POST /v1/phones) vs generating two RSA-2048 keys.
    Provision {
        /// Phones provisioned (a freshly issued card each; one sample each).
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// The secure element's RSA-2048 signing time within an unlocked
    /// session vs the bare aws-lc-rs key, alternated in the same run.
    SeSign {
        /// Signatures made each way.
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
    },
    /// Login verifications/s from a warm cache (cached chain, CRL shard
    /// lookup, challenge signature) vs raw RSA-2048 verifications/s, 1 core.
    Login {
        /// Measuring time in seconds (split between ours and the baseline).
        #[arg(long, default_value_t = 6.0)]
        seconds: f64,
        /// Entries in the cached CRL shard.
        #[arg(long, default_value_t = 100_000)]
        revoked: u64,
    },
    /// Verifications/s of a signed document (default 1 MiB) vs SHA-256 of
    /// it plus one RSA verification, and vs raw RSA verification.
    VerifyDoc {
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
        /// Document size in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        size: usize,
    },
    /// Full OIDC login round trips on loopback (authorize, phone answers
    /// the challenge, OCSP-checked verification, token): p50 and p99 vs one
    /// loopback HTTP round trip.
    Oidc {
        /// Logins.
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Mobile ID in person: full ISO 18013-5 presentations over loopback
    /// TCP (engagement, session, request, device signature in the simulated
    /// secure element, reader verification with a status list), p50/p95/p99
    /// vs the bare TCP round trip and the crypto floor.
    Present {
        /// Presentations.
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Reader verifications/s of one decrypted DeviceResponse (1 core) vs
    /// three raw P-256 verifications, and vs @auth0/mdl on the same response.
    MdocVerify {
        /// Measuring time in seconds (half ours and the baseline, half @auth0/mdl).
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
    },
}
