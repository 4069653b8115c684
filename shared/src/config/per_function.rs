//! The configuration besides `Config`: what the HTTP functions, the authorizer, the
//! rotation function, metrics and logging read. (Which function reads which variables:
//! `spec::variables_read_by`.)

use std::collections::BTreeMap;

use jsonwebtoken::Algorithm;

use super::{ConfigError, ENV_ALGORITHM, ENV_PRIVATE_KEY_ARN, ENV_PUBLIC_KEYS_ARN, ProcessEnv, Reader, Source, err};

pub const ENV_API_STAGE: &str = "API_STAGE";
/// Set by Lambda, not by the template.
pub const ENV_REGION: &str = "AWS_REGION";
pub const ENV_ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
pub const ENV_COOKIE_SAME_SITE: &str = "COOKIE_SAME_SITE";
pub const ENV_METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const ENV_METRICS_SERVICE: &str = "METRICS_SERVICE";
pub const ENV_ROUTE_ROLES: &str = "ROUTE_ROLES";
pub const ENV_ADMIN_REQUIRES_MFA: &str = "ADMIN_REQUIRES_MFA";
/// Extra roots for the HTTPS client (a local emulator's test CA).
pub const ENV_CA_BUNDLE: &str = "AWS_CA_BUNDLE";
/// The SDK's own endpoint overrides, which `aws` applies as the SDK's loader would.
pub const AWS_ENDPOINT_VARIABLES: [&str; 4] = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
];
/// The mailer's own endpoint override (Amazon SES), besides the DynamoDB one.
pub const ENV_ENDPOINT_SESV2: &str = "AWS_ENDPOINT_URL_SESV2";
/// The login function's override for a lazy migration's old directory (Amazon Cognito).
pub const ENV_ENDPOINT_COGNITO: &str = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER";

/// The deployed API: its region, and the stage an issuer left to the API is learnt from
/// (never a console test invocation's stage).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiConfig {
    pub region: String,
    pub stage: Option<String>,
}

impl ApiConfig {
    pub(super) fn from_source(source: &dyn Source) -> Self {
        let r = Reader(source);
        ApiConfig { region: r.optional(ENV_REGION).unwrap_or_default(), stage: r.optional(ENV_API_STAGE) }
    }
}

/// Browser support as configured: the allowed origins and the refresh cookie's
/// attributes, checked by `http::Browser::new`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrowserConfig {
    pub allowed_origins: Option<String>,
    pub cookie_same_site: Option<String>,
}

impl BrowserConfig {
    pub fn from_env() -> Self {
        let r = Reader(&ProcessEnv);
        BrowserConfig {
            allowed_origins: r.optional(ENV_ALLOWED_ORIGINS),
            cookie_same_site: r.optional(ENV_COOKIE_SAME_SITE),
        }
    }
}

/// CloudWatch metrics: off unless a namespace is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    pub namespace: Option<String>,
    pub service: Option<String>,
}

impl MetricsConfig {
    pub fn from_env() -> Self {
        let r = Reader(&ProcessEnv);
        MetricsConfig { namespace: r.optional(ENV_METRICS_NAMESPACE), service: r.optional(ENV_METRICS_SERVICE) }
    }
}

/// Logging as Lambda configures it (`AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT`), or
/// `RUST_LOG` elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    pub lambda_level: Option<String>,
    pub rust_log: Option<String>,
    pub json: bool,
}

impl LogConfig {
    pub fn from_env() -> Self {
        let var = |name| ProcessEnv.get(name);
        LogConfig {
            lambda_level: var("AWS_LAMBDA_LOG_LEVEL"),
            rust_log: var("RUST_LOG"),
            json: var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")),
        }
    }
}

/// The rotation function: which algorithm's keys to make, the one private key secret it
/// rotates and the public key set it keeps in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    pub algorithm: Algorithm,
    pub private_key_secret: String,
    pub public_keys_secret: String,
}

/// The mailer: where mail comes from, where its links lead, the outbox it sends from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailerConfig {
    pub mail: super::MailConfig,
}

impl MailerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader(source);
        let mail = super::MailConfig::from_reader(&r)?
            .ok_or_else(|| err(super::ENV_EMAIL_FROM, "is required: the mailer sends from it"))?;
        Ok(MailerConfig { mail })
    }
}

impl RotationConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader(source);
        let algorithm = r
            .optional(ENV_ALGORITHM)
            .and_then(|name| asymmetric_algorithm(&name))
            .ok_or_else(|| err(ENV_ALGORITHM, "must be RS256, ES256 or EdDSA for key rotation"))?;
        let public_keys_secret = r
            .optional(ENV_PUBLIC_KEYS_ARN)
            .ok_or_else(|| err(ENV_PUBLIC_KEYS_ARN, "is required: the secret the public key set is published in"))?;
        let private_key_secret = r
            .optional(ENV_PRIVATE_KEY_ARN)
            .ok_or_else(|| err(ENV_PRIVATE_KEY_ARN, "is required: the one secret this function rotates"))?;
        Ok(RotationConfig { algorithm, private_key_secret, public_keys_secret })
    }
}

