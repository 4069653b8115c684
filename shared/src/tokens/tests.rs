use super::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

const SECRET: &[u8] = b"test-secret-0123456789abcdef-0123456789";

fn config() -> TokenConfig {
    TokenConfig {
        issuer: "https://auth.test".into(),
        audience: "test-api".into(),
        algorithm: Algorithm::HS256,
        key_id: "k1".into(),
        access_ttl_seconds: 900,
        refresh_ttl_seconds: 30 * 86_400,
        leeway_seconds: 5,
    }
}

fn service() -> TokenService {
    TokenService::from_secret(config(), SECRET)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn roles() -> Vec<String> {
    vec!["user".to_string()]
}

fn pair_at(t: u64) -> IssuedPair {
    let roles = roles();
    service().issue_pair(Subject { user_id: "u-1", username: "alice", roles: &roles }, "s-1", t).unwrap()
}

fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    let h = serde_json::from_slice(&B64.decode(p[0]).unwrap()).unwrap();
    let c = serde_json::from_slice(&B64.decode(p[1]).unwrap()).unwrap();
    (h, c, p[2].to_string())
}

fn assemble(header: &serde_json::Value, claims: &serde_json::Value, signature: &str) -> String {
    format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), signature)
}

fn hmac_sign(alg: Algorithm, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let mut h: Header = serde_json::from_value(header.clone()).unwrap();
    h.alg = alg;
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

#[test]
fn issued_pair_has_the_contract_claims_and_header() {
    let t = now();
    let pair = pair_at(t);
    let (h, c, _) = parts(&pair.access_token);
    assert_eq!(h["alg"], "HS256");
    assert_eq!(h["typ"], "JWT");
    assert_eq!(h["kid"], "k1");
    assert_eq!(c["iss"], "https://auth.test");
    assert_eq!(c["aud"], "test-api");
    assert_eq!(c["sub"], "u-1");
    assert_eq!(c["username"], "alice");
    assert_eq!(c["roles"], serde_json::json!(["user"]));
    assert_eq!(c["token_use"], "access");
    assert_eq!(c["sid"], "s-1");
    assert_eq!(c["iat"].as_u64(), Some(t));
    assert_eq!(c["nbf"].as_u64(), Some(t));
    assert_eq!(c["exp"].as_u64(), Some(t + 900));
    let jti = Uuid::parse_str(c["jti"].as_str().unwrap()).unwrap();
    assert_eq!(jti.get_version_num(), 4);

    let (_, r, _) = parts(&pair.refresh_token);
    assert_eq!(r["token_use"], "refresh");
    assert_eq!(r["exp"].as_u64(), Some(t + 30 * 86_400));
    assert_eq!(r["sid"], "s-1");
    assert!(r.get("username").is_none() && r.get("roles").is_none(), "refresh carries no profile: {r}");
    assert_ne!(r["jti"], c["jti"]);
}

#[test]
fn valid_tokens_verify_to_their_claims() {
    let pair = pair_at(now());
    assert_eq!(service().verify_access(&pair.access_token).unwrap(), pair.access);
    assert_eq!(service().verify_refresh(&pair.refresh_token).unwrap(), pair.refresh);
}

#[test]
fn every_token_gets_a_fresh_jti() {
    let a = pair_at(now());
    let b = pair_at(now());
    assert_ne!(a.access.jti, b.access.jti);
    assert_ne!(a.refresh.jti, b.refresh.jti);
}

#[test]
fn a_token_of_one_use_is_refused_where_the_other_is_expected() {
    let pair = pair_at(now());
    assert_eq!(service().verify_access(&pair.refresh_token), Err(TokenError::WrongTokenUse));
    assert_eq!(service().verify_refresh(&pair.access_token), Err(TokenError::WrongTokenUse));
}

#[test]
fn tampered_signature_is_invalid() {
    let token = pair_at(now()).access_token;
    let (h, c, sig) = parts(&token);
    let mut raw = B64.decode(&sig).unwrap();
    raw[0] ^= 1;
    assert_eq!(service().verify_access(&assemble(&h, &c, &B64.encode(raw))), Err(TokenError::Invalid));
    // Signature stripped entirely.
    assert_eq!(service().verify_access(&assemble(&h, &c, "")), Err(TokenError::Invalid));
}

#[test]
fn tampered_payload_is_invalid() {
    let token = pair_at(now()).access_token;
    let (h, mut c, sig) = parts(&token);
    c["roles"] = serde_json::json!(["admin"]);
    assert_eq!(service().verify_access(&assemble(&h, &c, &sig)), Err(TokenError::Invalid));
}

#[test]
fn alg_none_is_invalid() {
    let (_, c, _) = parts(&pair_at(now()).access_token);
    for alg in ["none", "None", "NONE"] {
        let h = serde_json::json!({"alg": alg, "typ": "JWT", "kid": "k1"});
        assert_eq!(service().verify_access(&assemble(&h, &c, "")), Err(TokenError::Invalid), "{alg}");
    }
}

#[test]
fn switched_algorithm_with_the_right_secret_is_invalid() {
    let (h, c, _) = parts(&pair_at(now()).access_token);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let forged = hmac_sign(alg, &h, &c);
        assert_eq!(service().verify_access(&forged), Err(TokenError::Invalid), "{alg:?}");
    }
    // Control: the same helper with the pinned algorithm produces a token that verifies,
    // so the refusals above are about the algorithm and nothing else.
    assert!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)).is_ok());
}

