//! `shomei`: the one binary. Command-line definitions and glue only; every
//! decision lives in the library crates.

mod authority_cmd;
mod bench;
mod bench_mdoc;
mod bench_rp;
mod card_cmd;
mod cli;
mod face_cmd;
mod login;
mod mdoc_cmd;
mod oidc_demo;
mod output;
mod phone_cmd;
mod qr;
mod reader_cmd;
mod sandbox;
mod sandbox_mdoc;
mod sandbox_rp;
mod transport;
mod verifier_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::output::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Authority(c) => authority_cmd::run(c, json).await,
            Command::Card(c) => card_cmd::run(c, json).await,
            Command::Phone(c) => phone_cmd::run(c, json).await,
            Command::Verifier(c) => verifier_cmd::run_verifier(c, json).await,
            Command::Verify(c) => verifier_cmd::run_verify(c, json).await,
            Command::Reader(c) => mdoc_cmd::run_reader(c, json).await,
            Command::Sandbox(c) => sandbox::run(c, json).await,
            Command::Bench(c) => bench::run(c, json).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<Failure>()
                .map(Failure::exit_code)
                .unwrap_or(1);
            // One line: the outermost message and its causes.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOMEI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
