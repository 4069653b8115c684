//! The one table of Lambda functions: for each, what it answers (its routes and who may
//! call them), which keys it holds and whether it hashes passwords. The entry points, the
//! router, the configuration each function reads and `shared/functions.json` (the copy the
//! template test and the benchmarks read) all come from here; a test regenerates that copy
//! and fails when it differs.

use serde::Serialize;
use serde::ser::SerializeStruct;

mod copy;
pub use copy::{to_json, variables_read_by};

/// Which keys a function needs. Least privilege: a function that neither signs nor verifies
/// (logout, which trusts the authorizer's context) never reads any, and the template does
/// not let it; with an asymmetric algorithm, one that only verifies (the authorizer) never
/// reads the private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Keys {
    /// Signs (and so verifies): the private key, or the HMAC secret.
    #[serde(rename = "sign")]
    SignAndVerify,
    Verify,
    /// Public keys only, to publish them: none at all with HMAC (a secret is never
    /// published, so the JWKS function never reads it).
    #[serde(rename = "publish")]
    Public,
    /// The rotation function: makes new private keys and publishes their public halves,
    /// through Secrets Manager's rotation steps; it never signs or verifies a token.
    Rotate,
    None,
}

/// Who may call a route: anyone, or only a caller the authorizer let through (the handler
/// receives the caller (the `Principal` the authorizer's context names), and cannot be reached without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Caller {
    Public,
    Authenticated,
}

/// Every route of the API, public or behind the authorizer: the type a handler is chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Public(PublicRoute),
    Authenticated(AuthenticatedRoute),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRoute {
    Register,
    Login,
    Refresh,
    VerifyEmail,
    ResendVerification,
    ForgotPassword,
    ResetPassword,
    /// A multi-factor login's second step (`mfa_token` and a code).
    LoginMfa,
    Jwks,
    OpenidConfiguration,
    /// `OPTIONS` on any route: the CORS preflight, never behind the authorizer.
    Preflight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthenticatedRoute {
    Logout,
    Me,
    ChangePassword,
    ChangeEmail,
    DeleteAccount,
    ListSessions,
    EndSession,
    MfaSetup,
    MfaConfirm,
    MfaRecoveryCodes,
    MfaDisable,
    AdminGetUser,
    AdminChangeRoles,
    AdminDisable,
    AdminEnable,
    AdminImportUsers,
    AdminResetMfa,
}

impl AuthenticatedRoute {
    /// The roles the authorizer requires of the caller (every one of them): the template's
    /// `ROUTE_ROLES` is this, a test says so.
    pub fn required_roles(self) -> &'static [&'static str] {
        use AuthenticatedRoute as A;
        match self {
            A::AdminGetUser
            | A::AdminChangeRoles
            | A::AdminDisable
            | A::AdminEnable
            | A::AdminImportUsers
            | A::AdminResetMfa => &[crate::auth::admin::ADMIN_ROLE],
            A::Logout
            | A::Me
            | A::ChangePassword
            | A::ChangeEmail
            | A::DeleteAccount
            | A::ListSessions
            | A::EndSession
            | A::MfaSetup
            | A::MfaConfirm
            | A::MfaRecoveryCodes
            | A::MfaDisable => &[],
        }
    }
}

impl Route {
    pub fn caller(self) -> Caller {
        match self {
            Route::Public(_) => Caller::Public,
            Route::Authenticated(_) => Caller::Authenticated,
        }
    }

    /// The largest body the route takes: the contract's 8 KiB, on every route, those that
    /// read no body too; a batch import of users (100 with their hashes) has its own.
    pub fn max_body_bytes(self) -> usize {
        match self {
            Route::Authenticated(AuthenticatedRoute::AdminImportUsers) => crate::http::MAX_IMPORT_BODY_BYTES,
            _ => crate::http::MAX_BODY_BYTES,
        }
    }
}

/// A route as API Gateway names it: the method and the resource path (with its
/// `{parameters}`), and what serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    /// The resource path; `*` for every path (the preflight).
    pub path: &'static str,
    pub route: Route,
}

impl Serialize for RouteSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut r = s.serialize_struct("RouteSpec", 4)?;
        r.serialize_field("method", self.method)?;
        r.serialize_field("path", self.path)?;
        r.serialize_field("caller", &self.route.caller())?;
        let roles = match self.route {
            Route::Authenticated(route) => route.required_roles(),
            Route::Public(_) => &[],
        };
        r.serialize_field("roles", roles)?;
        r.end()
    }
}

