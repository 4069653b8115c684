//! GET /auth/me: a sample protected backend. It reads only what the authorizer put into
//! the request context; it needs no configuration, keys or database.

fn main() -> std::process::ExitCode {
    shared::functions::me()
}
