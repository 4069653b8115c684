//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1, 6 digits, 30 s
//! steps, what every authenticator app reads from an `otpauth://` URI. A code is accepted in
//! its step and one step either side (clocks drift, people type slowly), and a step that
//! was accepted once never is again (the caller stores the last one).

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

pub const DIGITS: usize = 6;
pub const STEP_SECONDS: u64 = 30;
/// 160 bits, RFC 4226's recommendation (and SHA-1's block of key it uses whole).
pub const SECRET_BYTES: usize = 20;

/// A new random secret.
pub fn new_secret() -> Option<[u8; SECRET_BYTES]> {
    let mut secret = [0u8; SECRET_BYTES];
    SystemRandom::new().fill(&mut secret).ok()?;
    Some(secret)
}

/// The step `unix_seconds` falls in.
pub fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

/// HOTP (RFC 4226, section 5.3) of `counter`, as the 6 digits an app shows.
pub fn code_at(secret: &[u8], counter: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([mac[offset] & 0x7f, mac[offset + 1], mac[offset + 2], mac[offset + 3]]);
    format!("{:0width$}", binary % 10u32.pow(DIGITS as u32), width = DIGITS)
}

/// The step `code` belongs to, if it is the code of the step of `unix_seconds` or of one
/// step either side, and that step is later than `last_used` (a code works once).
/// Compares in constant time; a code that is not 6 digits matches nothing.
pub fn accepted_step(secret: &[u8], code: &str, unix_seconds: u64, last_used: Option<u64>) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    let mut found = None;
    // Every candidate is computed and compared, whichever matches.
    for step in [now.saturating_sub(1), now, now + 1] {
        let same: bool = code_at(secret, step).as_bytes().ct_eq(code.as_bytes()).into();
        if same && last_used.is_none_or(|last| step > last) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32, upper case, no padding: how `otpauth://` URIs carry the secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn uri_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The key URI authenticator apps read (Google Authenticator's `otpauth://` format):
/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        uri_escape(issuer),
        uri_escape(account),
        base32(secret),
        uri_escape(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, Appendix B: the SHA-1 rows (8 digits there; an app shows the last 6, the
    /// same value modulo 10^6).
    #[test]
    fn the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(secret, step_at(time)), eight[2..], "T = {time}");
        }
    }

    /// RFC 4226, Appendix D: HOTP values of the same secret for counters 0 to 9.
    #[test]
    fn the_rfc_4226_test_vectors() {
        let secret = b"12345678901234567890";
        let want = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, code) in want.iter().enumerate() {
            assert_eq!(code_at(secret, counter as u64), *code, "counter {counter}");
        }
    }

    #[test]
    fn a_code_works_in_its_step_and_one_either_side_and_once() {
        let secret = new_secret().unwrap();
        let now = 1_800_000_015;
        let step = step_at(now);
        for (code_step, accepted) in
            [(step - 2, false), (step - 1, true), (step, true), (step + 1, true), (step + 2, false)]
        {
            let code = code_at(&secret, code_step);
            assert_eq!(accepted_step(&secret, &code, now, None), accepted.then_some(code_step), "step {code_step}");
        }
        // Used: that step and earlier ones are refused; a later one still works.
        let code = code_at(&secret, step);
        assert_eq!(accepted_step(&secret, &code, now, Some(step)), None);
        assert_eq!(accepted_step(&secret, &code_at(&secret, step + 1), now, Some(step)), Some(step + 1));
        for bad in ["", "12345", "1234567", "12345a", " 123456"] {
            assert_eq!(accepted_step(&secret, bad, now, None), None, "{bad:?}");
        }
    }

    /// RFC 4648, section 10.
    #[test]
    fn base32_as_rfc_4648_without_padding() {
        for (input, want) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), want);
        }
    }

    #[test]
    fn the_key_uri_names_issuer_and_account_escaped() {
        let uri = otpauth_uri("JWT Auth", "alice", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/JWT%20Auth:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=JWT%20Auth&algorithm=SHA1&digits=6&period=30"
        );
    }
}
