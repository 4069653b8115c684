//! Test support for the storage and use-case tests. They run against a real DynamoDB API
//! (the moto server `make test` starts, or any endpoint in AWS_ENDPOINT_URL_DYNAMODB),
//! never an in-memory stand-in; without one they skip (see [`env`]).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use jsonwebtoken::Algorithm;
use shared::Auth;
use shared::config::{Argon2Config, TokenConfig};
use shared::password::PasswordHasher;
use shared::store::{
    AccessState, CreateOutcome, DynamoStore, FailedLogins, ListedSession, LoginState, Mailed, NameAttempt,
    OneTimeToken, OneTimeTokenStore, OutboxStore, PasswordChange, QueuedMail, RevocationStore, SessionRecord,
    SessionStore, Spend, SpendOutcome, Store, StoreError, Swapped, ThrottleKey, ThrottleStore, UserProfile, UserRecord,
    UserStore, VerifyOutcome,
};
use shared::tokens::TokenService;
use tokio::sync::Notify;

pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";

/// Why a test that needs DynamoDB did not run (or, under `REQUIRE_DYNAMODB`, failed).
pub const NO_DYNAMODB: &str =
    "no DynamoDB API (AWS_ENDPOINT_URL_DYNAMODB unset); `make test` starts one and runs these";

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: these tests need a DynamoDB API with the project's tables; run them with `make test`")
    })
}

fn is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// `REQUIRE_DYNAMODB` set to anything but empty or `0` (`make test` sets it to 1).
fn dynamodb_required() -> bool {
    std::env::var_os("REQUIRE_DYNAMODB").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Says once per test binary that its DynamoDB tests were skipped (and why), straight to
/// the process's stderr: the test harness captures `eprintln!` of passing tests.
fn note_skipped(why: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "skipped: {why}");
    });
}

/// Whether something accepts connections at `url`'s host and port (a variable left over
/// from an earlier `make dev` names a server that is gone).
fn answers(url: &str) -> bool {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:{}", if url.starts_with("https") { 443 } else { 80 })
    };
    let timeout = std::time::Duration::from_secs(2);
    with_port
        .to_socket_addrs()
        .map(|mut addrs| addrs.any(|a| std::net::TcpStream::connect_timeout(&a, timeout).is_ok()))
        .unwrap_or(false)
}

pub struct Env {
    pub client: aws_sdk_dynamodb::Client,
    pub users_table: String,
    pub revoked_table: String,
    pub sessions_table: String,
    pub tokens_table: String,
    pub outbox_table: String,
}

/// The DynamoDB API and tables to test against. `None` when AWS_ENDPOINT_URL_DYNAMODB is
/// unset or nothing answers there: the test returns at once (`let Some(env) = common::env().await else { return };`)
/// and the binary says so on stderr, so that a bare `cargo test` runs everything else.
/// With `REQUIRE_DYNAMODB` set (as `make test` does) a missing endpoint panics instead: CI
/// never skips silently. An endpoint without its tables' variables panics either way.
pub async fn env() -> Option<Env> {
    if !is_set("AWS_ENDPOINT_URL_DYNAMODB") {
        assert!(!dynamodb_required(), "{NO_DYNAMODB} (REQUIRE_DYNAMODB is set: not skipping)");
        note_skipped(NO_DYNAMODB);
        return None;
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    if !dynamodb_required() && !answers(&endpoint) {
        note_skipped(&format!(
            "nothing answers at AWS_ENDPOINT_URL_DYNAMODB ({endpoint}); `make test` starts a DynamoDB API and runs these"
        ));
        return None;
    }
    let config = shared::aws::load_sdk_config().await.expect("SDK configuration");
    Some(Env {
        client: shared::aws::dynamodb_client(&config),
        users_table: required("USERS_TABLE"),
        revoked_table: required("REVOKED_TOKENS_TABLE"),
        sessions_table: required("SESSIONS_TABLE"),
        tokens_table: required("TOKENS_TABLE"),
        outbox_table: required("OUTBOX_TABLE"),
    })
}

impl Env {
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.client.clone(), &self.users_table, &self.revoked_table, &self.sessions_table)
            .with_mail_tables(&self.tokens_table, &self.outbox_table)
    }

    /// The same tables behind an endpoint nothing listens on: connections are refused,
    /// retried, and fail as an outage would.
    pub async fn unreachable_store(&self) -> DynamoStore {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let base = shared::aws::load_sdk_config().await.expect("SDK configuration");
        let conf =
            aws_sdk_dynamodb::config::Builder::from(&base).endpoint_url(format!("http://127.0.0.1:{port}")).build();
        DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(conf),
            &self.users_table,
            &self.revoked_table,
            &self.sessions_table,
        )
    }

    pub fn auth(&self) -> Auth {
        auth_over(self.store())
    }

    /// The use cases over the real store, with one call held at `point` (see [`Hold`]):
    /// the auth, and the hold to wait on and release.
    pub fn held_auth(&self, point: HoldPoint) -> (Auth, Arc<Hold>) {
        let hold = Arc::new(Hold::new(point));
        let store = HeldStore { inner: self.store(), hold: hold.clone() };
        (auth_over_store(Arc::new(store)), hold)
    }

    /// The raw item of the revoked-tokens table under `key`, to check what was written.
    pub async fn revoked_item(&self, key: &str) -> Option<Item> {
        self.raw_item(&self.revoked_table, "jti", key).await
    }

    /// Writes an item of the revoked-tokens table as another writer (or an older version)
    /// would have: key `jti`, string attributes.
    pub async fn put_revoked_item(&self, jti: &str, attributes: &[(&str, &str)]) {
        let mut put = self.client.put_item().table_name(&self.revoked_table).item("jti", AttributeValue::S(jti.into()));
        for (name, value) in attributes {
            put = put.item(*name, AttributeValue::S(value.to_string()));
        }
        put.send().await.unwrap();
    }

    pub async fn user_item(&self, username: &str) -> Option<Item> {
        self.raw_item(&self.users_table, "username", username).await
    }

    /// The sessions-table rows of a user, read consistently.
    pub async fn session_rows(&self, user_id: &str) -> Vec<Item> {
        let out = self
            .client
            .query()
            .table_name(&self.sessions_table)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items.unwrap_or_default()
    }

    async fn raw_item(&self, table: &str, key_name: &str, key: &str) -> Option<Item> {
        let out = self.client.get_item().table_name(table).key(key_name, AttributeValue::S(key.to_string()));
        out.consistent_read(true).send().await.unwrap().item
    }
}

