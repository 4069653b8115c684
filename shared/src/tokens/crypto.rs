//! jsonwebtoken's crypto on `ring`, the library the AWS SDK's TLS (rustls) already links.
//!
//! jsonwebtoken's built-in providers link a whole second crypto library (aws-lc or the
//! RustCrypto RSA/ECDSA/Ed25519 crates) with every algorithm in it. The service only needs
//! what `TokenService` can be configured with: HS256/384/512 and Ed25519. Any other
//! algorithm is refused, as `Algorithm` pinning already refuses it before a key is used.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use ring::hmac;
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    // JWK helpers: the service neither reads nor publishes JWKs.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes this provider the process default; idempotent.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Only fails if another provider was installed first, which nothing here does.
        let _ = PROVIDER.install_default();
    });
}

fn hmac_algorithm(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if let Some(h) = hmac_algorithm(*algorithm) {
        if key.family() != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        return Ok(Box::new(HmacKey { algorithm: *algorithm, key: hmac::Key::new(h, key.as_bytes()) }));
    }
    match algorithm {
        Algorithm::EdDSA if key.family() == AlgorithmFamily::Ed => {
            // PKCS#8 v1 (private key only) and v2 (with the public key) are both accepted.
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ok(Box::new(Ed25519Signer(pair)))
        }
        Algorithm::EdDSA => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if let Some(h) = hmac_algorithm(*algorithm) {
        if key.family() != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        return Ok(Box::new(HmacKey { algorithm: *algorithm, key: hmac::Key::new(h, key.try_get_as_bytes()?) }));
    }
    match algorithm {
        Algorithm::EdDSA if key.family() == AlgorithmFamily::Ed => {
            Ok(Box::new(Ed25519Verifier(key.try_get_as_bytes()?.to_vec())))
        }
        Algorithm::EdDSA => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct HmacKey {
    algorithm: Algorithm,
    key: hmac::Key,
}

impl Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        Ok(hmac::sign(&self.key, msg).as_ref().to_vec())
    }
}

impl Verifier<Vec<u8>> for HmacKey {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        // Constant-time comparison of the recomputed tag with the presented one.
        hmac::verify(&self.key, msg, signature).map_err(|_| SignatureError::new())
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

struct Ed25519Signer(Ed25519KeyPair);

impl Signer<Vec<u8>> for Ed25519Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for Ed25519Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

/// A raw 32-byte Ed25519 public key.
struct Ed25519Verifier(Vec<u8>);

impl Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        UnparsedPublicKey::new(&ED25519, &self.0).verify(msg, signature).map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}
