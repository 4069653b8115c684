//! The caller's account: change the password, delete the account, list the sessions and
//! end one. Behind the authorizer.

fn main() -> std::process::ExitCode {
    shared::functions::account()
}
