//! POST /auth/logout (behind the authorizer): a thin entry point over `shared::api::logout`.

fn main() -> std::process::ExitCode {
    shared::functions::logout()
}
