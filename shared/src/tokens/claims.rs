//! What a token says: the claims of access and refresh tokens, why one is refused, and
//! an issued pair.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    Access,
    Refresh,
    /// A known-device credential (login's `device_token`): never accepted as either of
    /// the others.
    Device,
}

/// How the session's user proved who they are (RFC 8176's `amr` values), carried by both
/// tokens of every pair so that a refresh keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amr {
    /// A password alone.
    Password,
    /// A password and a second factor (a TOTP code, or a recovery code: a one-time
    /// password too).
    MultiFactor,
}

impl Amr {
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Amr::Password => &["pwd"],
            Amr::MultiFactor => &["pwd", "otp", "mfa"],
        }
    }

    pub fn claim(self) -> Vec<String> {
        self.values().iter().map(|v| v.to_string()).collect()
    }

    /// What a token's `amr` says; a token without one (signed before `amr` existed) was a
    /// password's.
    pub fn of(values: &[String]) -> Amr {
        if values.iter().any(|v| v == "mfa") { Amr::MultiFactor } else { Amr::Password }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub username: String,
    pub roles: Vec<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub sid: String,
    pub token_use: TokenUse,
    /// See [`Amr`].
    #[serde(default)]
    pub amr: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    pub sid: String,
    pub token_use: TokenUse,
    /// The session's [`Amr`]: the next pair of a refresh carries it on.
    #[serde(default)]
    pub amr: Vec<String>,
}

/// Why a token was refused. Callers map all of these to one client-facing error; the
/// kinds exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has the wrong token_use")]
    WrongTokenUse,
    #[error("token invalid")]
    Invalid,
}

/// A freshly issued access + refresh pair and the claims inside them.
#[derive(Debug, Clone)]
pub struct IssuedPair {
    pub access_token: String,
    pub access: AccessClaims,
    pub refresh_token: String,
    pub refresh: RefreshClaims,
}

/// A known-device credential: this device signed in as this user before. It grants
/// nothing by itself; it only lets that user's logins from this device past the
/// failed-login throttle's name-wide ceiling.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeviceClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    pub username: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// The device's id: the same across the renewals of its credential.
    pub jti: String,
    pub token_use: TokenUse,
}

/// What tells one pair from another of the same subject and session: its ids and times
/// (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairIds {
    pub access_jti: String,
    pub refresh_jti: String,
    pub iat: u64,
    pub access_exp: u64,
    pub refresh_exp: u64,
}

impl IssuedPair {
    pub fn ids(&self) -> PairIds {
        PairIds {
            access_jti: self.access.jti.clone(),
            refresh_jti: self.refresh.jti.clone(),
            iat: self.access.iat,
            access_exp: self.access.exp,
            refresh_exp: self.refresh.exp,
        }
    }
}

/// Who a token is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub username: &'a str,
    pub roles: &'a [String],
}
