//! The mail outbox: a queued mail claimed by one deliverer at a time, given back, forgotten.

use shared::store::{OneTimeTokenStore, OutboxStore};

use crate::one_time::{address, verification};
use crate::{common, user};

#[tokio::test]
async fn a_queued_mail_is_claimed_by_one_deliverer_at_a_time() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("claim"));
    let mailed = verification(&u, &address());
    store.issue_token(&mailed).await.unwrap();
    let id = &mailed.mail.id;
    let t0 = 1_800_000_000_000u64;
    assert!(store.claim_mail(id, t0, 60_000).await.unwrap());
    assert!(!store.claim_mail(id, t0 + 1, 60_000).await.unwrap(), "held by the first");
    assert!(store.claim_mail(id, t0 + 60_000, 60_000).await.unwrap(), "the lease ran out");
    store.release_mail(id).await.unwrap();
    assert!(store.claim_mail(id, t0 + 60_001, 60_000).await.unwrap(), "given back");
    store.forget_mail(id).await.unwrap();
    assert!(!store.claim_mail(id, t0 + 999_999, 60_000).await.unwrap(), "gone: nothing to claim");
    store.release_mail(id).await.unwrap();
}
