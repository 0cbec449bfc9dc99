//! Private keys on disk: hex of the canonical encoding, readable by the owner only.

use anyhow::{Context, bail};
use commonware_codec::{DecodeExt, Encode};
use exo_types::PrivateKey;
use std::path::Path;

/// Reads a key file written by [`write`].
pub fn read(path: &Path) -> anyhow::Result<PrivateKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .with_context(|| format!("key file {} is not hex", path.display()))?;
    PrivateKey::decode(bytes)
        .map_err(|e| anyhow::anyhow!("key file {} holds no ed25519 key: {e}", path.display()))
}

/// Writes `key` to a new file with owner-only permissions; never overwrites.
pub fn write(path: &Path, key: &PrivateKey) -> anyhow::Result<()> {
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key",
            path.display()
        );
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    writeln!(file, "{}", hex::encode(key.encode()))?;
    Ok(())
}
