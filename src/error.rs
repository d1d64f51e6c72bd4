//! How a role stops with an error, and the process exit code that says why.

/// Exit code for a configuration that cannot be used (`EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// Why a role stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot be used; every problem found is listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// Anything that went wrong after start-up.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl RunError {
    /// The process exit code for this error: 64 (`EX_USAGE`) for bad
    /// configuration, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) => EXIT_CONFIG,
            RunError::Runtime(_) => 1,
        }
    }
}