/// What invokes a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// API Gateway proxy requests on the function's routes.
    Http(HttpFunction),
    /// API Gateway's REQUEST authorizer event.
    Authorizer,
    /// Secrets Manager's rotation steps.
    Rotation,
    /// The outbox table's stream, and a schedule: deliver what is queued.
    Mailer,
}

/// The functions behind API Gateway's proxy integration, by what they need at cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFunction {
    /// Runs use cases: configuration, store, and keys as [`FunctionSpec::keys`] says.
    UseCases(UseCaseFunction),
    /// Answers from the request and the allowed origins alone.
    Stateless(StatelessFunction),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseCaseFunction {
    Register,
    Login,
    Refresh,
    Logout,
    Account,
    Admin,
    Discovery,
    Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatelessFunction {
    /// Answers from the authorizer's context alone.
    Me,
    /// Answers from the allowed origins alone.
    Preflight,
}

/// One Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The binary's name (`functions/<name>`), the metrics' `Function` dimension.
    pub name: &'static str,
    /// Its resource in template.yaml.
    pub logical_id: &'static str,
    pub event: Event,
    pub keys: Keys,
    /// Hashes or verifies passwords: built at opt-level 3 (argon2 at full speed, see the
    /// workspace Cargo.toml) and prepares argon2's memory at its cold start.
    pub hashes_passwords: bool,
    /// Holds the key that opens TOTP secrets (`MFA_KEY_ARN`): verifies second-factor codes.
    pub factor_key: bool,
    pub routes: &'static [RouteSpec],
}

impl FunctionSpec {
    /// The route API Gateway matched (`method`, resource path), if this function serves it.
    /// A function of one route serves it on whatever route it is wired to (API Gateway sends
    /// it nothing else; the sample `me` backend behind another path, the local API's
    /// `--extra-route`); a function of several tells them apart by method and resource.
    pub fn route(&self, method: &str, resource: &str) -> Option<Route> {
        if let [only] = self.routes {
            return Some(only.route);
        }
        self.routes.iter().find(|r| r.method.eq_ignore_ascii_case(method) && r.path == resource).map(|r| r.route)
    }
}

const fn public(method: &'static str, path: &'static str, route: PublicRoute) -> RouteSpec {
    RouteSpec { method, path, route: Route::Public(route) }
}

const fn authenticated(method: &'static str, path: &'static str, route: AuthenticatedRoute) -> RouteSpec {
    RouteSpec { method, path, route: Route::Authenticated(route) }
}

use AuthenticatedRoute as A;
use PublicRoute as P;

pub static REGISTER: FunctionSpec = FunctionSpec {
    name: "register",
    logical_id: "RegisterFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Register)),
    keys: Keys::SignAndVerify,
    hashes_passwords: true,
    factor_key: false,
    routes: &[public("POST", "/auth/register", P::Register)],
};

pub static LOGIN: FunctionSpec = FunctionSpec {
    name: "login",
    logical_id: "LoginFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Login)),
    keys: Keys::SignAndVerify,
    hashes_passwords: true,
    factor_key: true,
    routes: &[public("POST", "/auth/login", P::Login), public("POST", "/auth/login/mfa", P::LoginMfa)],
};

pub static REFRESH: FunctionSpec = FunctionSpec {
    name: "refresh",
    logical_id: "RefreshFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Refresh)),
    keys: Keys::SignAndVerify,
    hashes_passwords: false,
    factor_key: false,
    routes: &[public("POST", "/auth/refresh", P::Refresh)],
};

/// Behind the authorizer, which verified the token: logout needs no key.
pub static LOGOUT: FunctionSpec = FunctionSpec {
    name: "logout",
    logical_id: "LogoutFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Logout)),
    keys: Keys::None,
    hashes_passwords: false,
    factor_key: false,
    routes: &[authenticated("POST", "/auth/logout", A::Logout)],
};

/// Reads only what the authorizer put into the request context: no keys, no store.
pub static ME: FunctionSpec = FunctionSpec {
    name: "me",
    logical_id: "MeFunction",
    event: Event::Http(HttpFunction::Stateless(StatelessFunction::Me)),
    keys: Keys::None,
    hashes_passwords: false,
    factor_key: false,
    routes: &[authenticated("GET", "/auth/me", A::Me)],
};

