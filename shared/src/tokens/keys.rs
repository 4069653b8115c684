//! Asymmetric keys: a private key as stored (JSON `{"kid", "alg", "pkcs8"}`, the PKCS#8
//! DER in standard base64), and the public JWK derived from it, which is all a verifier
//! (and the JWKS) ever holds. Private key bytes are wiped when dropped and never printed.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SigningKey;
use super::crypto::rsa_components;

/// Why key material was refused. Never carries the material itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key document is not JSON with kid, alg and pkcs8: {0}")]
    Document(String),
    #[error("algorithm {0} is not one of RS256, ES256, EdDSA")]
    Algorithm(String),
    #[error("the pkcs8 field is not a valid {0} private key (PKCS#8 DER, standard base64)")]
    Key(&'static str),
    #[error("{0} keys cannot be generated here")]
    CannotGenerate(&'static str),
}

/// RSA keys are made this size: RFC 7518's minimum, and what API Gateway's JWT
/// authorizers and every JWKS client accept.
pub const RSA_BITS: usize = 2048;

/// The asymmetric algorithms, by their JOSE names.
pub fn algorithm_of(name: &str) -> Result<Algorithm, KeyError> {
    crate::config::per_function::asymmetric_algorithm(name).ok_or_else(|| KeyError::Algorithm(name.to_string()))
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        _ => "another algorithm",
    }
}

#[derive(Deserialize, Serialize)]
struct Document {
    kid: String,
    alg: String,
    pkcs8: String,
}

/// A private signing key and its id.
pub struct PrivateKey {
    kid: String,
    algorithm: Algorithm,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Parses the stored JSON and checks that the key is a valid key of its algorithm.
    pub fn from_json(text: &str) -> Result<Self, KeyError> {
        // The kind of error and where, never serde's message: it can quote the input (a
        // document stored as a JSON string would be quoted whole, key included).
        let Document { kid, alg, pkcs8 } = serde_json::from_str(text).map_err(|e| {
            KeyError::Document(format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
        })?;
        let pkcs8 = Zeroizing::new(pkcs8);
        if kid.is_empty() || kid.len() > 64 || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(KeyError::Document("kid must be 1-64 characters of A-Z, a-z, 0-9, '-', '_', '.'".into()));
        }
        let algorithm = algorithm_of(&alg)?;
        let der = Zeroizing::new(STANDARD.decode(pkcs8.trim()).map_err(|_| KeyError::Key(algorithm_name(algorithm)))?);
        let key = PrivateKey { kid, algorithm, pkcs8: der };
        key.public_jwk()?;
        Ok(key)
    }

