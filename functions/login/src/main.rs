//! POST /auth/login: a thin entry point over `shared::api::login`.

fn main() -> std::process::ExitCode {
    shared::functions::login()
}
