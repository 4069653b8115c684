//! POST /auth/login: a thin entry point over `shared::api::login`.

fn main() -> Result<(), shared::functions::Error> {
    shared::functions::login()
}
