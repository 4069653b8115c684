//! The caller's account, sessions and second factor. The password change answers with a
//! pair (its refresh token in the cookie in cookie mode); a change of address answers 202
//! (it happens when the new address is verified); deleting the account clears the cookie,
//! as logout does.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

use super::request::{cookie_mode, path_parameter, set_cookie, source_ip, tokens_response};
use crate::auth::mfa::Proof;
use crate::auth::{Auth, Principal};
use crate::error::AuthError;
use crate::http::{self, Browser};
use crate::spec::AuthenticatedRoute;

#[derive(Deserialize)]
struct PasswordChangeBody {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
struct PasswordBody {
    password: String,
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

/// Turning the factor off: the password, and a code of the app or a recovery code (told
/// apart by their shape: six digits are the app's).
#[derive(Deserialize)]
struct MfaRemovalBody {
    password: String,
    code: String,
}

#[derive(Deserialize)]
struct EmailChangeBody {
    email: String,
    password: String,
}

pub(super) async fn handle(
    route: AuthenticatedRoute,
    auth: &Auth,
    browser: &Browser,
    caller: Principal,
    req: &Request,
) -> Result<Response<Body>, AuthError> {
    match route {
        AuthenticatedRoute::ChangePassword => {
            let cookie = cookie_mode(req, browser)?;
            let body: PasswordChangeBody = http::parse_json(req)?;
            let pair =
                auth.change_password(&caller, &body.current_password, &body.new_password, source_ip(req)).await?;
            Ok(tokens_response(200, &pair, cookie, browser))
        }
        AuthenticatedRoute::ChangeEmail => {
            let body: EmailChangeBody = http::parse_json(req)?;
            auth.request_email_change(&caller, &body.email, &body.password, source_ip(req)).await?;
            Ok(http::accepted())
        }
        AuthenticatedRoute::DeleteAccount => {
            cookie_mode(req, browser)?;
            let body: PasswordBody = http::parse_json(req)?;
            auth.delete_account(&caller, &body.password, source_ip(req)).await?;
            Ok(set_cookie(http::no_content(), browser.clearing_cookie()))
        }
        AuthenticatedRoute::ListSessions => {
            Ok(http::json(200, &json!({ "sessions": auth.list_sessions(&caller).await? })))
        }
        AuthenticatedRoute::EndSession => {
            auth.end_session(&caller, &path_parameter(req, "id")?).await?;
            Ok(http::no_content())
        }
        AuthenticatedRoute::MfaSetup => {
            let body: PasswordBody = http::parse_json(req)?;
            Ok(http::json(200, &auth.mfa_setup(&caller, &body.password, source_ip(req)).await?))
        }
        AuthenticatedRoute::MfaConfirm => {
            let body: CodeBody = http::parse_json(req)?;
            let codes = auth.mfa_confirm(&caller, &body.code).await?;
            Ok(http::json(200, &json!({ "recovery_codes": codes })))
        }
        AuthenticatedRoute::MfaRecoveryCodes => {
            let body: CodeBody = http::parse_json(req)?;
            let codes = auth.mfa_new_recovery_codes(&caller, &body.code).await?;
            Ok(http::json(200, &json!({ "recovery_codes": codes })))
        }
        AuthenticatedRoute::MfaDisable => {
            let body: MfaRemovalBody = http::parse_json(req)?;
            auth.mfa_disable(&caller, &body.password, Proof::of(&body.code), source_ip(req)).await?;
            Ok(http::no_content())
        }
        _ => Err(AuthError::NotFound),
    }
}