    /// A new key with id `kid`: ES256 (P-256) and EdDSA (Ed25519) from ring, RS256 (2048-bit,
    /// e = 65537) from the `rsa` crate, which ring lacks a generator for.
    pub fn generate(kid: &str, algorithm: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let bad = |_| KeyError::Key(algorithm_name(algorithm));
        let der = match algorithm {
            Algorithm::ES256 => {
                Zeroizing::new(EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(bad)?.as_ref().to_vec())
            }
            Algorithm::EdDSA => Zeroizing::new(Ed25519KeyPair::generate_pkcs8(&rng).map_err(bad)?.as_ref().to_vec()),
            Algorithm::RS256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                    .map_err(|_| KeyError::Key("RS256"))?;
                let der = key.to_pkcs8_der().map_err(|_| KeyError::Key("RS256"))?;
                Zeroizing::new(der.as_bytes().to_vec())
            }
            _ => return Err(KeyError::CannotGenerate(algorithm_name(algorithm))),
        };
        let key = PrivateKey { kid: kid.to_string(), algorithm, pkcs8: der };
        // What was made must load as ring loads it.
        key.public_jwk()?;
        Ok(key)
    }

    /// A new key whose `kid` is its public key's RFC 7638 thumbprint: nobody chooses it,
    /// so no one can make a new key collide with a key in use (which would drop that key
    /// from the published set), and the same key always has the same id.
    pub fn generate_with_thumbprint_kid(algorithm: Algorithm) -> Result<Self, KeyError> {
        let mut key = Self::generate("pending", algorithm)?;
        key.kid = key.public_jwk()?.thumbprint();
        Ok(key)
    }

    /// The JSON it is stored as (a secret: only for the store that keeps it).
    pub fn to_json(&self) -> Zeroizing<String> {
        let doc = Document {
            kid: self.kid.clone(),
            alg: algorithm_name(self.algorithm).to_string(),
            pkcs8: STANDARD.encode(&*self.pkcs8),
        };
        Zeroizing::new(serde_json::to_string(&doc).unwrap_or_default())
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn signing_key(&self) -> SigningKey {
        let key = match self.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_der(&self.pkcs8),
            Algorithm::ES256 => EncodingKey::from_ec_der(&self.pkcs8),
            _ => EncodingKey::from_ed_der(&self.pkcs8),
        };
        SigningKey { kid: self.kid.clone(), algorithm: self.algorithm, key }
    }

    /// The public half, as a JWK.
    pub fn public_jwk(&self) -> Result<PublicJwk, KeyError> {
        let bad = || KeyError::Key(algorithm_name(self.algorithm));
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = PublicJwk {
            kid: self.kid.clone(),
            kty: String::new(),
            alg: algorithm_name(self.algorithm).to_string(),
            use_: "sig".into(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        };
        match self.algorithm {
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(&self.pkcs8).or_else(|_| RsaKeyPair::from_der(&self.pkcs8));
                let pair = pair.map_err(|_| bad())?;
                let (n, e) = rsa_components(pair.public().as_ref()).ok_or_else(bad)?;
                jwk.kty = "RSA".into();
                (jwk.n, jwk.e) = (Some(b64(n)), Some(b64(e)));
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &SystemRandom::new())
                    .map_err(|_| bad())?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(bad());
                }
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                (jwk.x, jwk.y) = (Some(b64(&point[1..33])), Some(b64(&point[33..])));
            }
            _ => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8).map_err(|_| bad())?;
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64(pair.public_key().as_ref()));
            }
        }
        Ok(jwk)
    }
}

impl PublicJwk {
    /// The RFC 7638 thumbprint: SHA-256 over the key's required members, in lexicographic
    /// order and without whitespace, base64url without padding (43 characters).
    pub fn thumbprint(&self) -> String {
        let member = |name: &str, value: &Option<String>| format!(r#""{name}":"{}""#, value.as_deref().unwrap_or(""));
        let kty = format!(r#""kty":"{}""#, self.kty);
        let members = match self.kty.as_str() {
            "RSA" => [member("e", &self.e), kty, member("n", &self.n)].join(","),
            "EC" => [member("crv", &self.crv), kty, member("x", &self.x), member("y", &self.y)].join(","),
            _ => [member("crv", &self.crv), kty, member("x", &self.x)].join(","),
        };
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, format!("{{{members}}}").as_bytes()))
    }
}

/// A public key as RFC 7517 writes it (`kty` RSA, EC or OKP), with `use: "sig"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kid: String,
    pub kty: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
}

impl PublicJwk {
    /// The algorithm it is pinned to and the key that verifies it; `None` for anything
    /// that is not a well-formed public key of RS256, ES256 or EdDSA.
    pub fn decoding_key(&self) -> Option<(Algorithm, DecodingKey)> {
        let bytes = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref()?).ok();
        let algorithm = algorithm_of(&self.alg).ok()?;
        let key = match (algorithm, self.kty.as_str(), self.crv.as_deref()) {
            (Algorithm::RS256, "RSA", None) => {
                // At least 2048 bits, no leading zero, the usual exponent: anything else is
                // not a key this service made.
                let (n, e) = (bytes(&self.n)?, bytes(&self.e)?);
                if n.len() < RSA_BITS / 8 || n.first() == Some(&0) || e != [1, 0, 1] {
                    return None;
                }
                DecodingKey::from_rsa_raw_components(&n, &e)
            }
            (Algorithm::ES256, "EC", Some("P-256")) => {
                let (x, y) = (bytes(&self.x)?, bytes(&self.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                DecodingKey::from_ec_der(&[&[4u8][..], &x, &y].concat())
            }
            (Algorithm::EdDSA, "OKP", Some("Ed25519")) => {
                let x = bytes(&self.x)?;
                (x.len() == 32).then_some(())?;
                DecodingKey::from_ed_der(&x)
            }
            _ => return None,
        };
        (self.use_ == "sig").then_some((algorithm, key))
    }
}

/// A JWK Set: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}
