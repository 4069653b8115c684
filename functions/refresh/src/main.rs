//! POST /auth/refresh: a thin entry point over `shared::api::refresh`.

fn main() -> Result<(), shared::functions::Error> {
    shared::functions::refresh()
}
