use std::path::PathBuf;

/// A fault of the host or a malformed request: the unit did not run to an attestable outcome.
/// A misbehaving guest is never an `ExecError`; it is an [`crate::Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The unit's description breaks a bound or a naming rule.
    #[error("invalid unit: {0}")]
    InvalidSpec(String),
    /// The module was named by hash but this node has not compiled it.
    #[error("module {0} is not in the compile cache")]
    ModuleNotCached(String),
    /// [`crate::Sandbox::prepare`] was given bytes that are not a valid module for this sandbox.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    #[error("{context} ({}): {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// wasmtime refused the configuration or failed in a way that is not the guest's doing
    /// (for example every pooled instance slot is busy).
    #[error("engine: {0}")]
    Engine(String),
}

impl ExecError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ExecError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
