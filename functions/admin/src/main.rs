//! The administration routes: read a user, change roles, disable and enable. Behind the
//! authorizer (role `admin`).

fn main() -> std::process::ExitCode {
    shared::functions::admin()
}