#[test]
fn expired_beyond_leeway_is_expired_within_leeway_is_accepted() {
    let t = now();
    let (h, mut c, _) = parts(&pair_at(t).access_token);
    c["exp"] = (t - 60).into();
    c["iat"] = (t - 960).into();
    c["nbf"] = (t - 960).into();
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::Expired));
    c["exp"] = (t - 2).into();
    assert!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)).is_ok());
    // An expired token with a bad signature is invalid, not expired: no oracle.
    c["exp"] = (t - 60).into();
    let (_, _, bad_sig) = parts(&pair_at(t).refresh_token);
    assert_eq!(service().verify_access(&assemble(&h, &c, &bad_sig)), Err(TokenError::Invalid));
}

#[test]
fn nbf_in_the_future_is_not_yet_valid() {
    let t = now();
    let (h, mut c, _) = parts(&pair_at(t).access_token);
    c["nbf"] = (t + 120).into();
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::NotYetValid));
}

#[test]
fn leeway_is_never_more_than_thirty_seconds() {
    let t = now();
    let mut cfg = config();
    cfg.leeway_seconds = crate::config::MAX_LEEWAY_SECONDS;
    let svc = TokenService::from_secret(cfg, SECRET);
    let (h, mut c, _) = parts(&pair_at(t).access_token);
    c["exp"] = (t - 31).into();
    assert_eq!(svc.verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::Expired));
}

#[test]
fn wrong_issuer_or_audience_is_invalid() {
    let (h, c, _) = parts(&pair_at(now()).access_token);
    for (claim, value) in [("iss", "https://evil.test"), ("aud", "other-api")] {
        let mut forged = c.clone();
        forged[claim] = value.into();
        assert_eq!(
            service().verify_access(&hmac_sign(Algorithm::HS256, &h, &forged)),
            Err(TokenError::Invalid),
            "{claim}"
        );
    }
    let mut missing = c.clone();
    missing.as_object_mut().unwrap().remove("aud");
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &missing)), Err(TokenError::Invalid));
}

#[test]
fn unknown_missing_or_hostile_kid_is_invalid() {
    let (h, c, _) = parts(&pair_at(now()).access_token);
    for kid in
        [serde_json::json!("k2"), serde_json::json!("../../k1"), serde_json::json!("/dev/null"), serde_json::json!("")]
    {
        let mut h2 = h.clone();
        h2["kid"] = kid.clone();
        assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h2, &c)), Err(TokenError::Invalid), "{kid}");
    }
    let mut no_kid = h.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &no_kid, &c)), Err(TokenError::Invalid));
}

#[test]
fn a_token_signed_with_another_secret_is_invalid() {
    let other = TokenService::from_secret(config(), b"another-secret-0123456789abcdef-0123");
    let roles = roles();
    let pair = other.issue_pair(Subject { user_id: "u", username: "alice", roles: &roles }, "s", now()).unwrap();
    assert_eq!(service().verify_access(&pair.access_token), Err(TokenError::Invalid));
}

