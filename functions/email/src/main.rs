//! The `email` Lambda function. What it serves and which keys it holds is its row of the
//! table of functions, `shared/src/spec.rs`.

fn main() -> std::process::ExitCode {
    shared::functions::email()
}
