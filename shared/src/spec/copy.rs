//! What the table says beyond its rows: the variables each function reads, and the
//! machine-readable copy (`shared/functions.json`) the template test and the benchmarks read.

use super::{Event, FUNCTIONS, FunctionSpec, HttpFunction, LOGIN};
use crate::config::{self, per_function};

/// Every variable `function` reads that a deployment sets (the template, or
/// `events/env.json` for `sam local invoke`). Lambda's own (`AWS_REGION`, credentials,
/// `AWS_LAMBDA_LOG_*`) are read too and not listed.
pub fn variables_read_by(function: &FunctionSpec) -> Vec<&'static str> {
    let mut vars = vec![per_function::ENV_METRICS_NAMESPACE, per_function::ENV_METRICS_SERVICE];
    if let Event::Http(_) = function.event {
        vars.extend([per_function::ENV_ALLOWED_ORIGINS, per_function::ENV_COOKIE_SAME_SITE]);
    }
    let use_cases = matches!(function.event, Event::Http(HttpFunction::UseCases(_)) | Event::Authorizer);
    if use_cases {
        vars.extend(config::CONFIG_VARIABLES);
        vars.push(per_function::ENV_API_STAGE);
    }
    if function.event == Event::Authorizer {
        vars.extend([per_function::ENV_ROUTE_ROLES, per_function::ENV_ADMIN_REQUIRES_MFA]);
    }
    if function.factor_key {
        vars.extend(config::MFA_VARIABLES);
    }
    if function.name == LOGIN.name {
        // A lazy migration's old directory (LegacyCognitoUserPoolId).
        vars.push(per_function::ENV_ENDPOINT_COGNITO);
    }
    if function.event == Event::Rotation {
        vars.extend([config::ENV_ALGORITHM, config::ENV_PRIVATE_KEY_ARN, config::ENV_PUBLIC_KEYS_ARN]);
    }
    if function.event == Event::Mailer {
        vars.extend([config::ENV_EMAIL_FROM, config::ENV_APP_URL, config::ENV_TOKENS_TABLE, config::ENV_OUTBOX_TABLE]);
        vars.push(per_function::ENV_ENDPOINT_SESV2);
    }
    if use_cases || matches!(function.event, Event::Rotation | Event::Mailer) {
        vars.push(per_function::ENV_CA_BUNDLE);
        vars.extend(per_function::AWS_ENDPOINT_VARIABLES);
    }
    vars.sort_unstable();
    vars.dedup();
    vars
}

/// The machine-readable copy (`shared/functions.json`): the table, with the variables each
/// function reads ([`variables_read_by`]).
pub fn to_json() -> String {
    let functions: Vec<serde_json::Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let event = match f.event {
                Event::Http(_) => "http",
                Event::Authorizer => "authorizer",
                Event::Rotation => "rotation",
                Event::Mailer => "mailer",
            };
            serde_json::json!({
                "name": f.name,
                "logical_id": f.logical_id,
                "event": event,
                "keys": f.keys,
                "hashes_passwords": f.hashes_passwords,
                "factor_key": f.factor_key,
                "routes": f.routes,
                "variables": variables_read_by(f),
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&functions).expect("the table serializes");
    text.push('\n');
    text
}
