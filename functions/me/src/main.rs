//! GET /auth/me: a sample protected backend. It reads only what the authorizer put into
//! the request context (and ALLOWED_ORIGINS for CORS); it needs no keys or database.

fn main() -> std::process::ExitCode {
    shared::functions::me()
}
