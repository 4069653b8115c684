//! POST /auth/register: a thin entry point over `shared::api::register`.

fn main() -> Result<(), shared::functions::Error> {
    shared::functions::register()
}