/// The caller's account. Signs: a password change answers with a fresh pair. Queues mail
/// (notices, a new address's verification), and never sends it.
pub static ACCOUNT: FunctionSpec = FunctionSpec {
    name: "account",
    logical_id: "AccountFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Account)),
    keys: Keys::SignAndVerify,
    hashes_passwords: true,
    factor_key: true,
    routes: &[
        authenticated("POST", "/auth/password", A::ChangePassword),
        authenticated("POST", "/auth/email", A::ChangeEmail),
        authenticated("DELETE", "/auth/account", A::DeleteAccount),
        authenticated("GET", "/auth/sessions", A::ListSessions),
        authenticated("DELETE", "/auth/sessions/{id}", A::EndSession),
        authenticated("POST", "/auth/mfa/totp/setup", A::MfaSetup),
        authenticated("POST", "/auth/mfa/totp/confirm", A::MfaConfirm),
        authenticated("POST", "/auth/mfa/recovery-codes", A::MfaRecoveryCodes),
        authenticated("DELETE", "/auth/mfa/totp", A::MfaDisable),
    ],
};

/// The public email routes: proving an address, and a forgotten password. Holds no keys:
/// it issues no tokens (after a reset the user signs in). Hashes the new password.
pub static EMAIL: FunctionSpec = FunctionSpec {
    name: "email",
    logical_id: "EmailFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Email)),
    keys: Keys::None,
    hashes_passwords: true,
    factor_key: false,
    routes: &[
        public("POST", "/auth/email/verify", P::VerifyEmail),
        public("POST", "/auth/email/resend", P::ResendVerification),
        public("POST", "/auth/password/forgot", P::ForgotPassword),
        public("POST", "/auth/password/reset", P::ResetPassword),
    ],
};

/// Public keys only (none with HMAC).
pub static DISCOVERY: FunctionSpec = FunctionSpec {
    name: "discovery",
    logical_id: "DiscoveryFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Discovery)),
    keys: Keys::Public,
    hashes_passwords: false,
    factor_key: false,
    routes: &[
        public("GET", "/.well-known/jwks.json", P::Jwks),
        public("GET", "/.well-known/openid-configuration", P::OpenidConfiguration),
    ],
};

/// Behind the authorizer with role `admin`; neither signs nor verifies tokens.
pub static ADMIN: FunctionSpec = FunctionSpec {
    name: "admin",
    logical_id: "AdminFunction",
    event: Event::Http(HttpFunction::UseCases(UseCaseFunction::Admin)),
    keys: Keys::None,
    hashes_passwords: false,
    factor_key: false,
    routes: &[
        authenticated("GET", "/admin/users/{username}", A::AdminGetUser),
        authenticated("POST", "/admin/users/{username}/roles", A::AdminChangeRoles),
        authenticated("POST", "/admin/users/{username}/disable", A::AdminDisable),
        authenticated("POST", "/admin/users/{username}/enable", A::AdminEnable),
        authenticated("POST", "/admin/users/import", A::AdminImportUsers),
        authenticated("POST", "/admin/users/{username}/mfa/reset", A::AdminResetMfa),
    ],
};

/// OPTIONS on every route: the CORS preflight, from the allowed origins alone.
pub static PREFLIGHT: FunctionSpec = FunctionSpec {
    name: "preflight",
    logical_id: "PreflightFunction",
    event: Event::Http(HttpFunction::Stateless(StatelessFunction::Preflight)),
    keys: Keys::None,
    hashes_passwords: false,
    factor_key: false,
    // Wired as `ANY` on every path: API Gateway sends it the methods no other function
    // takes there, OPTIONS (the CORS preflight) and the rest (405 with `Allow`).
    routes: &[public("ANY", "*", P::Preflight)],
};

/// The REST API's REQUEST authorizer: verifies, reads the store once, never signs.
pub static AUTHORIZER: FunctionSpec = FunctionSpec {
    name: "authorizer",
    logical_id: "AuthorizerFunction",
    event: Event::Authorizer,
    keys: Keys::Verify,
    hashes_passwords: false,
    factor_key: false,
    routes: &[],
};

/// Sends the queued mail through Amazon SES: started by the outbox's stream and by a
/// schedule that sweeps what the stream's retries gave up on.
pub static MAILER: FunctionSpec = FunctionSpec {
    name: "mailer",
    logical_id: "MailerFunction",
    event: Event::Mailer,
    keys: Keys::None,
    hashes_passwords: false,
    factor_key: false,
    routes: &[],
};

/// The Secrets Manager rotation function of the private signing key.
pub static ROTATION: FunctionSpec = FunctionSpec {
    name: "rotation",
    logical_id: "KeyRotationFunction",
    event: Event::Rotation,
    keys: Keys::Rotate,
    hashes_passwords: false,
    factor_key: false,
    routes: &[],
};

