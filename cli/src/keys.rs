//! `keygen` and `key …`: keyring files under a key-encryption key.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use fieldseal::{
    EnvKek, Error, FileKek, KeyError, KeyProvider, KeyState, KeyVersion, Keyring, ProviderError,
    ProviderErrorKind, RootKey,
};
use serde::Serialize;

use crate::fail::{Failure, Result, io_at};
use crate::out::json_line;

/// Where the key-encryption key (KEK) comes from.
#[derive(Debug, Args)]
#[group(id = "kek_source", required = false, multiple = false)]
pub(crate) struct KekArgs {
    /// Key-encryption key file: 32 random bytes, mode 0600
    #[arg(long, value_name = "FILE")]
    pub(crate) kek: Option<PathBuf>,
    /// Environment variable holding the key-encryption key (standard base64 of 32 bytes)
    #[arg(long, value_name = "VAR")]
    pub(crate) kek_env: Option<String>,
}

impl KekArgs {
    /// Opens the KEK named on the command line.
    pub(crate) fn open(&self) -> Result<Box<dyn KeyProvider>> {
        match (&self.kek, &self.kek_env) {
            (Some(path), _) => Ok(Box::new(
                FileKek::open(path).map_err(|e| kek_file_error(path, &e))?,
            )),
            (None, Some(var)) => Ok(Box::new(
                EnvKek::from_var(var).map_err(|e| kek_env_error(var, &e))?,
            )),
            (None, None) => Err(Failure::input(
                "no key-encryption key: pass --kek FILE or --kek-env VAR",
            )),
        }
    }

    /// How the KEK was named, for messages.
    fn name(&self) -> String {
        match (&self.kek, &self.kek_env) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(var)) => format!("${var}"),
            (None, None) => "no KEK".to_owned(),
        }
    }
}

fn kek_file_error(path: &Path, e: &ProviderError) -> Failure {
    let p = path.display();
    match e.kind() {
        ProviderErrorKind::NotFound => Failure::input(format_args!("{p}: KEK file not found")),
        ProviderErrorKind::Permissions => Failure::input(format_args!(
            "{p}: KEK file is readable or writable by group or others (chmod 600 {p})"
        )),
        ProviderErrorKind::BadKeyMaterial => Failure::input(format_args!(
            "{p}: not a KEK file (must hold exactly 32 bytes)"
        )),
        _ => Failure::input(format_args!("{p}: {e}")),
    }
}

fn kek_env_error(var: &str, e: &ProviderError) -> Failure {
    match e.kind() {
        ProviderErrorKind::NotFound => {
            Failure::input(format_args!("environment variable {var} is not set"))
        }
        ProviderErrorKind::BadKeyMaterial => Failure::input(format_args!(
            "environment variable {var}: not a KEK (must be standard base64 of 32 bytes)"
        )),
        _ => Failure::input(format_args!("environment variable {var}: {e}")),
    }
}

/// Loads the keyring file at `path` under the KEK of `kek`.
pub(crate) fn load(path: &Path, kek: &KekArgs) -> Result<Keyring> {
    let provider = kek.open()?;
    Keyring::load(&*provider, path).map_err(|e| keyring_error(path, &kek.name(), &e))
}

/// `path: what` for an error loading or changing a keyring file.
fn keyring_error(path: &Path, kek: &str, e: &Error) -> Failure {
    let p = path.display();
    match e {
        Error::Io(io) => io_at(path, io),
        Error::Provider(pe) if pe.kind() == ProviderErrorKind::WrongProvider => {
            Failure::input(format_args!(
                "{p}: the keyring was written under another key-encryption key than {kek}"
            ))
        }
        Error::Provider(pe) if pe.kind() == ProviderErrorKind::Unwrap => {
            Failure::input(format_args!(
                "{p}: the file key does not unwrap under {kek} (wrong KEK, or the file was edited)"
            ))
        }
        Error::Key(KeyError::FileMalformed) => Failure::input(format_args!(
            "{p}: not a fieldseal keyring file (malformed)"
        )),
        Error::Key(KeyError::FileIntegrity) => Failure::input(format_args!(
            "{p}: keyring integrity check failed (the file was edited or damaged)"
        )),
        _ => Failure::input(format_args!("{p}: {e}")),
    }
}

/// `keygen`: a new keyring file (and, if missing, a new KEK file).
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Keyring file to create (refuses to overwrite)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Key-encryption key file; created (32 random bytes, mode 0600) if it does not exist
    #[arg(long, value_name = "FILE", required_unless_present = "kek_env")]
    kek: Option<PathBuf>,
    /// Environment variable holding the key-encryption key (standard base64 of 32 bytes)
    #[arg(long, value_name = "VAR", conflicts_with = "kek")]
    kek_env: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct KeygenReport {
    keyring: String,
    kek_created: Option<String>,
    provider: String,
    active_version: u32,
    checkpoint_public_key: String,
}