#[test]
fn garbage_is_invalid() {
    let huge = "a".repeat(10_000);
    let inputs = ["", "abc", "a.b", "a.b.c", "a.b.c.d", "....", "eyJ.eyJ.sig", "\u{0}.\u{0}.\u{0}", huge.as_str()];
    for input in inputs {
        assert_eq!(service().verify_access(input), Err(TokenError::Invalid), "{input:.20}");
        assert_eq!(service().verify_refresh(input), Err(TokenError::Invalid), "{input:.20}");
    }
    // Well-formed header, payload that is not an object.
    let h = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "k1"});
    let token = jsonwebtoken::encode(
        &serde_json::from_value::<Header>(h).unwrap(),
        &[1, 2, 3],
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(service().verify_access(&token), Err(TokenError::Invalid));
}

#[test]
fn claims_of_the_wrong_type_are_invalid() {
    let (h, mut c, _) = parts(&pair_at(now()).access_token);
    c["roles"] = "admin".into();
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::Invalid));
    let (h, mut c, _) = parts(&pair_at(now()).access_token);
    c["token_use"] = "id".into();
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::Invalid));
}

#[test]
fn wrong_typ_header_is_invalid() {
    let (mut h, c, _) = parts(&pair_at(now()).access_token);
    h["typ"] = "at+jwt-but-not-ours".into();
    assert_eq!(service().verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::Invalid));
}

#[test]
fn previous_keys_keep_verifying_after_rotation() {
    let old = TokenService::from_secret(config(), SECRET);
    let roles = roles();
    let old_token =
        old.issue_pair(Subject { user_id: "u", username: "alice", roles: &roles }, "s", now()).unwrap().access_token;

    let mut cfg = config();
    cfg.key_id = "k2".into();
    let new_secret = b"rotated-secret-0123456789abcdef-0123456";
    let rotated = TokenService::new(
        cfg,
        SigningKey::hmac("k2", Algorithm::HS256, new_secret),
        KeySet::new().with_hmac("k2", Algorithm::HS256, new_secret).with_hmac("k1", Algorithm::HS256, SECRET),
    );
    assert!(rotated.verify_access(&old_token).is_ok());
    let new_token = rotated
        .issue_pair(Subject { user_id: "u", username: "alice", roles: &roles }, "s", now())
        .unwrap()
        .access_token;
    assert_eq!(parts(&new_token).0["kid"], "k2");
    assert!(rotated.verify_access(&new_token).is_ok());
    assert_eq!(old.verify_access(&new_token), Err(TokenError::Invalid), "old deployment does not know k2");
}

#[test]
fn eddsa_keys_plug_in_without_changing_call_sites() {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap().public_key().as_ref().to_vec();
    let svc = TokenService::new(
        config(),
        SigningKey::ed25519("ed1", pkcs8.as_ref()),
        KeySet::new().with_ed25519("ed1", &public).with_hmac("k1", Algorithm::HS256, SECRET),
    );
    let roles = roles();
    let pair = svc.issue_pair(Subject { user_id: "u", username: "alice", roles: &roles }, "s", now()).unwrap();
    assert_eq!(parts(&pair.access_token).0["alg"], "EdDSA");
    assert_eq!(svc.verify_access(&pair.access_token).unwrap(), pair.access);
    // An HS256 token claiming the EdDSA key's kid is refused: the key pins the algorithm.
    let (mut h, c, _) = parts(&pair.access_token);
    h["kid"] = "ed1".into();
    assert_eq!(svc.verify_access(&hmac_sign(Algorithm::HS256, &h, &c)), Err(TokenError::Invalid));
}

#[test]
fn no_token_outlives_the_end_of_its_session() {
    let t = now();
    let roles = roles();
    let subject = Subject { user_id: "u", username: "alice", roles: &roles };
    let svc = service();
    let capped = svc.issue_pair_until(subject, "s", Amr::Password, t, t + 600).unwrap();
    assert_eq!((capped.access.exp, capped.refresh.exp), (t + 600, t + 600));
    let early = svc.issue_pair_until(subject, "s", Amr::Password, t, t + 10 * 86_400).unwrap();
    assert_eq!((early.access.exp, early.refresh.exp), (t + 900, t + 10 * 86_400));
    assert!(svc.verify_refresh(&capped.refresh_token).is_ok());
    assert_eq!(svc.issue_pair_until(subject, "s", Amr::Password, t, t).unwrap_err(), TokenError::Expired);
}