/// The asymmetric algorithms (the ones with key pairs to rotate and publish), by their JOSE
/// names.
pub fn asymmetric_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// The protected routes and the roles each requires, keyed `"METHOD /path"`, from the
/// `ROUTE_ROLES` variable (a JSON object of arrays), e.g.
/// `{"GET /auth/me": [], "POST /auth/logout": [], "GET /admin/ping": ["admin"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRoles(pub BTreeMap<String, Vec<String>>);

impl RouteRoles {
    pub const ENV: &'static str = ENV_ROUTE_ROLES;

    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        let map: BTreeMap<String, Vec<String>> = serde_json::from_str(json)
            .map_err(|e| err(Self::ENV, format!("must be a JSON object of role arrays: {e}")))?;
        for key in map.keys() {
            let ok = key.split_once(' ').is_some_and(|(m, p)| !m.is_empty() && p.starts_with('/'));
            if !ok {
                return Err(err(Self::ENV, format!("bad route {key:?}; want \"METHOD /path\"")));
            }
        }
        Ok(RouteRoles(map))
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let raw = ProcessEnv.get(Self::ENV).ok_or_else(|| err(Self::ENV, "is required but not set"))?;
        Self::parse(&raw)
    }
}

/// What the authorizer enforces besides a valid session: the roles each route requires,
/// and whether the routes that require `admin` also require a second factor
/// (`ADMIN_REQUIRES_MFA`, `true` or `false`, the default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessRules {
    pub routes: RouteRoles,
    pub admin_requires_mfa: bool,
}

impl AccessRules {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader(source);
        let raw = r.required(ENV_ROUTE_ROLES)?;
        let admin_requires_mfa = match r.optional(ENV_ADMIN_REQUIRES_MFA).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(err(ENV_ADMIN_REQUIRES_MFA, format!("must be true or false, got {other:?}"))),
        };
        Ok(AccessRules { routes: RouteRoles::parse(&raw)?, admin_requires_mfa })
    }
}

/// `AWS_CA_BUNDLE`, if set.
pub fn aws_ca_bundle() -> Option<String> {
    Reader(&ProcessEnv).optional(ENV_CA_BUNDLE)
}

/// One of the SDK's own variables ([`AWS_ENDPOINT_VARIABLES`]), as set.
pub fn aws_variable(name: &str) -> Option<String> {
    ProcessEnv.get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_names_what_is_missing() {
        let ok = [(ENV_ALGORITHM, "RS256"), (ENV_PUBLIC_KEYS_ARN, "pub"), (ENV_PRIVATE_KEY_ARN, "priv")];
        let c = RotationConfig::from_source(&ok).unwrap();
        assert_eq!(
            (c.algorithm, c.private_key_secret.as_str(), c.public_keys_secret.as_str()),
            (Algorithm::RS256, "priv", "pub")
        );
        let hmac = [(ENV_ALGORITHM, "HS256"), (ENV_PUBLIC_KEYS_ARN, "pub"), (ENV_PRIVATE_KEY_ARN, "priv")];
        assert_eq!(RotationConfig::from_source(&hmac).unwrap_err().variable, ENV_ALGORITHM);
        let blank = [(ENV_ALGORITHM, "ES256"), (ENV_PUBLIC_KEYS_ARN, " "), (ENV_PRIVATE_KEY_ARN, "priv")];
        assert_eq!(RotationConfig::from_source(&blank).unwrap_err().variable, ENV_PUBLIC_KEYS_ARN);
        let missing = [(ENV_ALGORITHM, "EdDSA"), (ENV_PUBLIC_KEYS_ARN, "pub")];
        assert_eq!(RotationConfig::from_source(&missing).unwrap_err().variable, ENV_PRIVATE_KEY_ARN);
    }

    #[test]
    fn the_api_stage_is_optional() {
        assert_eq!(
            ApiConfig::from_source(&[(ENV_REGION, "eu-west-1")]),
            ApiConfig { region: "eu-west-1".into(), stage: None }
        );
        let staged = ApiConfig::from_source(&[(ENV_API_STAGE, "v1")]);
        assert_eq!(staged.stage.as_deref(), Some("v1"));
    }

    #[test]
    fn admin_mfa_is_off_unless_true() {
        let routes = r#"{"GET /admin/x": ["admin"]}"#;
        assert!(!AccessRules::from_source(&[(ENV_ROUTE_ROLES, routes)]).unwrap().admin_requires_mfa);
        let on = [(ENV_ROUTE_ROLES, routes), (ENV_ADMIN_REQUIRES_MFA, "true")];
        assert!(AccessRules::from_source(&on).unwrap().admin_requires_mfa);
        let bad = [(ENV_ROUTE_ROLES, routes), (ENV_ADMIN_REQUIRES_MFA, "yes")];
        assert_eq!(AccessRules::from_source(&bad).unwrap_err().variable, ENV_ADMIN_REQUIRES_MFA);
        assert_eq!(AccessRules::from_source(&[]).unwrap_err().variable, ENV_ROUTE_ROLES);
    }

    #[test]
    fn route_roles_want_method_and_path() {
        assert!(RouteRoles::parse(r#"{"GET /auth/me": [], "GET /admin/x": ["admin"]}"#).is_ok());
        assert_eq!(RouteRoles::parse(r#"{"/auth/me": []}"#).unwrap_err().variable, ENV_ROUTE_ROLES);
        assert_eq!(RouteRoles::parse("[]").unwrap_err().variable, ENV_ROUTE_ROLES);
    }
}
