//! Key files: the hex of a 32-byte ed25519 private key, one line, readable by its owner only.
//!
//! The CLI writes them and the node reads its validator key the same way.

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::Signer;
use commonware_math::algebra::Random;
use exo_types::{Address, PrivateKey};
use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Read, Write},
    path::{Path, PathBuf},
};

/// Largest key file read, in bytes: 64 hex characters and some whitespace.
const MAX_KEY_FILE_BYTES: u64 = 1024;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{} already exists; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than a key file can be", .0.display())]
    TooLarge(PathBuf),
    #[error("{} does not hold a hex ed25519 private key", .0.display())]
    Malformed(PathBuf),
}

/// A new private key from the operating system's randomness.
pub fn generate() -> PrivateKey {
    PrivateKey::random(rand::rng())
}

/// The address (public key) of `key`.
pub fn address(key: &PrivateKey) -> Address {
    key.public_key()
}

/// The key file text of `key`.
pub fn to_hex(key: &PrivateKey) -> String {
    hex::encode(key.encode())
}

/// Parses key file text (hex, surrounding whitespace ignored).
pub fn from_hex(text: &str) -> Option<PrivateKey> {
    let bytes = hex::decode(text.trim()).ok()?;
    PrivateKey::decode(bytes).ok()
}

/// Writes `key` to a new file at `path` with mode 0600. Never overwrites an existing file.
pub fn write_new(path: &Path, key: &PrivateKey) -> Result<(), KeyFileError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = options.open(path).map_err(|source| match source.kind() {
        ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_path_buf()),
        _ => io(source),
    })?;
    file.write_all(format!("{}\n", to_hex(key)).as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads the key at `path`.
pub fn read(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => KeyFileError::NotFound(path.to_path_buf()),
        _ => io(source),
    })?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|source| match source.kind() {
            ErrorKind::InvalidData => KeyFileError::Malformed(path.to_path_buf()),
            _ => io(source),
        })?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge(path.to_path_buf()));
    }
    from_hex(&text).ok_or_else(|| KeyFileError::Malformed(path.to_path_buf()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = generate();
        write_new(&path, &key).unwrap();
        let read_back = read(&path).unwrap();
        assert_eq!(address(&read_back), address(&key));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "keep me").unwrap();
        assert!(matches!(
            write_new(&path, &generate()),
            Err(KeyFileError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(read(&missing), Err(KeyFileError::NotFound(_))));
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not a key").unwrap();
        assert!(matches!(read(&garbage), Err(KeyFileError::Malformed(_))));
        let short = dir.path().join("short");
        std::fs::write(&short, "abcd").unwrap();
        assert!(matches!(read(&short), Err(KeyFileError::Malformed(_))));
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(read(&binary), Err(KeyFileError::Malformed(_))));
        let big = dir.path().join("big");
        std::fs::write(&big, "0".repeat(4096)).unwrap();
        assert!(matches!(read(&big), Err(KeyFileError::TooLarge(_))));
    }

    #[test]
    fn hex_is_the_codec_encoding() {
        let key = PrivateKey::from_seed(3);
        let text = to_hex(&key);
        assert_eq!(text, hex::encode(key.encode()));
        assert_eq!(address(&from_hex(&text).unwrap()), key.public_key());
        assert!(from_hex(&format!("{text}00")).is_none());
    }
}
