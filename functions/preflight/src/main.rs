//! OPTIONS on every route: the CORS preflight for the allowed origins. Never behind the
//! authorizer; reads only ALLOWED_ORIGINS.

fn main() -> std::process::ExitCode {
    shared::functions::preflight()
}
