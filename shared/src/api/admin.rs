//! The administration routes (`spec::ADMIN`), behind the authorizer with role `admin`.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use super::request::path_parameter;
use crate::auth::admin::{ADMIN_ROLE, ImportedUser};
use crate::auth::{Auth, Principal};
use crate::error::AuthError;
use crate::http;
use crate::spec::{AuthenticatedRoute, Route};

#[derive(Deserialize)]
struct Import {
    users: Vec<ImportedUser>,
}

#[derive(Deserialize)]
struct RoleChange {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

pub(super) async fn handle(
    route: AuthenticatedRoute,
    auth: &Auth,
    admin: Principal,
    req: &Request,
) -> Result<Response<Body>, AuthError> {
    // The authorizer required the role already; checked again where it matters.
    if !admin.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(AuthError::InsufficientScope);
    }
    if route == AuthenticatedRoute::AdminImportUsers {
        let import: Import = http::parse_json_up_to(req, Route::Authenticated(route).max_body_bytes())?;
        return Ok(http::json(200, &auth.admin_import_users(&admin, import.users).await?));
    }
    let username = path_parameter(req, "username")?;
    match route {
        AuthenticatedRoute::AdminGetUser => Ok(http::json(200, &auth.admin_get_user(&username).await?)),
        AuthenticatedRoute::AdminChangeRoles => {
            let change: RoleChange = http::parse_json(req)?;
            let view = auth.admin_change_roles(&admin, &username, &change.add, &change.remove).await?;
            Ok(http::json(200, &view))
        }
        AuthenticatedRoute::AdminDisable => {
            auth.admin_set_disabled(&admin, &username, true).await?;
            Ok(http::no_content())
        }
        AuthenticatedRoute::AdminEnable => {
            auth.admin_set_disabled(&admin, &username, false).await?;
            Ok(http::no_content())
        }
        AuthenticatedRoute::AdminResetMfa => {
            auth.admin_reset_mfa(&admin, &username).await?;
            Ok(http::no_content())
        }
        _ => Err(AuthError::NotFound),
    }
}
