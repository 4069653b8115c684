//! Key rotation: a Secrets Manager rotation function for the private signing key, in the
//! four steps Secrets Manager calls it with. The private key secret holds one key document
//! per version (`{"kid", "alg", "pkcs8"}`); a second secret holds the public JWK Set every
//! verifier reads, always the newest two keys: during a rotation the pending key and the
//! current one (so verifiers know the new key before it signs anything), after it the new
//! current and the previous one (so tokens signed before it keep verifying until they
//! expire).

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::tokens::{Jwks, KeySet, PrivateKey, Subject, TokenService};

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";

/// What Secrets Manager sends a rotation function.
#[derive(Debug, Deserialize)]
pub struct RotationEvent {
    #[serde(rename = "Step")]
    pub step: String,
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("secrets manager: {0}")]
    Store(String),
    #[error("version {0} of the secret is not pending: no rotation of it is under way")]
    NotPending(String),
    #[error("asked to rotate {0}, which is not the signing key secret this function rotates")]
    NotOurs(String),
    #[error("unknown rotation step {0:?}")]
    UnknownStep(String),
    #[error("the pending key does not sign and verify: {0}")]
    Test(String),
    #[error("key: {0}")]
    Key(String),
}

fn store_error<E: ProvideErrorMetadata>(e: E) -> RotationError {
    // The error code only: never a response body (which could hold a secret value).
    RotationError::Store(e.code().unwrap_or("unreachable").to_string())
}

/// The rotation function's state: the client, the algorithm new keys are made with, and
/// the public key set secret it keeps in step.
pub struct Rotation {
    pub client: Client,
    /// The one secret this function rotates (its ARN, as Secrets Manager sends it).
    pub private_key_secret: String,
    pub algorithm: Algorithm,
    pub public_keys_secret: String,
}

impl Rotation {
    pub async fn handle(&self, event: &RotationEvent) -> Result<(), RotationError> {
        // This function rotates one secret: the signing key it was deployed for. Pointed at
        // any other, it would publish that secret's key as a key every verifier trusts.
        if event.secret_id != self.private_key_secret {
            return Err(RotationError::NotOurs(event.secret_id.clone()));
        }
        let stages = self.stages_of(&event.secret_id, &event.token).await?;
        if stages.iter().any(|s| s == AWSCURRENT) && event.step != "finishSecret" {
            // This version is current already: a retried step of a finished rotation.
            return Ok(());
        }
        // createSecret makes the pending version; every later step needs it.
        if event.step != "createSecret" && !stages.iter().any(|s| s == AWSPENDING || s == AWSCURRENT) {
            return Err(RotationError::NotPending(event.token.clone()));
        }
        match event.step.as_str() {
            "createSecret" => self.create(event).await,
            "setSecret" => self.publish(&event.secret_id, Some(&event.token)).await,
            "testSecret" => self.test(event).await,
            "finishSecret" => self.finish(event).await,
            other => Err(RotationError::UnknownStep(other.to_string())),
        }
    }

    /// The stages of version `token` (none if there is no such version yet).
    async fn stages_of(&self, secret_id: &str, token: &str) -> Result<Vec<String>, RotationError> {
        let out = self.client.describe_secret().secret_id(secret_id).send().await.map_err(store_error)?;
        Ok(out.version_ids_to_stages().and_then(|v| v.get(token)).cloned().unwrap_or_default())
    }

