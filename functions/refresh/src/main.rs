//! POST /auth/refresh: a thin entry point over `shared::api::refresh`.

fn main() -> std::process::ExitCode {
    shared::functions::refresh()
}
