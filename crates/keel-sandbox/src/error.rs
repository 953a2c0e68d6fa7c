use thiserror::Error;

#[derive(Debug, Error)]
pub enum SandboxError {
    /// No sandbox can be made here and the configuration does not allow running
    /// commands without one.
    #[error(
        "refused: keel cannot sandbox commands on this machine ({reason}); install bubblewrap (`apt install bubblewrap`), or set `[sandbox] mode = \"off\"` in your own configuration to run commands without a sandbox"
    )]
    Unavailable { reason: String },
}
