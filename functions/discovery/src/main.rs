//! The public keys (`/.well-known/jwks.json`) and the OpenID discovery document
//! (`/.well-known/openid-configuration`). Reads public keys only.

fn main() -> std::process::ExitCode {
    shared::functions::discovery()
}