type Item = std::collections::HashMap<String, AttributeValue>;

/// The use cases over `store`, with the test token config and production argon2 parameters.
pub fn auth_over(store: DynamoStore) -> Auth {
    auth_over_store(Arc::new(store))
}

/// The use cases over any `Store` (the tests' only one besides DynamoStore is
/// [`HeldStore`], which is DynamoStore with one call held).
pub fn auth_over_store(store: Arc<dyn Store>) -> Auth {
    let tokens = TokenService::from_secret(token_config(), SECRET);
    let passwords = PasswordHasher::new(Argon2Config::default()).unwrap();
    Auth::new(store, Arc::new(tokens), Arc::new(passwords))
}

pub fn token_config() -> TokenConfig {
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

/// A username no other test (or earlier run against a persistent table) uses.
pub fn unique_username(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

pub fn number(item: &Item, key: &str) -> u64 {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{key} missing"))
}

// --- Forcing an interleaving ----------------------------------------------------------------

/// Which store call a [`Hold`] holds: the first one that matches, once DynamoDB has
/// answered it (so what it read or wrote is real, and the caller has not seen it yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldPoint {
    /// `login_state` for this client key (`auth::throttle::client_key`: an IPv4 address
    /// as written): a login that has read the user, its hash and its counters, and has
    /// verified nothing yet.
    LoginState { client: String },
    /// `record_session`: a login that verified the password and minted its first pair,
    /// whose session row has just been written.
    RecordSession,
}

/// One held call: the test waits until it is `reached`, does the competing operation to
/// the end, then `release`s it. Held once; every other call goes straight through.
pub struct Hold {
    point: HoldPoint,
    armed: AtomicBool,
    reached: Notify,
    released: Notify,
}

/// How long a test waits for the held call to come: a call that never comes is a test
/// that forced nothing, and fails rather than hangs.
const HOLD_WAIT: Duration = Duration::from_secs(30);

impl Hold {
    fn new(point: HoldPoint) -> Self {
        Hold { point, armed: AtomicBool::new(true), reached: Notify::new(), released: Notify::new() }
    }

    /// Waits until the held call has been made and answered (and is now waiting).
    pub async fn reached(&self) {
        tokio::time::timeout(HOLD_WAIT, self.reached.notified())
            .await
            .unwrap_or_else(|_| panic!("the held call ({:?}) never came", self.point));
    }

    /// Lets the held call return its answer.
    pub fn release(&self) {
        self.released.notify_one();
    }

    /// Called by the store after DynamoDB answered a call at `at`: holds it if it is the
    /// first one at the chosen point. (`Notify` keeps one permit, so neither side can miss
    /// the other's signal.)
    async fn pass(&self, at: HoldPoint) {
        if at == self.point && self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.released.notified().await;
        }
    }
}

