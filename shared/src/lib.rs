//! Everything the auth Lambda functions have in common: configuration, tokens, password
//! hashing, storage, the use cases and the error mapping. Entry points stay thin.

pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod error;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod password;
pub mod store;
pub mod tokens;

pub use auth::{Auth, Principal};
pub use config::Config;
pub use error::AuthError;
pub mod api;
pub mod authorizer;
pub mod bootstrap;
pub mod functions;
pub mod http;
pub mod rotation;
pub mod spec;
