//! Key files named on the command line: checkpoint public keys and raw audit keys.

use std::io::Read;
use std::path::Path;

use fieldseal::CheckpointVerifyingKey;
use zeroize::Zeroizing;

use crate::fail::{Failure, Result, io_at};

/// A checkpoint public key from 64 hex digits, or from a file holding them (or 32 raw bytes).
pub(crate) fn parse_public(arg: &str) -> Result<CheckpointVerifyingKey> {
    let bytes = match unhex32(arg.trim()) {
        Some(b) => b,
        None => {
            let path = Path::new(arg);
            let data = std::fs::read(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Failure::input(format_args!(
                    "--checkpoint-key {arg}: neither 64 hex digits nor an existing file"
                )),
                _ => io_at(path, &e),
            })?;
            match <[u8; 32]>::try_from(data.as_slice()) {
                Ok(b) => b,
                Err(_) => std::str::from_utf8(&data)
                    .ok()
                    .and_then(|t| unhex32(t.trim()))
                    .ok_or_else(|| {
                        Failure::input(format_args!(
                            "{}: not a checkpoint public key (64 hex digits or 32 bytes)",
                            path.display()
                        ))
                    })?,
            }
        }
    };
    CheckpointVerifyingKey::from_bytes(&bytes)
        .map_err(|_| Failure::input("--checkpoint-key: not a valid Ed25519 public key"))
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// A 32-byte secret key file: 32 raw bytes, 64 hex digits or standard base64; on Unix only its
/// owner may read it (the same rule as for KEK files).
pub(crate) fn read_secret_key(path: &Path) -> Result<[u8; 32]> {
    use base64::Engine as _;
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| io_at(path, &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Failure::input(format_args!(
                "{p}: key file is readable or writable by group or others (chmod 600 {p})"
            )));
        }
    }
    if meta.len() > 1024 {
        return Err(Failure::input(format_args!("{p}: not an audit key file")));
    }
    let mut data = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| io_at(path, &e))?;
    if let Ok(raw) = <[u8; 32]>::try_from(data.as_slice()) {
        return Ok(raw);
    }
    let text = std::str::from_utf8(&data).map(str::trim).unwrap_or("");
    if let Some(k) = unhex32(text) {
        return Ok(k);
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default(),
    );
    <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| {
        Failure::input(format_args!(
            "{p}: not an audit key (32 bytes, 64 hex digits or base64 of 32 bytes)"
        ))
    })
}
