//! jsonwebtoken's crypto on `ring`, the library the AWS SDK's TLS (rustls) already links.
//!
//! jsonwebtoken's built-in providers link a whole second crypto library (aws-lc or the
//! RustCrypto RSA/ECDSA/Ed25519 crates) with every algorithm in it. The service only needs
//! what `TokenService` can be configured with: HS256/384/512, RS256 (RSASSA-PKCS1-v1_5 with
//! SHA-256, 2048 to 8192-bit keys), ES256 (ECDSA P-256 with SHA-256, the JWS fixed-length
//! signature) and EdDSA (Ed25519). Private keys are PKCS#8. Any other algorithm is refused,
//! as `Algorithm` pinning already refuses it before a key is used.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey,
};

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
    match (algorithm, key.family()) {
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => {
            // PKCS#8 v1 (private key only) and v2 (with the public key) are both accepted.
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes()).map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ok(Box::new(Ed25519Signer(pair)))
        }
        (Algorithm::ES256, AlgorithmFamily::Ec) => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.as_bytes(), &SystemRandom::new())
                .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            Ok(Box::new(EcdsaSigner(pair)))
        }
        (Algorithm::RS256, AlgorithmFamily::Rsa) => {
            let pair = RsaKeyPair::from_pkcs8(key.as_bytes())
                .or_else(|_| RsaKeyPair::from_der(key.as_bytes()))
                .map_err(|_| ErrorKind::InvalidRsaKey("not a PKCS#8 or PKCS#1 RSA private key".into()))?;
            Ok(Box::new(RsaSigner(pair)))
        }
        (Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
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
    match (algorithm, key.family()) {
        (Algorithm::EdDSA, AlgorithmFamily::Ed) => Ok(Box::new(Ed25519Verifier(key.try_get_as_bytes()?.to_vec()))),
        // An uncompressed P-256 point (0x04 || x || y).
        (Algorithm::ES256, AlgorithmFamily::Ec) => Ok(Box::new(EcdsaVerifier(key.try_get_as_bytes()?.to_vec()))),
        (Algorithm::RS256, AlgorithmFamily::Rsa) => Ok(Box::new(match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => RsaVerifier { n: n.clone(), e: e.clone() },
            DecodingKeyKind::SecretOrDer(der) => {
                let (n, e) = rsa_components(der).ok_or(ErrorKind::InvalidKeyFormat)?;
                RsaVerifier { n: n.to_vec(), e: e.to_vec() }
            }
        })),
        (Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// The modulus and exponent of a DER `RSAPublicKey` (PKCS#1: a SEQUENCE of two INTEGERs),
/// big-endian without leading zeros: what a JWK's `n` and `e` hold.
pub(crate) fn rsa_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            n if n < 0x80 => (usize::from(n), rest),
            0x81 => (usize::from(*rest.first()?), &rest[1..]),
            0x82 => (usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])), &rest[2..]),
            _ => return None,
        };
        (t == tag && rest.len() >= len).then(|| rest.split_at(len))
    }
    fn strip(int: &[u8]) -> &[u8] {
        let zeros = int.iter().take_while(|&&b| b == 0).count();
        &int[zeros.min(int.len().saturating_sub(1))..]
    }
    let (sequence, _) = element(der, 0x30)?;
    let (n, rest) = element(sequence, 0x02)?;
    let (e, rest) = element(rest, 0x02)?;
    rest.is_empty().then(|| (strip(n), strip(e)))
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

struct EcdsaSigner(EcdsaKeyPair);

impl Signer<Vec<u8>> for EcdsaSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let signature = self.0.sign(&SystemRandom::new(), msg).map_err(|_| SignatureError::new())?;
        Ok(signature.as_ref().to_vec())
    }
}

impl JwtSigner for EcdsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct EcdsaVerifier(Vec<u8>);

impl Verifier<Vec<u8>> for EcdsaVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0).verify(msg, signature).map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for EcdsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct RsaSigner(RsaKeyPair);

impl Signer<Vec<u8>> for RsaSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut signature)
            .map_err(|_| SignatureError::new())?;
        Ok(signature)
    }
}

impl JwtSigner for RsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

struct RsaVerifier {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        RsaPublicKeyComponents { n: &self.n, e: &self.e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, msg, signature)
            .map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RsaVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}