    async fn key(&self, secret_id: &str, version: Version<'_>) -> Result<Option<PrivateKey>, RotationError> {
        let mut get = self.client.get_secret_value().secret_id(secret_id);
        get = match version {
            Version::Stage(stage) => get.version_stage(stage),
            Version::Pending(token) => get.version_id(token).version_stage(AWSPENDING),
        };
        match get.send().await {
            Ok(out) => Ok(out.secret_string().and_then(|text| PrivateKey::from_json(text).ok())),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    /// createSecret: a new key under AWSPENDING for this version, unless it has a value
    /// already (a retried step; testSecret judges what it holds).
    async fn create(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let pending = self
            .client
            .get_secret_value()
            .secret_id(&event.secret_id)
            .version_id(&event.token)
            .version_stage(AWSPENDING)
            .send()
            .await;
        match pending {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(store_error(e)),
        }
        // Named by its thumbprint, not by anything in the request (a caller allowed to
        // rotate could otherwise make the new kid collide with the current key's).
        let key =
            PrivateKey::generate_with_thumbprint_kid(self.algorithm).map_err(|e| RotationError::Key(e.to_string()))?;
        let kid = key.kid().to_string();
        self.client
            .put_secret_value()
            .secret_id(&event.secret_id)
            .client_request_token(&event.token)
            .secret_string(key.to_json().as_str())
            .version_stages(AWSPENDING)
            .send()
            .await
            .map_err(store_error)?;
        tracing::info!(kid, "rotation: new signing key pending");
        Ok(())
    }

    /// setSecret (and after finishSecret): the public set is the pending key (if any) and
    /// the current one, or after the rotation the current and the previous one.
    async fn publish(&self, secret_id: &str, pending: Option<&str>) -> Result<(), RotationError> {
        let mut keys = Vec::new();
        let versions: Vec<Version> = match pending {
            Some(token) => vec![Version::Pending(token), Version::Stage(AWSCURRENT)],
            None => vec![Version::Stage(AWSCURRENT), Version::Stage("AWSPREVIOUS")],
        };
        for version in versions {
            // A version that holds no key (the placeholder before the first rotation) is
            // simply not published.
            if let Some(key) = self.key(secret_id, version).await? {
                let jwk = key.public_jwk().map_err(|e| RotationError::Key(e.to_string()))?;
                if !keys.iter().any(|k: &crate::tokens::PublicJwk| k.kid == jwk.kid) {
                    keys.push(jwk);
                }
            }
        }
        let text = serde_json::to_string(&Jwks { keys }).map_err(|e| RotationError::Key(e.to_string()))?;
        self.client
            .put_secret_value()
            .secret_id(&self.public_keys_secret)
            .secret_string(text)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// testSecret: the pending key signs a token its own public key verifies.
    async fn test(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let key = self
            .key(&event.secret_id, Version::Pending(&event.token))
            .await?
            .ok_or_else(|| RotationError::Test("no pending key".into()))?;
        let jwk = key.public_jwk().map_err(|e| RotationError::Test(e.to_string()))?;
        let keys = KeySet::new().with_jwk(&jwk).ok_or_else(|| RotationError::Test("unusable public key".into()))?;
        let config = crate::config::TokenConfig {
            issuer: "rotation-test".into(),
            audience: "rotation-test".into(),
            algorithm: key.algorithm(),
            key_id: key.kid().to_string(),
            access_ttl_seconds: 60,
            refresh_ttl_seconds: 120,
            leeway_seconds: 0,
        };
        let service = TokenService::new(config, key.signing_key(), keys);
        let now = crate::clock::now_ms() / 1000;
        let pair = service
            .issue_pair(Subject { user_id: "probe", username: "probe", roles: &[] }, "probe", now)
            .map_err(|e| RotationError::Test(e.to_string()))?;
        service.verify_access(&pair.access_token).map_err(|e| RotationError::Test(e.to_string()))?;
        Ok(())
    }

    /// finishSecret: this version becomes AWSCURRENT (the old one AWSPREVIOUS), and the
    /// public set becomes the new current and the previous key.
    async fn finish(&self, event: &RotationEvent) -> Result<(), RotationError> {
        let out = self.client.describe_secret().secret_id(&event.secret_id).send().await.map_err(store_error)?;
        let current = out
            .version_ids_to_stages()
            .and_then(|v| v.iter().find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT)))
            .map(|(id, _)| id.clone());
        if current.as_deref() != Some(event.token.as_str()) {
            let mut update = self
                .client
                .update_secret_version_stage()
                .secret_id(&event.secret_id)
                .version_stage(AWSCURRENT)
                .move_to_version_id(&event.token);
            if let Some(current) = current {
                update = update.remove_from_version_id(current);
            }
            update.send().await.map_err(store_error)?;
        }
        self.publish(&event.secret_id, None).await?;
        tracing::info!(version = %event.token, "rotation: new signing key current");
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Version<'a> {
    Stage(&'a str),
    Pending(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_keys_id_is_its_thumbprint_whatever_the_request() {
        for algorithm in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = PrivateKey::generate_with_thumbprint_kid(algorithm).unwrap();
            let jwk = key.public_jwk().unwrap();
            assert_eq!(key.kid(), jwk.thumbprint());
            assert_eq!(key.kid().len(), 43);
            // It loads back under that id (a valid kid).
            assert_eq!(PrivateKey::from_json(&key.to_json()).unwrap().kid(), key.kid());
        }
        let event: RotationEvent =
            serde_json::from_str(r#"{"Step": "createSecret", "SecretId": "arn:x", "ClientRequestToken": "t"}"#)
                .unwrap();
        assert_eq!(
            (event.step.as_str(), event.secret_id.as_str(), event.token.as_str()),
            ("createSecret", "arn:x", "t")
        );
    }
}
