//! The pieces of a second factor (CONTRACT.md Part 3, "Multi-factor authentication"):
//! TOTP codes (RFC 6238), the secret sealed at rest (AES-256-GCM under a key the table's
//! readers do not hold), and recovery codes (stored only hashed).

pub mod recovery;
pub mod sealed;
pub mod totp;