/// The real DynamoDB store, every call delegated to it, with one call held (see
/// [`Hold`]): what a slow network or a descheduled Lambda does to one request, at the
/// one point where it matters. No storage of its own.
pub struct HeldStore {
    inner: DynamoStore,
    hold: Arc<Hold>,
}

#[async_trait]
impl UserStore for HeldStore {
    async fn users_with_unverified_email(&self, email: &str) -> Result<Vec<shared::store::UserRef>, StoreError> {
        self.inner.users_with_unverified_email(email).await
    }
    async fn verified_owner(&self, email: &str) -> Result<Option<String>, StoreError> {
        self.inner.verified_owner(email).await
    }
    async fn create_user_mailed(
        &self,
        user: &UserRecord,
        mailed: Option<&Mailed>,
    ) -> Result<CreateOutcome, StoreError> {
        self.inner.create_user_mailed(user, mailed).await
    }
    async fn import_user(
        &self,
        user: &UserRecord,
        password_scheme: &str,
    ) -> Result<shared::store::ImportOutcome, StoreError> {
        self.inner.import_user(user, password_scheme).await
    }
    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        self.inner.get_user(username).await
    }
    async fn user_profile(&self, username: &str) -> Result<Option<UserProfile>, StoreError> {
        self.inner.user_profile(username).await
    }
    async fn username_for_id(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.username_for_id(user_id).await
    }
    async fn replace_password_hash(&self, username: &str, old_hash: &str, new_hash: &str) -> Result<(), StoreError> {
        self.inner.replace_password_hash(username, old_hash, new_hash).await
    }
    async fn revoke_sessions_before(&self, username: &str, at_ms: u64) -> Result<(), StoreError> {
        self.inner.revoke_sessions_before(username, at_ms).await
    }
    async fn mark_email_change(&self, username: &str, user_id: &str, at_ms: u64) -> Result<bool, StoreError> {
        self.inner.mark_email_change(username, user_id, at_ms).await
    }
    async fn replace_roles(&self, username: &str, old: &[String], new: &[String]) -> Result<bool, StoreError> {
        self.inner.replace_roles(username, old, new).await
    }
    async fn set_disabled(&self, username: &str, disabled: bool, at_ms: u64) -> Result<bool, StoreError> {
        self.inner.set_disabled(username, disabled, at_ms).await
    }
    async fn change_password(
        &self,
        username: &str,
        user_id: &str,
        old_hash: &str,
        new_hash: &str,
        cutoff_ms: u64,
    ) -> Result<PasswordChange, StoreError> {
        self.inner.change_password(username, user_id, old_hash, new_hash, cutoff_ms).await
    }
    async fn delete_user(
        &self,
        username: &str,
        user_id: &str,
        password_hash: &str,
        verified_email: Option<&str>,
        counters: &[ThrottleKey],
    ) -> Result<bool, StoreError> {
        self.inner.delete_user(username, user_id, password_hash, verified_email, counters).await
    }
}

#[async_trait]
impl ThrottleStore for HeldStore {
    async fn login_state(&self, username: &str, client: &str) -> Result<LoginState, StoreError> {
        let state = self.inner.login_state(username, client).await;
        self.hold.pass(HoldPoint::LoginState { client: client.to_string() }).await;
        state
    }
    async fn swap_login_failures(
        &self,
        key: &ThrottleKey,
        seen: Option<&str>,
        next: &FailedLogins,
    ) -> Result<Swapped, StoreError> {
        self.inner.swap_login_failures(key, seen, next).await
    }
    async fn reserve_name_attempt(
        &self,
        key: &ThrottleKey,
        fresh: &FailedLogins,
        max: u32,
        now_ms: u64,
        attempt: &str,
    ) -> Result<NameAttempt, StoreError> {
        self.inner.reserve_name_attempt(key, fresh, max, now_ms, attempt).await
    }
    async fn release_name_attempt(&self, key: &ThrottleKey, window_expires_at: u64) -> Result<(), StoreError> {
        self.inner.release_name_attempt(key, window_expires_at).await
    }
    async fn clear_login_failures(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.inner.clear_login_failures(key).await
    }
}

#[async_trait]
impl RevocationStore for HeldStore {
    async fn revoke_session(&self, sid: &str, expires_at: u64) -> Result<(), StoreError> {
        self.inner.revoke_session(sid, expires_at).await
    }
    async fn access_state(&self, sid: &str, username: &str) -> Result<AccessState, StoreError> {
        self.inner.access_state(sid, username).await
    }
    async fn spend_refresh_token(&self, jti: &str, expires_at: u64, spend: &Spend) -> Result<SpendOutcome, StoreError> {
        self.inner.spend_refresh_token(jti, expires_at, spend).await
    }
}

