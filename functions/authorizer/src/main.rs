//! The REST API REQUEST authorizer. Answers an IAM policy, or fails with the message
//! `Unauthorized` (API Gateway's 401), or with another error when the store is
//! unreachable (fail closed: API Gateway then refuses the call).

fn main() -> std::process::ExitCode {
    shared::functions::authorizer()
}
