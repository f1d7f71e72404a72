//! Exit codes, so scripts can tell a refusal from a dead line.
use std::fmt;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The device refused the command or the upload (it said why).
    Refused = 1,
    /// The command line is incomplete (clap uses 2 for its own errors too).
    Usage = 2,
    /// The device did not answer in time.
    NoAnswer = 3,
    /// The link could not be opened or broke (I/O).
    Link = 4,
    /// Local trouble: files, keys, an image that is not a signed slot.
    Local = 5,
}

/// An error with the exit code it ends the program with.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: Code, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code as u8)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// `.local()?` / `.link()?`: tag an error with its exit code.
pub trait Tag<T> {
    fn local(self) -> Result<T>;
    fn link(self) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> Tag<T> for std::result::Result<T, E> {
    fn local(self) -> Result<T> {
        self.map_err(|e| Failure::new(Code::Local, e))
    }
    fn link(self) -> Result<T> {
        self.map_err(|e| Failure::new(Code::Link, e))
    }
}
