//! Signed, opaque link tokens for the unsubscribe and survey links.
//!
//! A token is a 16-byte block followed by a truncated HMAC-SHA256 of it, base64url without
//! padding. The block is the enrollment id, encrypted (AES-128 under a key derived from
//! the secret): the store needs no random id, and its index, per enrollment, and a
//! recipient learns nothing from the token about how many others there are. The store
//! never issues an id twice (AUTOINCREMENT), so a token names one enrollment forever.
//! Databases from before kept a random id per enrollment instead; links carrying those were sent
//! and still work ([`Target::Legacy`]). Tokens never expire (an unsubscribe link must work
//! years later), and a key is never retired: a [`Secret`] is the current key, which signs
//! new tokens, plus every older key, which still verifies the tokens it signed. Key 1 (the
//! database's first) issues tokens as they always were; a later key N puts N in decimal
//! before them, so a token names its key. A token without a key id may come from any
//! key the database held before key ids existed, and is tried against each. This module
//! owns the format and the secret's derivation; it knows nothing of the store, HTTP or the
//! clock, and `verify` never panics whatever it is given.
//!
//! Return references ([`issue_return`], [`verify_return`]) name an outbox row the same
//! way for the envelope sender of a message, in lower-case base32 with a shorter tag,
//! so that they fit an address's local part and survive a server changing its case.

use std::fmt;

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The block a token carries.
type Block = [u8; 16];

/// What a valid token points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An enrollment, by id: every token issued now.
    Enrollment(i64),
    /// An enrollment's random id, as tokens carried before ids were encrypted into them.
    Legacy([u8; 16]),
}

/// The first half of a block before encryption: after decryption, it tells an encrypted
/// id from a legacy random one (which matches it by chance once in 2^64).
const SEALED: &[u8; 8] = b"winback1";

/// Bytes of the HMAC kept in a token: 128 bits, beyond any online guessing.
const TAG_LEN: usize = 16;
const RAW_LEN: usize = 16 + TAG_LEN;
/// Characters of a token: 32 bytes in base64 without padding.
const TOKEN_LEN: usize = (RAW_LEN * 4).div_ceil(3);
/// The most digits a key id before a token may have (`u32::MAX` has 10).
const MAX_KEY_ID_DIGITS: usize = 10;

/// What a token may be used for; a token of one purpose never verifies as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Survey,
    /// A return reference ([`issue_return`]): the envelope sender that names a message.
    Return,
}

impl Purpose {
    /// Domain separation for the HMAC input; all tags have the same length.
    fn tag(self) -> &'static [u8; 16] {
        match self {
            Purpose::Unsubscribe => b"winback:unsub:v1",
            Purpose::Survey => b"winback:survey:1",
            Purpose::Return => b"winback:return:1",
        }
    }
}

/// The key tokens are signed with (with its id), and the older keys that still verify
/// theirs. Its `Debug` output never shows a key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: [u8; 32],
    id: u32,
    older: Vec<(u32, [u8; 32])>,
}

impl Secret {
    /// The key for a passphrase such as `WINBACK_SECRET`: the SHA-256 of its text, as
    /// given (no trimming), so any length works and equal texts give equal keys.
    pub fn from_text(text: &str) -> Secret {
        Secret::from_bytes(Sha256::digest(text.as_bytes()).into())
    }

    /// One key, as key 1.
    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret {
            key: bytes,
            id: 1,
            older: Vec::new(),
        }
    }

    /// Every key a database holds, by id: the highest signs, all verify. `None` if empty.
    pub fn ring(keys: &[(u32, [u8; 32])]) -> Option<Secret> {
        let &(id, key) = keys.iter().max_by_key(|(id, _)| *id)?;
        let older = keys
            .iter()
            .filter(|(other, _)| *other != id)
            .copied()
            .collect();
        Some(Secret { key, id, older })
    }

    /// A new random key from the operating system's CSPRNG (via rand's thread RNG).
    pub fn generate() -> Secret {
        Secret::from_bytes(rand::random())
    }

    /// The current key, for the store to keep.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key
    }

    /// The current key's id: the one new tokens carry.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The key with this id, alone.
    fn key(&self, id: u32) -> Option<Secret> {
        if id == self.id {
            return Some(Secret::from_bytes(self.key));
        }
        self.older
            .iter()
            .find(|(other, _)| *other == id)
            .map(|(_, key)| Secret::from_bytes(*key))
    }

    /// Each key alone, the current one first.
    fn keys(&self) -> impl Iterator<Item = Secret> + '_ {
        std::iter::once(self.key)
            .chain(self.older.iter().map(|(_, key)| *key))
            .map(Secret::from_bytes)
    }

    fn mac(&self, purpose: Purpose, id: &Block) -> HmacSha256 {
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(purpose.tag());
        mac.update(id);
        mac
    }
}

