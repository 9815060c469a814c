//! What the binary's integration tests share: running `shomei` as outside
//! tools do (no stdin), reading its `--json` answer or its one-line failure
//! (CONTRACT.md), openssl, and free loopback ports.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `shomei ARGS`, stdin closed.
pub fn shomei(args: &[&str]) -> Output {
    shomei_env(args, &[])
}

/// `shomei ARGS` with extra environment variables, stdin closed.
pub fn shomei_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shomei"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A success's `--json` answer: exactly one JSON line on stdout.
pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    one_json_line(out)
}

/// The one JSON line on stdout, whatever the exit code.
pub fn one_json_line(out: &Output) -> Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        text.trim().lines().count(),
        1,
        "--json prints exactly one line: {text:?} (stderr: {})",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}

/// The one line on stderr.
pub fn stderr_line(out: &Output) -> String {
    let e = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(e.lines().count(), 1, "one line on stderr: {e}");
    e
}

/// A failure: its exit code and its one stderr line.
pub fn failure(out: &Output) -> (i32, String) {
    assert!(
        !out.status.success(),
        "expected a failure, got {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code().unwrap(), stderr_line(out))
}

/// Runs openssl: whether it succeeded, and its stdout then stderr.
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
