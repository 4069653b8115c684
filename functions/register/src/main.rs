//! POST /auth/register: a thin entry point over `shared::api::register`.

fn main() -> std::process::ExitCode {
    shared::functions::register()
}