#[test]
fn a_service_without_keys_signs_nothing_and_accepts_nothing() {
    let keyless = TokenService::without_keys(config());
    let roles = roles();
    let subject = Subject { user_id: "u", username: "alice", roles: &roles };
    assert!(keyless.issue_pair(subject, "s", now()).is_err());
    assert_eq!(keyless.verify_access(&pair_at(now()).access_token).unwrap_err(), TokenError::Invalid);
}

// --- Asymmetric keys (RS256, ES256, EdDSA) and their JWKs -------------------------------

/// A 2048-bit RSA key made for these tests only (PKCS#8 DER): ring cannot generate RSA keys.
const RSA_TEST_KEY: &[u8] = include_bytes!("testdata/rsa2048-test-only.pk8");

fn key_json(kid: &str, alg: &str, der: &[u8]) -> String {
    let der = base64::engine::general_purpose::STANDARD.encode(der);
    serde_json::json!({"kid": kid, "alg": alg, "pkcs8": der}).to_string()
}

#[test]
fn generated_rsa_keys_are_2048_bit_and_sign_with_ring() {
    let key = PrivateKey::generate("rsa-new", Algorithm::RS256).unwrap();
    let jwk = key.public_jwk().unwrap();
    assert_eq!(B64.decode(jwk.n.as_deref().unwrap()).unwrap().len(), 256);
    let roles = roles();
    let pair = asymmetric(&key, &[]).issue_pair(Subject { user_id: "u", username: "a", roles: &roles }, "s", now());
    assert!(asymmetric(&key, &[]).verify_access(&pair.unwrap().access_token).is_ok());
}

fn private_keys() -> Vec<PrivateKey> {
    vec![
        PrivateKey::from_json(&key_json("rsa-1", "RS256", RSA_TEST_KEY)).unwrap(),
        PrivateKey::generate("ec-1", Algorithm::ES256).unwrap(),
        PrivateKey::generate("ed-1", Algorithm::EdDSA).unwrap(),
    ]
}

/// A service that signs with `key` and verifies with the public JWKs alone.
fn asymmetric(key: &PrivateKey, also: &[&PrivateKey]) -> TokenService {
    let mut keys = KeySet::new();
    for k in std::iter::once(key).chain(also.iter().copied()) {
        keys = keys.with_jwk(&k.public_jwk().unwrap()).unwrap();
    }
    TokenService::new(config(), key.signing_key(), keys)
}

#[test]
fn asymmetric_tokens_carry_their_algorithm_and_kid_and_verify_from_the_public_jwk_alone() {
    let roles = roles();
    for key in private_keys() {
        let service = asymmetric(&key, &[]);
        let pair =
            service.issue_pair(Subject { user_id: "u-1", username: "alice", roles: &roles }, "s-1", now()).unwrap();
        let (header, _, _) = parts(&pair.access_token);
        assert_eq!(header["kid"], key.kid());
        assert_eq!(header["alg"], key.public_jwk().unwrap().alg);
        assert_eq!(service.verify_access(&pair.access_token).unwrap().sub, "u-1");
        assert_eq!(service.verify_refresh(&pair.refresh_token).unwrap().sid, "s-1");
        // A verifier that does not know the key refuses it.
        let other = PrivateKey::generate("other", Algorithm::EdDSA).unwrap();
        assert_eq!(asymmetric(&other, &[]).verify_access(&pair.access_token).unwrap_err(), TokenError::Invalid);
    }
}

