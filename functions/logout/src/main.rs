//! POST /auth/logout (behind the authorizer): a thin entry point over `shared::api::logout`.

fn main() -> Result<(), shared::functions::Error> {
    shared::functions::logout()
}
