//! Key files and signing.
//!
//! A key file is two text lines: a tag that says what it is and whether
//! it is a development key, then the key in hex:
//!
//! ```text
//! blink-ed25519-secret v1 development
//! 3f0c...(64 hex digits: the 32-byte ed25519 seed)
//! ```
//!
//! and the same with `blink-ed25519-public` for the public half (what a
//! hypervisor build embeds). Text, so a key can be checked by eye and
//! kept in a password manager; the secret file is created mode 0600 and
//! never overwritten without `--force`. Hex by hand: two small functions
//! do not warrant a dependency.
use crate::exit::{Result, Tag};
use anyhow::{anyhow, bail, Context};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use vmm::image_slot;
use vmm::maint::signed::{self, Meta, TrustedKey};

const SECRET_TAG: &str = "blink-ed25519-secret v1";
const PUBLIC_TAG: &str = "blink-ed25519-public v1";

#[derive(Clone)]
pub struct SecretKey {
    pub seed: [u8; 32],
    pub development: bool,
}

fn kind(development: bool) -> &'static str {
    if development {
        "development"
    } else {
        "production"
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> anyhow::Result<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("expected 64 hex digits");
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

/// Reads a key file: (tag line's kind, key bytes).
fn read_key_file(path: &Path, tag: &str) -> anyhow::Result<([u8; 32], bool)> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    let development = match head.strip_prefix(tag).map(str::trim) {
        Some("development") => true,
        Some("production") => false,
        _ => bail!("{} is not a '{tag}' key file", path.display()),
    };
    let key = unhex32(lines.next().unwrap_or(""))
        .with_context(|| format!("{}: bad key line", path.display()))?;
    Ok((key, development))
}

pub fn read_secret(path: &Path) -> Result<SecretKey> {
    let (seed, development) = read_key_file(path, SECRET_TAG).local()?;
    Ok(SecretKey { seed, development })
}

pub fn read_public(path: &Path) -> Result<TrustedKey> {
    let (public, development) = read_key_file(path, PUBLIC_TAG).local()?;
    Ok(TrustedKey {
        public,
        development,
    })
}

fn write_new(path: &Path, text: &str, mode: u32, force: bool) -> anyhow::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).mode(mode);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o.open(path).with_context(|| {
        format!(
            "cannot create {} (exists? --force replaces it)",
            path.display()
        )
    })?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Makes a key pair: `<base>.secret` and `<base>.pub`.
pub fn keygen(base: &Path, development: bool, force: bool) -> Result<(PathBuf, PathBuf)> {
    let seed = *ed25519_compact::Seed::generate();
    let public = signed::public_key(&seed);
    let secret_path = base.with_extension("secret");
    let public_path = base.with_extension("pub");
    if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {}", dir.display()))
            .local()?;
    }
    let k = kind(development);
    write_new(
        &secret_path,
        &format!("{SECRET_TAG} {k}\n{}\n", hex(&seed)),
        0o600,
        force,
    )
    .local()?;
    write_new(
        &public_path,
        &format!("{PUBLIC_TAG} {k}\n{}\n", hex(&public)),
        0o644,
        force,
    )
    .local()?;
    Ok((secret_path, public_path))
}

/// A signed slot for `image` (a raw arm64 `Image`): image_slot's header
/// page (labelled `label`, for the first board) with the signature block.
pub fn sign_image(image: &[u8], label: &str, meta: &Meta, key: &SecretKey) -> Result<Vec<u8>> {
    if meta.development != key.development {
        return Err(anyhow!(
            "internal: metadata and key disagree about development"
        ))
        .local();
    }
    let board = meta.boards.first().map(String::as_str).unwrap_or("");
    let mut slot = image_slot::package(label, board, image);
    signed::sign(&mut slot, meta, &key.seed)
        .map_err(|e| anyhow!("{e}"))
        .local()?;
    Ok(slot)
}

/// "0.2.0" -> Version.
pub fn parse_version(s: &str) -> anyhow::Result<signed::Version> {
    let parts: Vec<&str> = s.split('.').collect();
    let [major, minor, patch] = parts[..] else {
        bail!("version '{s}' is not MAJOR.MINOR.PATCH");
    };
    let n = |p: &str| {
        p.parse::<u16>()
            .with_context(|| format!("version '{s}': '{p}' is not a number up to 65535"))
    };
    Ok(signed::Version {
        major: n(major)?,
        minor: n(minor)?,
        patch: n(patch)?,
    })
}