#[async_trait]
impl OneTimeTokenStore for HeldStore {
    async fn issue_token(&self, mailed: &Mailed) -> Result<(), StoreError> {
        self.inner.issue_token(mailed).await
    }
    async fn one_time_token(&self, hash: &str) -> Result<Option<OneTimeToken>, StoreError> {
        self.inner.one_time_token(hash).await
    }
    async fn forget_token(&self, hash: &str) -> Result<(), StoreError> {
        self.inner.forget_token(hash).await
    }
    async fn put_token(&self, token: &OneTimeToken) -> Result<(), StoreError> {
        self.inner.put_token(token).await
    }
    async fn spend_token(&self, hash: &str, max: u32) -> Result<bool, StoreError> {
        self.inner.spend_token(hash, max).await
    }
    async fn count_wrong_code(&self, hash: &str, max: u32) -> Result<bool, StoreError> {
        self.inner.count_wrong_code(hash, max).await
    }
    async fn verify_email(
        &self,
        token: &OneTimeToken,
        previous: Option<&str>,
        at_ms: u64,
    ) -> Result<VerifyOutcome, StoreError> {
        self.inner.verify_email(token, previous, at_ms).await
    }
}

#[async_trait]
impl shared::store::FactorStore for HeldStore {
    async fn factor(&self, user_id: &str) -> Result<Option<shared::store::Factor>, StoreError> {
        self.inner.factor(user_id).await
    }
    async fn begin_enrolment(&self, user_id: &str, pending: &str) -> Result<bool, StoreError> {
        self.inner.begin_enrolment(user_id, pending).await
    }
    async fn confirm_enrolment(
        &self,
        user_id: &str,
        pending: &str,
        step: u64,
        codes: &[String],
    ) -> Result<bool, StoreError> {
        self.inner.confirm_enrolment(user_id, pending, step, codes).await
    }
    async fn accept_step(&self, user_id: &str, secret: &str, step: u64) -> Result<bool, StoreError> {
        self.inner.accept_step(user_id, secret, step).await
    }
    async fn use_recovery_code(&self, user_id: &str, code_hash: &str) -> Result<bool, StoreError> {
        self.inner.use_recovery_code(user_id, code_hash).await
    }
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        secret: &str,
        step: u64,
        codes: &[String],
    ) -> Result<bool, StoreError> {
        self.inner.replace_recovery_codes(user_id, secret, step, codes).await
    }
    async fn remove_factor(&self, user_id: &str, secret: Option<&str>) -> Result<bool, StoreError> {
        self.inner.remove_factor(user_id, secret).await
    }
}

#[async_trait]
impl OutboxStore for HeldStore {
    async fn queue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError> {
        self.inner.queue_mail(mail).await
    }
    async fn queued_mails(&self, limit: usize) -> Result<Vec<QueuedMail>, StoreError> {
        self.inner.queued_mails(limit).await
    }
    async fn forget_mail(&self, id: &str) -> Result<(), StoreError> {
        self.inner.forget_mail(id).await
    }
    async fn claim_mail(&self, id: &str, now_ms: u64, lease_ms: u64) -> Result<bool, StoreError> {
        self.inner.claim_mail(id, now_ms, lease_ms).await
    }
    async fn release_mail(&self, id: &str) -> Result<(), StoreError> {
        self.inner.release_mail(id).await
    }
    async fn take_mail_allowance(
        &self,
        key: &str,
        now_ms: u64,
        min_interval_ms: u64,
        max: u32,
        window_ms: u64,
    ) -> Result<bool, StoreError> {
        self.inner.take_mail_allowance(key, now_ms, min_interval_ms, max, window_ms).await
    }
}

#[async_trait]
impl SessionStore for HeldStore {
    async fn record_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let recorded = self.inner.record_session(session).await;
        self.hold.pass(HoldPoint::RecordSession).await;
        recorded
    }
    async fn touch_session(
        &self,
        user_id: &str,
        session_id: &str,
        last_used_at: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.inner.touch_session(user_id, session_id, last_used_at, expires_at).await
    }
    async fn list_sessions(&self, user_id: &str) -> Result<Vec<ListedSession>, StoreError> {
        self.inner.list_sessions(user_id).await
    }
    async fn session(&self, user_id: &str, session_id: &str) -> Result<Option<ListedSession>, StoreError> {
        self.inner.session(user_id, session_id).await
    }
    async fn forget_session(&self, user_id: &str, session_id: &str) -> Result<(), StoreError> {
        self.inner.forget_session(user_id, session_id).await
    }
    async fn forget_sessions(&self, user_id: &str) -> Result<(), StoreError> {
        self.inner.forget_sessions(user_id).await
    }
}