pub(crate) fn keygen(a: &KeygenArgs) -> Result<()> {
    if a.out.exists() {
        return Err(Failure::input(format_args!(
            "{}: already exists (keygen never overwrites a keyring)",
            a.out.display()
        )));
    }
    let mut created = None;
    let provider: Box<dyn KeyProvider> = match (&a.kek, &a.kek_env) {
        (Some(path), _) if !path.exists() => {
            let kek = FileKek::create(path).map_err(|e| kek_file_error(path, &e))?;
            created = Some(path.clone());
            Box::new(kek)
        }
        (Some(path), _) => Box::new(FileKek::open(path).map_err(|e| kek_file_error(path, &e))?),
        (None, Some(var)) => Box::new(EnvKek::from_var(var).map_err(|e| kek_env_error(var, &e))?),
        (None, None) => return Err(Failure::input("pass --kek FILE or --kek-env VAR")),
    };
    let ring = match Keyring::create(&*provider, &a.out) {
        Ok(r) => r,
        Err(e) => {
            // A KEK made for this keyring alone is useless without it.
            if let Some(path) = &created {
                let _ = std::fs::remove_file(path);
            }
            let kek = KekArgs {
                kek: a.kek.clone(),
                kek_env: a.kek_env.clone(),
            };
            return Err(keyring_error(&a.out, &kek.name(), &e));
        }
    };
    let public = checkpoint_public(&ring)?;
    let report = KeygenReport {
        keyring: a.out.display().to_string(),
        kek_created: created.as_ref().map(|p| p.display().to_string()),
        provider: provider.id(),
        active_version: ring.active_version().get(),
        checkpoint_public_key: public,
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        return json_line(&mut out, &report);
    }
    if let Some(kek) = &report.kek_created {
        writeln!(
            out,
            "created KEK file {kek} (mode 0600): back it up, apart from the keyring"
        )?;
    }
    writeln!(
        out,
        "created keyring {} under {}: version {} active",
        report.keyring, report.provider, report.active_version
    )?;
    writeln!(
        out,
        "checkpoint public key {} (give it to whoever verifies the audit log)",
        report.checkpoint_public_key
    )?;
    Ok(())
}