impl Secret {
    /// The block cipher that seals enrollment ids: its own key, derived from the secret.
    fn cipher(&self) -> Aes128 {
        self.cipher_for(b"winback:link-id:v1")
    }

    /// A block cipher under a key derived from the secret for one use (`label`).
    fn cipher_for(&self, label: &[u8]) -> Aes128 {
        let mut derive = Sha256::new();
        derive.update(label);
        derive.update(self.key);
        let key = derive.finalize();
        Aes128::new_from_slice(&key[..16]).expect("AES-128 takes a 16-byte key")
    }

    fn seal(&self, enrollment_id: i64) -> Block {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(SEALED);
        block[8..].copy_from_slice(&enrollment_id.to_be_bytes());
        self.cipher().encrypt_block((&mut block).into());
        block
    }

    fn open(&self, block: Block) -> Target {
        let mut plain = block;
        self.cipher().decrypt_block((&mut plain).into());
        match (plain[..8] == *SEALED, <[u8; 8]>::try_from(&plain[8..])) {
            (true, Ok(id)) => Target::Enrollment(i64::from_be_bytes(id)),
            _ => Target::Legacy(block),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The token for `target` and `purpose`, signed by the current key: 43 URL-safe
/// characters, after the key id unless it is key 1. A legacy target gets the token it
/// always had (under the current key), so a page reached through an old link links on
/// in kind.
pub fn issue(secret: &Secret, purpose: Purpose, target: Target) -> String {
    let token = match target {
        Target::Enrollment(id) => issue_block(secret, purpose, &secret.seal(id)),
        Target::Legacy(block) => issue_block(secret, purpose, &block),
    };
    match secret.id {
        1 => token,
        id => format!("{id}{token}"),
    }
}

fn issue_block(secret: &Secret, purpose: Purpose, block: &Block) -> String {
    let tag = secret.mac(purpose, block).finalize().into_bytes();
    let mut raw = [0u8; RAW_LEN];
    raw[..16].copy_from_slice(block);
    raw[16..].copy_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// What `token` points at if it was issued with one of `secret`'s keys for `purpose`;
/// `None` for anything malformed, altered, truncated, issued for the other purpose or by
/// a key not held. The tag is compared in constant time.
pub fn verify(secret: &Secret, purpose: Purpose, token: &str) -> Option<Target> {
    if token.len() < TOKEN_LEN || token.len() > TOKEN_LEN + MAX_KEY_ID_DIGITS {
        return None;
    }
    let split = token.len() - TOKEN_LEN;
    let (prefix, body) = (token.get(..split)?, token.get(split..)?);
    if prefix.is_empty() {
        return secret
            .keys()
            .find_map(|key| verify_one(&key, purpose, body));
    }
    // Canonical ids only (no leading zero, never 1), so a token has one spelling.
    if prefix.starts_with('0') || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u32 = prefix.parse().ok().filter(|id| *id > 1)?;
    verify_one(&secret.key(id)?, purpose, body)
}

/// [`verify`] for a token without a key id, against one key.
fn verify_one(secret: &Secret, purpose: Purpose, token: &str) -> Option<Target> {
    // Checked first so that huge inputs cost nothing. Base64 decoding is strict: a
    // non-canonical last character (unused low bits set) is refused, so no two strings
    // decode to the same token.
    if token.len() != TOKEN_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    let written = URL_SAFE_NO_PAD
        .decode_slice(token.as_bytes(), &mut raw)
        .ok()?;
    if written != RAW_LEN {
        return None;
    }
    let block: Block = raw[..16].try_into().ok()?;
    secret
        .mac(purpose, &block)
        .verify_truncated_left(&raw[16..])
        .ok()?;
    Some(secret.open(block))
}

/// Bytes of the HMAC kept in a return reference: 64 bits. A forged block must also
/// decrypt to [`SEALED`] (another 64 bits), and a guess costs the forger an email.
const RETURN_TAG_LEN: usize = 8;
const RETURN_RAW_LEN: usize = 16 + RETURN_TAG_LEN;
/// Characters of a return reference without a key id: 24 bytes in base32.
pub const RETURN_REF_LEN: usize = (RETURN_RAW_LEN * 8).div_ceil(5);
/// Characters of a return reference whose key id has up to three digits: what an
/// address must leave room for.
pub const RETURN_REF_MAX_LEN: usize = RETURN_REF_LEN + 3;
/// RFC 4648's base32 alphabet in lower case: mail servers may change the case of an
/// address's local part, and these letters and digits survive that.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

impl Secret {
    /// The cipher that seals outbox rows: not the links' one, so that a row and an
    /// enrollment with the same number never share a block.
    fn return_cipher(&self) -> Aes128 {
        self.cipher_for(b"winback:return-id:v1")
    }
}

/// The return reference for outbox row `row`, signed by the current key: 39 lower-case
/// letters and digits, after the key id unless it is key 1. It names the message to
/// whoever holds the key and to nobody else: the row is encrypted, not written.
pub fn issue_return(secret: &Secret, row: i64) -> String {
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(SEALED);
    block[8..].copy_from_slice(&row.to_be_bytes());
    secret.return_cipher().encrypt_block((&mut block).into());
    let tag = secret.mac(Purpose::Return, &block).finalize().into_bytes();
    let mut raw = [0u8; RETURN_RAW_LEN];
    raw[..16].copy_from_slice(&block);
    raw[16..].copy_from_slice(&tag[..RETURN_TAG_LEN]);
    let reference = base32(&raw);
    match secret.id {
        1 => reference,
        id => format!("{id}{reference}"),
    }
}

/// The outbox row `reference` names, in any case, if one of `secret`'s keys issued it
/// with [`issue_return`]; `None` for anything else: malformed, altered, a link token,
/// a key not held. Never panics.
pub fn verify_return(secret: &Secret, reference: &str) -> Option<i64> {
    if reference.len() < RETURN_REF_LEN || reference.len() > RETURN_REF_LEN + MAX_KEY_ID_DIGITS {
        return None;
    }
    let reference = reference.to_ascii_lowercase();
    let split = reference.len() - RETURN_REF_LEN;
    let (prefix, body) = (reference.get(..split)?, reference.get(split..)?);
    let raw: [u8; RETURN_RAW_LEN] = from_base32(body)?.try_into().ok()?;
    if prefix.is_empty() {
        return secret.keys().find_map(|key| verify_return_one(&key, &raw));
    }
    if prefix.starts_with('0') || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u32 = prefix.parse().ok().filter(|id| *id > 1)?;
    verify_return_one(&secret.key(id)?, &raw)
}

fn verify_return_one(secret: &Secret, raw: &[u8; RETURN_RAW_LEN]) -> Option<i64> {
    let block: Block = raw[..16].try_into().ok()?;
    secret
        .mac(Purpose::Return, &block)
        .verify_truncated_left(&raw[16..])
        .ok()?;
    let mut plain = block;
    secret.return_cipher().decrypt_block((&mut plain).into());
    if plain[..8] != *SEALED {
        return None;
    }
    Some(i64::from_be_bytes(plain[8..].try_into().ok()?))
}

/// Lower-case base32 without padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        // Fewer than 5 bits wait from before: 13 bits hold them and the new byte.
        buffer = ((buffer << 8) | u32::from(byte)) & 0x1fff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// [`base32`] read back; `None` for a character outside the alphabet or unused low bits
/// set in the last one, so that no two texts decode to the same bytes.
fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = BASE32.iter().position(|&a| a == c)? as u32;
        buffer = ((buffer << 5) | value) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    (buffer & ((1 << bits) - 1) == 0).then_some(out)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests;
