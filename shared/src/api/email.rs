//! The public email routes (CONTRACT.md Part 3): proving an address, asking for another
//! verification mail, and a forgotten password. Each refuses a page
//! of an origin that is not allowed before anything else, like the sign-in routes.

use lambda_http::{Body, Request, Response};

use crate::auth::Auth;
use crate::error::AuthError;
use crate::http::{self, Browser};
use crate::spec::PublicRoute;

#[derive(serde::Deserialize)]
struct TokenBody {
    token: String,
}

#[derive(serde::Deserialize)]
struct EmailBody {
    email: String,
}

#[derive(serde::Deserialize)]
struct ForgotBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(serde::Deserialize)]
struct ResetBody {
    token: String,
    new_password: String,
}

pub(super) async fn handle(
    route: PublicRoute,
    auth: &Auth,
    browser: &Browser,
    req: &Request,
) -> Result<Response<Body>, AuthError> {
    browser.check_origin(req.headers())?;
    match route {
        PublicRoute::VerifyEmail => {
            let body: TokenBody = http::parse_json(req)?;
            Ok(http::json(200, &auth.verify_email(&body.token).await?))
        }
        PublicRoute::ResendVerification => {
            let body: EmailBody = http::parse_json(req)?;
            auth.resend_verification(&body.email).await?;
            // The same bytes whether or not an account holds the address.
            Ok(http::accepted())
        }
        PublicRoute::ForgotPassword => {
            let body: ForgotBody = http::parse_json(req)?;
            auth.forgot_password(body.email.as_deref(), body.username.as_deref()).await?;
            // The same bytes whether or not an account matched.
            Ok(http::accepted())
        }
        PublicRoute::ResetPassword => {
            let body: ResetBody = http::parse_json(req)?;
            auth.reset_password(&body.token, &body.new_password, super::request::source_ip(req)).await?;
            Ok(http::no_content())
        }
        _ => Err(AuthError::NotFound),
    }
}