#[test]
fn a_verifier_with_current_and_previous_keys_accepts_both_and_a_tampered_signature_neither() {
    let keys = private_keys();
    let roles = roles();
    let subject = Subject { user_id: "u-1", username: "alice", roles: &roles };
    let old = asymmetric(&keys[0], &[]).issue_pair(subject, "s", now()).unwrap();
    let rotated = asymmetric(&keys[1], &[&keys[0]]);
    let new = rotated.issue_pair(subject, "s", now()).unwrap();
    assert!(rotated.verify_access(&old.access_token).is_ok());
    assert!(rotated.verify_access(&new.access_token).is_ok());
    for token in [&old.access_token, &new.access_token] {
        let (h, c, sig) = token
            .rsplitn(3, '.')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .try_into()
            .map(|v: [&str; 3]| (v[0], v[1], v[2]))
            .unwrap();
        let mut bytes = B64.decode(sig).unwrap();
        bytes[5] ^= 1;
        let forged = format!("{h}.{c}.{}", B64.encode(bytes));
        assert_eq!(rotated.verify_access(&forged).unwrap_err(), TokenError::Invalid);
    }
}

#[test]
fn a_token_whose_header_names_another_algorithm_than_its_keys_is_refused() {
    let keys = private_keys();
    let roles = roles();
    let subject = Subject { user_id: "u-1", username: "alice", roles: &roles };
    let ec = asymmetric(&keys[1], &[]);
    let token = ec.issue_pair(subject, "s", now()).unwrap().access_token;
    let (_, claims, _) = parts(&token);
    // The same claims, header alg switched (to RS256, and to HS256 keyed with the public
    // key's bytes, the classic confusion): the key's own pinned algorithm decides.
    for alg in ["RS256", "HS256", "EdDSA", "none"] {
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": "ec-1"});
        let forged = format!(
            "{}.{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string()),
            token.rsplit('.').next().unwrap()
        );
        assert_eq!(ec.verify_access(&forged).unwrap_err(), TokenError::Invalid, "{alg}");
    }
}

#[test]
fn public_jwks_hold_no_private_material_and_round_trip() {
    for key in private_keys() {
        let jwk = key.public_jwk().unwrap();
        let text = serde_json::to_value(&jwk).unwrap();
        let fields: Vec<&str> = text.as_object().unwrap().keys().map(String::as_str).collect();
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "pkcs8"] {
            assert!(!fields.contains(&private), "{private} in {text}");
        }
        assert_eq!(text["use"], "sig");
        assert_eq!(serde_json::from_value::<PublicJwk>(text).unwrap(), jwk);
        match jwk.kty.as_str() {
            "RSA" => assert_eq!(
                (jwk.e.as_deref(), B64.decode(jwk.n.as_deref().unwrap()).unwrap().len()),
                (Some("AQAB"), 256)
            ),
            "EC" => assert_eq!(jwk.crv.as_deref(), Some("P-256")),
            _ => assert_eq!((jwk.kty.as_str(), jwk.crv.as_deref()), ("OKP", Some("Ed25519"))),
        }
        // The stored form parses back to the same key.
        let again = PrivateKey::from_json(&key.to_json()).unwrap();
        assert_eq!(again.public_jwk().unwrap(), jwk);
        assert!(!format!("{key:?}").contains(&*key.to_json()), "Debug shows no key");
    }
}

#[test]
fn malformed_key_documents_are_refused_without_echoing_them() {
    let ec = PrivateKey::generate("ec-1", Algorithm::ES256).unwrap();
    let ec_json: serde_json::Value = serde_json::from_str(&ec.to_json()).unwrap();
    let der = ec_json["pkcs8"].as_str().unwrap();
    let cases = [
        "not json".to_string(),
        serde_json::json!({"kid": "k", "alg": "HS256", "pkcs8": der}).to_string(),
        serde_json::json!({"kid": "k", "alg": "RS256", "pkcs8": der}).to_string(),
        serde_json::json!({"kid": "k", "alg": "EdDSA", "pkcs8": der}).to_string(),
        serde_json::json!({"kid": "k", "alg": "ES256", "pkcs8": "AAAA"}).to_string(),
        serde_json::json!({"kid": "../k", "alg": "ES256", "pkcs8": der}).to_string(),
        serde_json::json!({"kid": "", "alg": "ES256", "pkcs8": der}).to_string(),
    ];
    for case in cases {
        let err = PrivateKey::from_json(&case).unwrap_err().to_string();
        assert!(!err.contains(der), "{err}");
    }
    assert_eq!(PrivateKey::generate("h", Algorithm::HS256).unwrap_err(), KeyError::CannotGenerate("HS256"));
    // A JWK that is not a signing key of ours is not taken in.
    let mut jwk = ec.public_jwk().unwrap();
    jwk.use_ = "enc".into();
    assert!(KeySet::new().with_jwk(&jwk).is_none());
    let mut jwk = ec.public_jwk().unwrap();
    jwk.alg = "HS256".into();
    assert!(KeySet::new().with_jwk(&jwk).is_none());
}

