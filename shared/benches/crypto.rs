//! CPU cost of the hot paths, without I/O: JWT sign and verify, argon2id hash and verify
//! (production parameters), and the authorizer's whole answer (verify, revocation rule,
//! policy) over a store that answers at once. `make bench` prints these next to the
//! Lambda figures.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use shared::Auth;
use shared::authorizer::{AuthorizerEvent, RouteRoles, authorize};
use shared::config::{Argon2Config, TokenConfig};
use shared::password::PasswordHasher;
use shared::store::{
    AccessState, CreateOutcome, FailedLogins, ListedSession, LoginState, NameAttempt, PasswordChange, RevocationStore,
    SessionRecord, SessionStore, SpendOutcome, StoreError, Swapped, ThrottleKey, ThrottleStore, UserAccess, UserRecord,
    UserStore,
};
use shared::tokens::{KeySet, PrivateKey, Subject, TokenService};

const USER_ID: &str = "8f14e45f-ceea-467f-a0e6-8e2a3f1c9b7d";

fn tokens() -> TokenService {
    let config = TokenConfig {
        issuer: "jwt-auth".into(),
        audience: "jwt-auth-api".into(),
        algorithm: Algorithm::HS256,
        key_id: "k1".into(),
        access_ttl_seconds: 900,
        refresh_ttl_seconds: 30 * 86_400,
        leeway_seconds: 5,
    };
    TokenService::from_secret(config, b"benchmark-secret-0123456789abcdef0123456789")
}

/// Answers the authorizer's one read at once: a live session of a live user.
struct InstantStore;

#[async_trait]
impl RevocationStore for InstantStore {
    async fn access_state(&self, _: &str, _: &str) -> Result<AccessState, StoreError> {
        Ok(AccessState {
            session_revoked: false,
            user: Some(UserAccess {
                user_id: USER_ID.into(),
                roles: vec!["user".into()],
                sessions_valid_after_ms: None,
                disabled: false,
                email: None,
                email_verified: false,
            }),
        })
    }
    async fn revoke_session(&self, _: &str, _: u64) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn spend_refresh_token(&self, _: &str, _: u64, _: &shared::store::Spend) -> Result<SpendOutcome, StoreError> {
        unreachable!()
    }
}

#[async_trait]
impl shared::store::OneTimeTokenStore for InstantStore {
    async fn issue_token(&self, _: &shared::store::Mailed) -> Result<(), StoreError> {
        unreachable!("the authorizer sends no mail")
    }
    async fn one_time_token(&self, _: &str) -> Result<Option<shared::store::OneTimeToken>, StoreError> {
        unreachable!()
    }
    async fn forget_token(&self, _: &str) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn put_token(&self, _: &shared::store::OneTimeToken) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn spend_token(&self, _: &str, _: u32) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn count_wrong_code(&self, _: &str, _: u32) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn verify_email(
        &self,
        _: &shared::store::OneTimeToken,
        _: Option<&str>,
        _: u64,
    ) -> Result<shared::store::VerifyOutcome, StoreError> {
        unreachable!()
    }
}

