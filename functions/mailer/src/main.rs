//! The `mailer` Lambda function. What starts it and what it reads is its row of the table
//! of functions, `shared/src/spec.rs`.

fn main() -> std::process::ExitCode {
    shared::functions::mailer()
}
