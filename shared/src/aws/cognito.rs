//! The old directory of a lazy migration, an Amazon Cognito user pool
//! (`LegacyCognitoUserPoolId`, `LegacyCognitoClientId`): `InitiateAuth` with
//! `USER_PASSWORD_AUTH` proves the password (an app client without a secret, with that flow
//! allowed), and `GetUser` with the access token it answered reads the `sub` and address of
//! the very user who signed in (never another one a name or alias might point to). Both
//! are Cognito's public, token-authorized calls: the function needs no IAM grant for them.

use async_trait::async_trait;
use aws_sdk_cognitoidentityprovider::error::DisplayErrorContext;
use aws_sdk_cognitoidentityprovider::operation::initiate_auth::InitiateAuthError;
use aws_sdk_cognitoidentityprovider::types::AuthFlowType;

use crate::auth::legacy::{LegacyDirectory, LegacyUser};
use crate::error::AuthError;

pub struct CognitoDirectory {
    client: aws_sdk_cognitoidentityprovider::Client,
    client_id: String,
}

impl CognitoDirectory {
    /// The pool is the app client's (`client_id` names it to Cognito).
    pub fn new(client: aws_sdk_cognitoidentityprovider::Client, client_id: &str) -> Self {
        CognitoDirectory { client, client_id: client_id.to_string() }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> AuthError {
    tracing::error!(error = %e, "the legacy Cognito user pool did not answer {what}");
    AuthError::Unavailable { retry_after_seconds: 1 }
}

#[async_trait]
impl LegacyDirectory for CognitoDirectory {
    async fn authenticate(&self, username: &str, password: &str) -> Result<Option<LegacyUser>, AuthError> {
        let signed_in = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", username)
            .auth_parameters("PASSWORD", password)
            .send()
            .await;
        let access_token = match signed_in {
            Ok(out) => match out.authentication_result().and_then(|r| r.access_token()) {
                Some(token) => token.to_string(),
                None => {
                    // A challenge (a new password required, a second factor): not a
                    // sign-in this service can finish for it.
                    tracing::info!(challenge = ?out.challenge_name(), "legacy Cognito sign-in needs a challenge; not migrated");
                    return Ok(None);
                }
            },
            Err(e) => {
                return match e.as_service_error() {
                    Some(
                        InitiateAuthError::NotAuthorizedException(_)
                        | InitiateAuthError::UserNotFoundException(_)
                        | InitiateAuthError::UserNotConfirmedException(_)
                        | InitiateAuthError::PasswordResetRequiredException(_),
                    ) => Ok(None),
                    _ => Err(unavailable("InitiateAuth", DisplayErrorContext(&e))),
                };
            }
        };
        // The user this very sign-in proved, by its token: not whoever a name points to.
        let user = self
            .client
            .get_user()
            .access_token(access_token)
            .send()
            .await
            .map_err(|e| unavailable("GetUser", DisplayErrorContext(&e)))?;
        let attribute = |name: &str| {
            user.user_attributes().iter().find(|a| a.name() == name).and_then(|a| a.value()).map(str::to_string)
        };
        let Some(sub) = attribute("sub") else {
            return Err(unavailable("GetUser", "a user without its sub"));
        };
        Ok(Some(LegacyUser {
            sub,
            email: attribute("email"),
            email_verified: attribute("email_verified").as_deref() == Some("true"),
        }))
    }
}
