//! Typed errors: loading a plugin ([`PolicyError`]) and a failed call ([`CallFailure`]).

use std::path::PathBuf;

/// Why a plugin could not be loaded. The daemon refuses to start (or keeps the old
/// plugin on reload) with this message.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("plugin {source_name}: cannot read {path}: {error}")]
    Read { source_name: String, path: PathBuf, error: std::io::Error },
    #[error("unknown builtin plugin `{0}` (builtins: {1})")]
    UnknownBuiltin(String, String),
    #[error("plugin {source_name}: sha256 mismatch: config says {expected}, file has {actual}")]
    Sha256Mismatch { source_name: String, expected: String, actual: String },
    #[error("plugin {source_name}: `sha256` must be 64 hex characters, got {value:?}")]
    BadSha256 { source_name: String, value: String },
    #[error("plugin {source_name}: not a valid WebAssembly component: {reason}")]
    Invalid { source_name: String, reason: String },
    #[error("plugin {source_name}: import `{import}` is not allowed: {why}")]
    ForbiddenImport { source_name: String, import: String, why: &'static str },
    #[error("plugin {source_name}: does not implement world `{expected}` (it exports: {exports})")]
    WrongWorld { source_name: String, expected: String, exports: String },
    #[error("plugin {source_name}: rejected its configuration: {message}")]
    Config { source_name: String, message: String },
    #[error("plugin {source_name}: failed to start: {failure}")]
    Start { source_name: String, failure: CallFailure },
    #[error("plugin compile cache folder {path}: {why}")]
    UnsafeCache { path: PathBuf, why: String },
    #[error("policy runtime: {0}")]
    Runtime(String),
}

/// Why one call into a plugin produced no usable answer. Callers turn it into the
/// fail-safe decision of the decision point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("exceeded its {0:?} call deadline")]
    Deadline(std::time::Duration),
    #[error("exceeded its memory limit of {0} bytes")]
    OutOfMemory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned a malformed answer: {0}")]
    Malformed(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}