/// The keyring's checkpoint public key in hex.
pub(crate) fn checkpoint_public(ring: &Keyring) -> Result<String> {
    let (_, signer) = ring
        .audit_keys()
        .map_err(|e| Failure::input(format_args!("keyring: {e}")))?;
    Ok(hex(&signer.verifying_key().to_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key …`: versions of a keyring file.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

/// The keyring file and its KEK.
#[derive(Debug, Args)]
pub(crate) struct RingArgs {
    /// Keyring file
    #[arg(long, value_name = "FILE")]
    pub(crate) keyring: PathBuf,
    #[command(flatten)]
    pub(crate) kek: KekArgs,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// List the key versions and their states
    List {
        #[command(flatten)]
        ring: RingArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Add a fresh root key as the next version, decrypt-only (activate it once every instance
    /// has it)
    Add {
        #[command(flatten)]
        ring: RingArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Make a version the one new values are sealed under
    Activate {
        /// The version to activate
        #[arg(id = "key_version", value_name = "VERSION")]
        version: u32,
        #[command(flatten)]
        ring: RingArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Retire a version: values sealed under it no longer open (irreversible)
    Retire {
        /// The version to retire
        #[arg(id = "key_version", value_name = "VERSION")]
        version: u32,
        /// Confirm that values still sealed under this version become unreadable
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        ring: RingArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Add a fresh root key and activate it (add + activate)
    Rotate {
        #[command(flatten)]
        ring: RingArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Print the checkpoint public key (hex) that audit log verifiers need
    CheckpointPublic {
        #[command(flatten)]
        ring: RingArgs,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct VersionRow {
    version: u32,
    state: &'static str,
}

#[derive(Serialize)]
struct ListReport {
    keyring: String,
    active: u32,
    minimum: u32,
    versions: Vec<VersionRow>,
}

#[derive(Serialize)]
struct ChangeReport {
    keyring: String,
    changed: u32,
    state: &'static str,
    active: u32,
}

fn version(v: u32) -> Result<KeyVersion> {
    KeyVersion::new(v)
        .ok_or_else(|| Failure::input("key version 0 does not exist (versions start at 1)"))
}

pub(crate) fn run(a: &KeyArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match &a.command {
        KeyCommand::List { ring, json } => {
            let kr = load(&ring.keyring, &ring.kek)?;
            let report = ListReport {
                keyring: ring.keyring.display().to_string(),
                active: kr.active_version().get(),
                minimum: kr.minimum_version().get(),
                versions: kr
                    .versions()
                    .into_iter()
                    .map(|(v, s)| VersionRow {
                        version: v.get(),
                        state: s.label(),
                    })
                    .collect(),
            };
            if *json {
                return json_line(&mut out, &report);
            }
            writeln!(out, "{}", report.keyring)?;
            writeln!(out, "{:>8}  state", "version")?;
            for row in &report.versions {
                writeln!(out, "{:>8}  {}", row.version, row.state)?;
            }
            Ok(())
        }
        KeyCommand::Add { ring, json } => {
            let kr = load(&ring.keyring, &ring.kek)?;
            let next = next_version(&kr)?;
            let key = RootKey::generate().map_err(|e| Failure::input(format_args!("{e}")))?;
            kr.add_key(next, key)
                .map_err(|e| keyring_error(&ring.keyring, &ring.kek.name(), &e))?;
            changed(&mut out, ring, &kr, next, *json, "added")
        }
        KeyCommand::Activate {
            version: v,
            ring,
            json,
        } => {
            let v = version(*v)?;
            let kr = load(&ring.keyring, &ring.kek)?;
            kr.activate(v)
                .map_err(|e| change_error(&ring.keyring, v, &e))?;
            changed(&mut out, ring, &kr, v, *json, "activated")
        }
        KeyCommand::Retire {
            version: v,
            yes,
            ring,
            json,
        } => {
            let v = version(*v)?;
            if !yes {
                return Err(Failure::input(format_args!(
                    "retiring version {v} makes every value still sealed under it unreadable; \
                     rewrap them first, then pass --yes"
                )));
            }
            let kr = load(&ring.keyring, &ring.kek)?;
            kr.retire(v)
                .map_err(|e| change_error(&ring.keyring, v, &e))?;
            changed(&mut out, ring, &kr, v, *json, "retired")
        }
        KeyCommand::Rotate { ring, json } => {
            let kr = load(&ring.keyring, &ring.kek)?;
            let v = kr
                .rotate()
                .map_err(|e| keyring_error(&ring.keyring, &ring.kek.name(), &e))?;
            changed(&mut out, ring, &kr, v, *json, "rotated to")
        }
        KeyCommand::CheckpointPublic { ring, json } => {
            let kr = load(&ring.keyring, &ring.kek)?;
            let public = checkpoint_public(&kr)?;
            if *json {
                return json_line(
                    &mut out,
                    &serde_json::json!({ "checkpoint_public_key": public }),
                );
            }
            writeln!(out, "{public}")?;
            Ok(())
        }
    }
}

/// One past the highest version ever added (retired ones included: a version is never reused).
fn next_version(kr: &Keyring) -> Result<KeyVersion> {
    let last = kr.versions().last().map_or(0, |(v, _)| v.get());
    last.checked_add(1)
        .and_then(KeyVersion::new)
        .ok_or_else(|| Failure::input("no key version left"))
}

fn change_error(path: &Path, v: KeyVersion, e: &Error) -> Failure {
    let p = path.display();
    match e {
        Error::Key(KeyError::UnknownVersion(_)) => {
            Failure::input(format_args!("{p}: no key version {v}"))
        }
        Error::Key(KeyError::Retired { .. }) => Failure::input(format_args!(
            "{p}: version {v} is retired and cannot be activated"
        )),
        Error::Key(KeyError::RetireActive) => Failure::input(format_args!(
            "{p}: version {v} is active; activate or rotate to another version first"
        )),
        _ => keyring_error(path, "the KEK given", e),
    }
}

fn changed(
    out: &mut impl Write,
    ring: &RingArgs,
    kr: &Keyring,
    v: KeyVersion,
    json: bool,
    verb: &str,
) -> Result<()> {
    let state = kr
        .versions()
        .into_iter()
        .find(|(w, _)| *w == v)
        .map_or(KeyState::Retired, |(_, s)| s);
    let report = ChangeReport {
        keyring: ring.keyring.display().to_string(),
        changed: v.get(),
        state: state.label(),
        active: kr.active_version().get(),
    };
    if json {
        return json_line(out, &report);
    }
    writeln!(
        out,
        "{}: {verb} version {} (now {}); active version {}",
        report.keyring, report.changed, report.state, report.active
    )?;
    Ok(())
}
