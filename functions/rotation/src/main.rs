//! The Secrets Manager rotation function of the private signing key: a new key pending,
//! published, tested, then current, with the public key set kept in step.

fn main() -> std::process::ExitCode {
    shared::functions::rotation()
}
