//! Output conventions: `--json` prints exactly one JSON object on stdout;
//! failures are one line on stderr with exit code 2 (bad usage or input) or
//! 1 (everything else).

use core::fmt;

/// A failure with a chosen exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad usage or bad input: exit code 2.
    pub fn input(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Self {
            code: 2,
            message: message.into(),
        })
    }

    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Prints the result: JSON when asked, else the human lines.
pub fn emit(json: bool, value: &serde_json::Value, human: &str) {
    if json {
        println!("{value}");
    } else if !human.is_empty() {
        println!("{human}");
    }
}