#[async_trait]
impl shared::store::FactorStore for InstantStore {
    async fn factor(&self, _: &str) -> Result<Option<shared::store::Factor>, StoreError> {
        Ok(None)
    }
    async fn begin_enrolment(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn confirm_enrolment(&self, _: &str, _: &str, _: u64, _: &[String]) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn accept_step(&self, _: &str, _: &str, _: u64) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn use_recovery_code(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn replace_recovery_codes(&self, _: &str, _: &str, _: u64, _: &[String]) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn remove_factor(&self, _: &str, _: Option<&str>) -> Result<bool, StoreError> {
        unreachable!()
    }
}

#[async_trait]
impl shared::store::OutboxStore for InstantStore {
    async fn queue_mail(&self, _: &shared::store::QueuedMail) -> Result<(), StoreError> {
        unreachable!("the authorizer sends no mail")
    }
    async fn queued_mails(&self, _: usize) -> Result<Vec<shared::store::QueuedMail>, StoreError> {
        unreachable!()
    }
    async fn forget_mail(&self, _: &str) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn take_mail_allowance(&self, _: &str, _: u64, _: u64, _: u32, _: u64) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn claim_mail(&self, _: &str, _: u64, _: u64) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn release_mail(&self, _: &str) -> Result<(), StoreError> {
        unreachable!()
    }
}

#[async_trait]
impl UserStore for InstantStore {
    async fn mark_email_change(&self, _: &str, _: &str, _: u64) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn import_user(&self, _: &UserRecord, _: &str) -> Result<shared::store::ImportOutcome, StoreError> {
        unreachable!()
    }
    async fn create_user_mailed(
        &self,
        _: &UserRecord,
        _: Option<&shared::store::Mailed>,
    ) -> Result<CreateOutcome, StoreError> {
        unreachable!("the authorizer never writes")
    }
    async fn get_user(&self, _: &str) -> Result<Option<UserRecord>, StoreError> {
        unreachable!()
    }
    async fn user_profile(&self, _: &str) -> Result<Option<shared::store::UserProfile>, StoreError> {
        unreachable!()
    }
    async fn users_with_unverified_email(&self, _: &str) -> Result<Vec<shared::store::UserRef>, StoreError> {
        unreachable!()
    }
    async fn verified_owner(&self, _: &str) -> Result<Option<String>, StoreError> {
        unreachable!()
    }
    async fn username_for_id(&self, _: &str) -> Result<Option<String>, StoreError> {
        unreachable!()
    }
    async fn replace_password_hash(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn revoke_sessions_before(&self, _: &str, _: u64) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn replace_roles(&self, _: &str, _: &[String], _: &[String]) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn set_disabled(&self, _: &str, _: bool, _: u64) -> Result<bool, StoreError> {
        unreachable!()
    }
    async fn change_password(&self, _: &str, _: &str, _: &str, _: &str, _: u64) -> Result<PasswordChange, StoreError> {
        unreachable!()
    }
    async fn delete_user(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &[ThrottleKey],
    ) -> Result<bool, StoreError> {
        unreachable!()
    }
}

#[async_trait]
impl ThrottleStore for InstantStore {
    async fn login_state(&self, _: &str, _: &str) -> Result<LoginState, StoreError> {
        unreachable!()
    }
    async fn swap_login_failures(
        &self,
        _: &ThrottleKey,
        _: Option<&str>,
        _: &FailedLogins,
    ) -> Result<Swapped, StoreError> {
        unreachable!()
    }
    async fn reserve_name_attempt(
        &self,
        _: &ThrottleKey,
        _: &FailedLogins,
        _: u32,
        _: u64,
        _: &str,
    ) -> Result<NameAttempt, StoreError> {
        unreachable!()
    }
    async fn release_name_attempt(&self, _: &ThrottleKey, _: u64) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn clear_login_failures(&self, _: &ThrottleKey) -> Result<(), StoreError> {
        unreachable!()
    }
}

#[async_trait]
impl SessionStore for InstantStore {
    async fn record_session(&self, _: &SessionRecord) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn touch_session(&self, _: &str, _: &str, _: u64, _: u64) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn list_sessions(&self, _: &str) -> Result<Vec<ListedSession>, StoreError> {
        unreachable!()
    }
    async fn session(&self, _: &str, _: &str) -> Result<Option<ListedSession>, StoreError> {
        unreachable!()
    }
    async fn forget_session(&self, _: &str, _: &str) -> Result<(), StoreError> {
        unreachable!()
    }
    async fn forget_sessions(&self, _: &str) -> Result<(), StoreError> {
        unreachable!()
    }
}

fn benches(c: &mut Criterion) {
    let service = tokens();
    let roles = vec!["user".to_string()];
    let subject = Subject { user_id: USER_ID, username: "alice", roles: &roles };
    let now = shared::auth::now_ms() / 1000;
    let pair = service.issue_pair(subject, "019a9c4e-0000-7000-8000-000000000000", now).unwrap();

    c.bench_function("jwt_sign", |b| b.iter(|| service.sign(black_box(&pair.access)).unwrap()));
    c.bench_function("jwt_verify", |b| b.iter(|| service.verify_access(black_box(&pair.access_token)).unwrap()));

    asymmetric(c, &pair.access);
    tls_roots(c);

    let hasher = PasswordHasher::new(Argon2Config::default()).unwrap();
    let phc = hasher.hash("correct horse battery").unwrap();
    let mut slow = c.benchmark_group("argon2id");
    slow.sample_size(10);
    slow.bench_function("argon2id_hash", |b| b.iter(|| hasher.hash(black_box("correct horse battery")).unwrap()));
    slow.bench_function("argon2id_verify", |b| {
        b.iter(|| hasher.verify(black_box("correct horse battery"), &phc).unwrap())
    });
    slow.finish();

    imported(c, &hasher);

    let auth = Auth::new(Arc::new(InstantStore), Arc::new(tokens()), Arc::new(hasher));
    let routes =
        RouteRoles::parse(r#"{"GET /auth/me": [], "POST /auth/logout": [], "GET /admin": ["admin"]}"#).unwrap();
    let routes = shared::authorizer::AccessRules { routes, admin_requires_mfa: false };
    let event = AuthorizerEvent {
        method_arn: "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/GET/auth/me".into(),
        headers: Some([("Authorization".to_string(), format!("Bearer {}", pair.access_token))].into()),
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    c.bench_function("authorizer_cpu", |b| {
        b.iter(|| rt.block_on(authorize(&auth, &routes, black_box(&event))).unwrap())
    });
}

/// What the first sign-in of an imported user costs: verifying its hash as its library
/// wrote it, at that library's default cost (the vectors scripts/make_hash_vectors.py made),
/// against argon2id's verification above. `cargo bench -p shared --bench crypto -- imported`.
fn imported(c: &mut Criterion, hasher: &PasswordHasher) {
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../tests/vectors/imported_hashes.json")).unwrap();
    let find = |library: &str, prefix: &str| {
        vectors
            .iter()
            .find(|v| {
                v["matches"] == true
                    && v["library"].as_str().unwrap().starts_with(library)
                    && v["hash"].as_str().unwrap().starts_with(prefix)
            })
            .unwrap_or_else(|| panic!("no {library} {prefix} vector"))
    };
    let cases = [
        ("imported_bcrypt_cost12", find("bcrypt", "$2b$12$")),
        ("imported_django_pbkdf2_1000000", find("Django", "pbkdf2_sha256$1000000$")),
        ("imported_passlib_pbkdf2_29000", find("passlib", "$pbkdf2-sha256$29000$")),
        ("imported_werkzeug_scrypt_32768_8_1", find("Werkzeug", "scrypt:32768:8:1$")),
    ];
    let mut slow = c.benchmark_group("imported");
    slow.sample_size(10);
    for (name, v) in cases {
        let (password, hash) = (v["password"].as_str().unwrap(), v["hash"].as_str().unwrap());
        slow.bench_function(name, |b| b.iter(|| hasher.verify(black_box(password), hash).unwrap()));
    }
    slow.finish();
}

/// A 2048-bit RSA key made for tests only (ring cannot generate RSA keys).
const RSA_TEST_KEY: &[u8] = include_bytes!("../src/tokens/testdata/rsa2048-test-only.pk8");

/// Per signing algorithm (issue 13's choice of default): signing an access token, verifying
/// one (what the authorizer does per request), and a cold start's key work (parsing the
/// stored private key, deriving its public JWK, and the verifier's key set).
fn asymmetric(c: &mut Criterion, claims: &shared::tokens::AccessClaims) {
    use base64::Engine;
    let rsa = base64::engine::general_purpose::STANDARD.encode(RSA_TEST_KEY);
    let keys = [
        ("RS256", PrivateKey::from_json(&format!(r#"{{"kid":"r","alg":"RS256","pkcs8":"{rsa}"}}"#)).unwrap()),
        ("ES256", PrivateKey::generate("e", Algorithm::ES256).unwrap()),
        ("EdDSA", PrivateKey::generate("d", Algorithm::EdDSA).unwrap()),
    ];
    for (name, key) in &keys {
        let jwk = key.public_jwk().unwrap();
        let service =
            TokenService::new(tokens().config().clone(), key.signing_key(), KeySet::new().with_jwk(&jwk).unwrap());
        let token = service.sign(claims).unwrap();
        c.bench_function(&format!("jwt_sign_{name}"), |b| b.iter(|| service.sign(black_box(claims)).unwrap()));
        c.bench_function(&format!("jwt_verify_{name}"), |b| {
            b.iter(|| service.verify_access(black_box(&token)).unwrap())
        });
        let stored = key.to_json();
        c.bench_function(&format!("key_load_{name}"), |b| {
            b.iter(|| {
                let key = PrivateKey::from_json(black_box(&stored)).unwrap();
                let jwk = key.public_jwk().unwrap();
                TokenService::new(tokens().config().clone(), key.signing_key(), KeySet::new().with_jwk(&jwk).unwrap())
            })
        });
    }
}

/// What the first HTTPS connection of a cold start paid before its handshake while the
/// functions trusted the system's roots: reading and parsing them (`SSL_CERT_FILE` if set)
/// into rustls's store. They now trust Amazon's five built-in roots instead (aws.rs); this
/// keeps the cost of the alternative in view.
fn tls_roots(c: &mut Criterion) {
    let found = rustls_native_certs::load_native_certs();
    eprintln!("tls_roots: {} root certificates ({} errors)", found.certs.len(), found.errors.len());
    c.bench_function("tls_roots_load", |b| {
        b.iter(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            roots
        })
    });
}

criterion_group!(crypto, benches);
criterion_main!(crypto);