/// Every function, in the order the docs list them.
pub static FUNCTIONS: [&FunctionSpec; 13] = [
    &REGISTER,
    &LOGIN,
    &REFRESH,
    &LOGOUT,
    &ME,
    &ACCOUNT,
    &EMAIL,
    &DISCOVERY,
    &ADMIN,
    &PREFLIGHT,
    &AUTHORIZER,
    &ROTATION,
    &MAILER,
];

/// The methods the API takes on `path` (a resource path such as `/auth/sessions/{id}`),
/// `OPTIONS` (the preflight, on every path) included: an `Allow` header's value. `None`
/// for a path that is no route.
pub fn allowed_methods(path: &str) -> Option<String> {
    let mut methods: Vec<&str> =
        FUNCTIONS.iter().flat_map(|f| f.routes).filter(|r| r.path == path).map(|r| r.method).collect();
    if methods.is_empty() {
        return None;
    }
    methods.push("OPTIONS");
    methods.sort_unstable();
    methods.dedup();
    Some(methods.join(", "))
}

/// The function named `name` (a binary's name), if there is one.
pub fn by_name(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().copied().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/functions.json");

    #[test]
    fn the_checked_in_copy_is_the_table() {
        let expected = to_json();
        if std::env::var_os("UPDATE_FUNCTIONS_JSON").is_some() {
            std::fs::write(COPY, &expected).expect("write shared/functions.json");
        }
        let actual = std::fs::read_to_string(COPY).unwrap_or_default();
        assert!(
            actual == expected,
            "shared/functions.json is not the table in shared/src/spec.rs; \
             regenerate it: UPDATE_FUNCTIONS_JSON=1 cargo test -p shared --lib spec::"
        );
    }

    #[test]
    fn names_and_logical_ids_are_unique_and_http_functions_point_back_at_their_spec() {
        let mut names: Vec<_> = FUNCTIONS.iter().map(|f| f.name).collect();
        let mut ids: Vec<_> = FUNCTIONS.iter().map(|f| f.logical_id).collect();
        names.sort();
        names.dedup();
        ids.sort();
        ids.dedup();
        assert_eq!((names.len(), ids.len()), (FUNCTIONS.len(), FUNCTIONS.len()));
        for f in FUNCTIONS {
            assert_eq!(by_name(f.name), Some(f));
            if let Event::Http(_) = f.event {
                assert!(!f.routes.is_empty(), "{} serves no route", f.name);
            } else {
                assert!(f.routes.is_empty(), "{} is not behind API Gateway's proxy", f.name);
            }
        }
    }

    #[test]
    fn every_route_is_served_by_one_function_only() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FUNCTIONS {
            for r in f.routes {
                assert!(seen.insert((r.method, r.path)), "{} {} twice", r.method, r.path);
            }
        }
    }

    #[test]
    fn routes_are_found_by_method_and_resource_path() {
        assert_eq!(ACCOUNT.route("DELETE", "/auth/sessions/{id}"), Some(Route::Authenticated(A::EndSession)));
        assert_eq!(ACCOUNT.route("GET", "/auth/sessions/{id}"), None);
        assert_eq!(ACCOUNT.route("POST", "/auth/login"), None);
        assert_eq!(PREFLIGHT.route("OPTIONS", "/auth/anything"), Some(Route::Public(P::Preflight)));
        assert_eq!(DISCOVERY.route("GET", "/auth/me"), None);
        // One route: served wherever the function is wired.
        assert_eq!(ME.route("GET", "/admin/whoami"), Some(Route::Authenticated(A::Me)));
    }

    #[test]
    fn each_function_reads_what_its_row_needs() {
        let login = variables_read_by(&LOGIN);
        assert!(
            login.contains(&"USERS_TABLE") && login.contains(&"ALLOWED_ORIGINS") && !login.contains(&"ROUTE_ROLES")
        );
        let authorizer = variables_read_by(&AUTHORIZER);
        assert!(authorizer.contains(&"ROUTE_ROLES") && !authorizer.contains(&"ALLOWED_ORIGINS"));
        assert!(!variables_read_by(&PREFLIGHT).contains(&"USERS_TABLE"));
        let rotation = variables_read_by(&ROTATION);
        assert!(rotation.contains(&"JWT_PRIVATE_KEY_ARN") && !rotation.contains(&"USERS_TABLE"));
    }
}