// --- Keys read again after a rotation ----------------------------------------------------

/// A loader whose answer the test changes: the keys "in Secrets Manager".
struct SwitchableLoader {
    current: std::sync::Mutex<(Option<String>, Vec<PublicJwk>)>,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl KeyLoader for SwitchableLoader {
    async fn load(&self) -> Result<LoadedKeys, String> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (private, public) = self.current.lock().unwrap().clone();
        let mut keys = KeySet::new();
        for jwk in &public {
            keys = keys.with_jwk(jwk).unwrap();
        }
        let signer = private.map(|json| PrivateKey::from_json(&json).unwrap().signing_key());
        Ok(LoadedKeys { signer, keys, published: Jwks { keys: public } })
    }
}

#[tokio::test]
async fn a_new_key_is_learnt_on_first_sight_and_forged_kids_cause_no_reload_storm() {
    let old = PrivateKey::generate("old", Algorithm::ES256).unwrap();
    let new = PrivateKey::generate("new", Algorithm::ES256).unwrap();
    let loader = std::sync::Arc::new(SwitchableLoader {
        current: std::sync::Mutex::new((None, vec![old.public_jwk().unwrap()])),
        reads: Default::default(),
    });
    let verifier = TokenService::reloadable(config(), loader.clone()).await.unwrap();
    assert_eq!(loader.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    let roles = roles();
    let subject = Subject { user_id: "u-1", username: "alice", roles: &roles };
    let by_old = asymmetric(&old, &[]).issue_pair(subject, "s", now()).unwrap();
    assert!(verifier.verify_access_reloading(&by_old.access_token).await.is_ok());
    assert_eq!(verifier.reloads(), 0, "a known kid reads nothing");

    // The rotation publishes the new key; a token signed by it arrives.
    *loader.current.lock().unwrap() = (None, vec![new.public_jwk().unwrap(), old.public_jwk().unwrap()]);
    let by_new = asymmetric(&new, &[]).issue_pair(subject, "s", now()).unwrap();
    assert!(verifier.verify_access_reloading(&by_new.access_token).await.is_ok());
    assert!(verifier.verify_refresh_reloading(&by_new.refresh_token).await.is_ok());
    assert!(verifier.verify_access_reloading(&by_old.access_token).await.is_ok(), "the previous key still verifies");
    assert_eq!(verifier.reloads(), 1);
    assert_eq!(verifier.jwks().keys.len(), 2);

    // A storm of tokens with kids nobody has: refused, and no read within the interval.
    let (_, claims, sig) = parts(&by_new.access_token);
    for i in 0..100 {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": format!("forged-{i}")});
        let forged = format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), sig);
        assert_eq!(verifier.verify_access_reloading(&forged).await.unwrap_err(), TokenError::Invalid);
    }
    assert_eq!(verifier.reloads(), 1, "rate-limited to one read per {KEY_RELOAD_MIN_INTERVAL:?}");
    assert_eq!(loader.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_signer_switches_to_the_rotated_key_once_its_keys_are_old() {
    let old = PrivateKey::generate("old", Algorithm::EdDSA).unwrap();
    let new = PrivateKey::generate("new", Algorithm::EdDSA).unwrap();
    let loader = std::sync::Arc::new(SwitchableLoader {
        current: std::sync::Mutex::new((Some(old.to_json().to_string()), vec![old.public_jwk().unwrap()])),
        reads: Default::default(),
    });
    let signer = TokenService::reloadable(config(), loader.clone()).await.unwrap();
    *loader.current.lock().unwrap() =
        (Some(new.to_json().to_string()), vec![new.public_jwk().unwrap(), old.public_jwk().unwrap()]);
    let roles = roles();
    let subject = Subject { user_id: "u-1", username: "alice", roles: &roles };
    signer.keep_fresh().await;
    let kid = |pair: &IssuedPair| parts(&pair.access_token).0["kid"].clone();
    assert_eq!(kid(&signer.issue_pair(subject, "s", now()).unwrap()), "old", "young keys are kept");
    assert_eq!(signer.reloads(), 0);
    tokio::time::advance(KEY_MAX_AGE).await;
    signer.keep_fresh().await;
    assert_eq!(kid(&signer.issue_pair(subject, "s", now()).unwrap()), "new", "old keys are read again before signing");
    assert_eq!(signer.reloads(), 1);
}

#[test]
fn an_issuer_left_to_the_api_is_learnt_once_and_nothing_is_signed_before() {
    let learning = TokenService::from_secret(TokenConfig { issuer: String::new(), ..config() }, SECRET);
    let roles = roles();
    let subject = Subject { user_id: "u-1", username: "alice", roles: &roles };
    assert_eq!(learning.issuer(), None);
    assert_eq!(learning.issue_pair(subject, "s", now()).unwrap_err(), TokenError::Invalid);
    learning.learn_issuer("bad/id", "eu-west-1", "v1");
    assert_eq!(learning.issuer(), None, "only plain ids make an issuer");
    learning.learn_issuer("abc123", "eu-west-1", "v1");
    learning.learn_issuer("other", "eu-west-1", "v1");
    assert_eq!(learning.issuer(), Some("https://abc123.execute-api.eu-west-1.amazonaws.com/v1"), "the first one stays");
    let pair = learning.issue_pair(subject, "s", now()).unwrap();
    assert!(learning.verify_access(&pair.access_token).is_ok());
    // A token of another API (same key, other issuer) is refused.
    let other = TokenService::from_secret(TokenConfig { issuer: String::new(), ..config() }, SECRET);
    other.learn_issuer("xyz789", "eu-west-1", "v1");
    assert_eq!(other.verify_access(&pair.access_token).unwrap_err(), TokenError::Invalid);
    // A fixed issuer is never replaced.
    let fixed = service();
    fixed.learn_issuer("abc123", "eu-west-1", "v1");
    assert_eq!(fixed.issuer(), Some("https://auth.test"));
}

#[test]
fn an_issuer_is_learnt_only_from_the_deployed_stage() {
    let api = crate::config::ApiConfig { region: "eu-west-1".into(), stage: Some("v1".into()) };
    let learning = TokenService::from_secret(TokenConfig { issuer: String::new(), ..config() }, SECRET).for_api(api);
    assert_eq!(learning.region(), "eu-west-1");
    learning.learn_issuer("abc123", learning.region(), "test-invoke-stage");
    assert_eq!(learning.issuer(), None, "a console test invocation's stage is not the API's");
    learning.learn_issuer("abc123", learning.region(), "v1");
    assert_eq!(learning.issuer(), Some("https://abc123.execute-api.eu-west-1.amazonaws.com/v1"));
}

#[test]
fn jwk_thumbprints_are_rfc_7638s() {
    // RFC 7638 §3.1's example key and thumbprint.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3\
             oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6\
             qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJ\
             zKnqDKgw";
    let rsa = PublicJwk {
        kid: "2011-04-29".into(),
        kty: "RSA".into(),
        alg: "RS256".into(),
        use_: "sig".into(),
        crv: None,
        x: None,
        y: None,
        n: Some(n.into()),
        e: Some("AQAB".into()),
    };
    assert_eq!(rsa.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    // The id, algorithm and use are not part of it: the key alone is.
    let renamed = PublicJwk { kid: "other".into(), alg: "PS256".into(), ..rsa.clone() };
    assert_eq!(renamed.thumbprint(), rsa.thumbprint());
    // Different keys, different thumbprints.
    let a = PrivateKey::generate("a", Algorithm::ES256).unwrap().public_jwk().unwrap();
    let b = PrivateKey::generate("b", Algorithm::ES256).unwrap().public_jwk().unwrap();
    assert_ne!(a.thumbprint(), b.thumbprint());
}
