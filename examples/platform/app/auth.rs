//! Tenants and their API keys. Keys are bearer tokens; the server keeps only their
//! SHA-256 (a token has 192 random bits, so a fast hash is the right tool: there is
//! nothing to brute-force, unlike a password). A request's token is hashed and looked
//! up; a wrong token and a missing one are both 401.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A tenant name and the SHA-256 of its key.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// The tenant.
    pub name: String,
    hash: [u8; 32],
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is 1-64 ASCII letters, digits or bytes of `extra` (tenant and source
/// names).
pub fn is_name(name: &str, extra: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn check_name(name: &str) -> Result<(), String> {
    if is_name(name, b"-_") {
        Ok(())
    } else {
        Err(format!(
            "tenant name {name:?}: use 1-64 ASCII letters, digits, `-` or `_`"
        ))
    }
}

impl TenantKey {
    /// A tenant with its plain key (hashed here; the key is not kept).
    pub fn from_key(name: &str, key: &str) -> Result<Self, String> {
        check_name(name)?;
        if key.len() < 8 {
            return Err(format!(
                "tenant `{name}`: the key must be at least 8 characters"
            ));
        }
        Ok(TenantKey {
            name: name.to_owned(),
            hash: hash_key(key),
        })
    }

    /// A tenant with the hex SHA-256 of its key.
    pub fn from_hex(name: &str, hex: &str) -> Result<Self, String> {
        check_name(name)?;
        let bad = || format!("tenant `{name}`: key-sha256 must be 64 hex digits");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut hash = [0u8; 32];
        for (i, out) in hash.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(TenantKey {
            name: name.to_owned(),
            hash,
        })
    }
}

/// Parses `--tenant NAME=KEY` or `--tenant NAME=sha256:HEX`.
pub fn parse_tenant_flag(spec: &str) -> Result<TenantKey, String> {
    let (name, key) = spec
        .split_once('=')
        .ok_or_else(|| "--tenant: expected NAME=KEY or NAME=sha256:HEX".to_owned())?;
    match key.strip_prefix("sha256:") {
        Some(hex) => TenantKey::from_hex(name, hex),
        None => TenantKey::from_key(name, key),
    }
}

/// The SHA-256 of a key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The hex SHA-256 of a key (what a config file stores; `printf %s KEY | sha256sum`
/// gives the same).
#[cfg(test)]
pub fn hash_hex(key: &str) -> String {
    hash_key(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key: `wft_` and 48 hex digits (192 bits from the OS generator).
///
/// # Errors
///
/// The OS random source failed.
pub fn generate_key() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no OS randomness for a key: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("wft_{hex}"))
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that matches no tenant.
    Invalid,
}

impl AuthError {
    /// The message for the 401 body.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => {
                "missing API key: send `Authorization: Bearer <key>` (the server prints the demo tenant's key at start-up)"
            }
            AuthError::Invalid => "invalid API key",
        }
    }
}

/// The tenants by key hash.
#[derive(Debug, Default)]
pub struct Tenants {
    by_hash: HashMap<[u8; 32], Arc<str>>,
}

impl Tenants {
    /// The table of `keys`.
    pub fn new(keys: &[TenantKey]) -> Self {
        Tenants {
            by_hash: keys
                .iter()
                .map(|k| (k.hash, Arc::from(k.name.as_str())))
                .collect(),
        }
    }

    /// The tenant of an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Arc<str>, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or(AuthError::Missing)?;
        let token = std::str::from_utf8(token)
            .map_err(|_| AuthError::Invalid)?
            .trim();
        self.by_hash
            .get(&hash_key(token))
            .cloned()
            .ok_or(AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_their_tenant_only() {
        let k = generate_key().unwrap();
        assert!(k.starts_with("wft_") && k.len() == 52);
        let tenants = Tenants::new(&[
            TenantKey::from_key("acme", &k).unwrap(),
            TenantKey::from_hex("globex", &hash_hex("another-key")).unwrap(),
        ]);
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(
            &*tenants.authenticate(Some(bearer(&k).as_bytes())).unwrap(),
            "acme"
        );
        assert_eq!(
            &*tenants
                .authenticate(Some(bearer("another-key").as_bytes()))
                .unwrap(),
            "globex"
        );
        assert_eq!(
            tenants.authenticate(Some(b"Bearer nope")),
            Err(AuthError::Invalid)
        );
        assert_eq!(tenants.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            tenants.authenticate(Some(k.as_bytes())),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn bad_tenant_specs_are_refused() {
        assert!(parse_tenant_flag("acme").is_err());
        assert!(parse_tenant_flag("ac me=longenough").is_err());
        assert!(parse_tenant_flag("acme=short").is_err());
        assert!(parse_tenant_flag("acme=sha256:abc").is_err());
        let not_hex = format!("acme=sha256:+{}", &hash_hex("x")[1..]);
        assert!(parse_tenant_flag(&not_hex).is_err());
        assert!(parse_tenant_flag(&format!("acme=sha256:{}", "é".repeat(32))).is_err());
        assert!(parse_tenant_flag(&format!("acme=sha256:{}", hash_hex("x"))).is_ok());
    }
}
