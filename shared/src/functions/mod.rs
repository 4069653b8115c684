//! The Lambda functions: the one table of what each serves and holds (`spec`), and the
//! entry points each binary's `main` calls (`entry`).

mod entry;
pub mod spec;

pub use entry::{account, admin, authorizer, discovery, login, logout, me, preflight, refresh, register, rotation};
