//! One-time tokens: a token and its mail written together, a verification that uses the
//! token, claims the address and marks the user at once; a second step's token that no
//! mail carries, used up once and ended by its fifth wrong code.

use std::sync::Arc;

use shared::store::{
    MailKind, Mailed, OneTimeToken, OneTimeTokenStore, OutboxStore, QueuedMail, TokenPurpose, UserStore, VerifyOutcome,
};

use crate::{common, user};

pub(crate) fn verification(user: &shared::store::UserRecord, email: &str) -> Mailed {
    let hash = format!("{:064x}", uuid::Uuid::new_v4().as_u128());
    Mailed {
        token: OneTimeToken {
            hash,
            purpose: TokenPurpose::VerifyEmail,
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            email: Some(email.to_string()),
            session_id: None,
            created_at_ms: 1_800_000_000_000,
            expires_at: 1_900_000_000,
        },
        mail: QueuedMail {
            id: uuid::Uuid::new_v4().to_string(),
            to: email.to_string(),
            kind: MailKind::VerifyEmail,
            username: user.username.clone(),
            email: Some(email.to_string()),
            token: Some("the-raw-token".into()),
            link_ttl_seconds: Some(86_400),
            queued_at_ms: 1_800_000_000_000,
        },
        notice: None,
    }
}

/// When the tests' verifications happen (epoch milliseconds).
const AT: u64 = 1_800_000_100_000;

pub(crate) fn address() -> String {
    format!("{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn a_token_and_its_mail_are_written_together_and_read_back_whole() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("otp"));
    store.create_user(&u).await.unwrap();
    let mailed = verification(&u, &address());
    store.issue_token(&mailed).await.unwrap();
    assert_eq!(store.one_time_token(&mailed.token.hash).await.unwrap(), Some(mailed.token.clone()));
    let queued = store.queued_mails(10_000).await.unwrap();
    assert!(queued.contains(&mailed.mail), "the mail is queued with its token");
    // Sent: forgotten, and forgetting again is fine.
    store.forget_mail(&mailed.mail.id).await.unwrap();
    store.forget_mail(&mailed.mail.id).await.unwrap();
    assert!(!store.queued_mails(10_000).await.unwrap().iter().any(|m| m.id == mailed.mail.id));
    assert_eq!(store.one_time_token("0".repeat(64).as_str()).await.unwrap(), None);
}

#[tokio::test]
async fn a_verification_uses_its_token_once_and_marks_the_user() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("verify"));
    store.create_user(&u).await.unwrap();
    let email = address();
    let mailed = verification(&u, &email);
    store.issue_token(&mailed).await.unwrap();
    assert_eq!(store.verify_email(&mailed.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    assert_eq!(store.one_time_token(&mailed.token.hash).await.unwrap(), None, "used up");
    let item = env.user_item(&u.username).await.unwrap();
    assert_eq!(item["email"].as_s().unwrap(), &email);
    assert_eq!(item["email_verified"].as_bool().unwrap(), &true);
    // Again: the token is gone, nothing changes.
    assert_eq!(store.verify_email(&mailed.token, None, AT).await.unwrap(), VerifyOutcome::TokenGone);
    // A second token of the same user for the same address: its own claim holds.
    let again = verification(&u, &email);
    store.issue_token(&again).await.unwrap();
    assert_eq!(store.verify_email(&again.token, None, AT).await.unwrap(), VerifyOutcome::UserChanged, "read before");
    assert_eq!(store.verify_email(&again.token, Some(&email), AT).await.unwrap(), VerifyOutcome::Verified);
}

#[tokio::test]
async fn a_verified_address_belongs_to_one_account_and_nothing_changes_for_the_other() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let (a, b) = (user(&common::unique_username("first")), user(&common::unique_username("second")));
    store.create_user(&a).await.unwrap();
    store.create_user(&b).await.unwrap();
    let email = address();
    let (for_a, for_b) = (verification(&a, &email), verification(&b, &email));
    store.issue_token(&for_a).await.unwrap();
    store.issue_token(&for_b).await.unwrap();
    assert_eq!(store.verify_email(&for_a.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    assert_eq!(store.verify_email(&for_b.token, None, AT).await.unwrap(), VerifyOutcome::EmailTaken);
    // The loser's token is not used up and its user is not marked.
    assert!(store.one_time_token(&for_b.token.hash).await.unwrap().is_some());
    assert!(env.user_item(&b.username).await.unwrap().get("email_verified").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_accounts_verifying_one_address_at_once_have_exactly_one_winner() {
    let Some(env) = common::env().await else { return };
    let store = Arc::new(env.store());
    let email = address();
    let mut tokens = Vec::new();
    for i in 0..2 {
        let u = user(&common::unique_username(&format!("race{i}")));
        store.create_user(&u).await.unwrap();
        let mailed = verification(&u, &email);
        store.issue_token(&mailed).await.unwrap();
        tokens.push(mailed.token);
    }
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let store = store.clone();
            tokio::spawn(async move { store.verify_email(&token, None, AT).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap());
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [VerifyOutcome::EmailTaken, VerifyOutcome::Verified]);
}

#[tokio::test]
async fn a_token_of_a_user_that_is_gone_verifies_nothing() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("gone"));
    store.create_user(&u).await.unwrap();
    let mut mailed = verification(&u, &address());
    // The name now belongs to someone else (another id).
    mailed.token.user_id = uuid::Uuid::new_v4().to_string();
    store.issue_token(&mailed).await.unwrap();
    assert_eq!(store.verify_email(&mailed.token, None, AT).await.unwrap(), VerifyOutcome::UserChanged);
    assert!(store.one_time_token(&mailed.token.hash).await.unwrap().is_some(), "nothing written");
}

#[tokio::test]
async fn deleting_a_user_frees_its_verified_address_and_only_with_the_address_as_read() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("leaver"));
    store.create_user(&u).await.unwrap();
    let email = address();
    let mailed = verification(&u, &email);
    store.issue_token(&mailed).await.unwrap();
    assert_eq!(store.verify_email(&mailed.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    let hash = u.password_hash.as_str();
    // Read before the verification (no verified address): the user changed, nothing deleted.
    assert!(!store.delete_user(&u.username, &u.user_id, hash, None, &[]).await.unwrap());
    assert!(env.user_item(&format!("email#{email}")).await.is_some());
    assert!(store.delete_user(&u.username, &u.user_id, hash, Some(&email), &[]).await.unwrap());
    assert!(env.user_item(&format!("email#{email}")).await.is_none(), "the address is free");
    // Someone else can now prove it.
    let other = user(&common::unique_username("newcomer"));
    store.create_user(&other).await.unwrap();
    let theirs = verification(&other, &email);
    store.issue_token(&theirs).await.unwrap();
    assert_eq!(store.verify_email(&theirs.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
}

#[tokio::test]
async fn a_new_address_replaces_the_verified_one_and_frees_it_and_its_notice_goes_in_the_same_write() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let u = user(&common::unique_username("mover"));
    store.create_user(&u).await.unwrap();
    let (old, new) = (address(), address());
    let first = verification(&u, &old);
    store.issue_token(&first).await.unwrap();
    assert_eq!(store.verify_email(&first.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    let mut change = verification(&u, &new);
    change.token.purpose = TokenPurpose::ChangeEmail;
    change.notice = Some(QueuedMail {
        id: uuid::Uuid::new_v4().to_string(),
        to: old.clone(),
        kind: MailKind::EmailChangeRequested,
        username: u.username.clone(),
        email: Some(new.clone()),
        token: None,
        link_ttl_seconds: None,
        queued_at_ms: 1_800_000_000_000,
    });
    store.issue_token(&change).await.unwrap();
    assert_eq!(store.one_time_token(&change.token.hash).await.unwrap(), Some(change.token.clone()));
    let queued = store.queued_mails(10_000).await.unwrap();
    assert!(queued.contains(&change.mail) && queued.contains(change.notice.as_ref().unwrap()), "both mails queued");
    // Read as unverified (stale): nothing written, the old address still claimed.
    assert_eq!(store.verify_email(&change.token, None, AT + 1).await.unwrap(), VerifyOutcome::UserChanged);
    assert_eq!(store.verify_email(&change.token, Some(&new), AT + 1).await.unwrap(), VerifyOutcome::UserChanged);
    assert_eq!(env.user_item(&u.username).await.unwrap()["email"].as_s().unwrap(), &old);
    assert!(env.user_item(&format!("email#{old}")).await.is_some());
    assert_eq!(store.verify_email(&change.token, Some(&old), AT + 1).await.unwrap(), VerifyOutcome::Verified);
    let stored = store.get_user(&u.username).await.unwrap().unwrap();
    assert_eq!((stored.email.as_deref(), stored.email_verified), (Some(new.as_str()), true));
    assert_eq!(stored.email_verified_at_ms, Some(AT + 1));
    assert!(env.user_item(&format!("email#{old}")).await.is_none(), "the old address is free");
    assert_eq!(env.user_item(&format!("email#{new}")).await.unwrap()["user_id"].as_s().unwrap(), &u.user_id);
    // Someone else can now prove the old one.
    let other = user(&common::unique_username("successor"));
    store.create_user(&other).await.unwrap();
    let theirs = verification(&other, &old);
    store.issue_token(&theirs).await.unwrap();
    assert_eq!(store.verify_email(&theirs.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_new_addresses_of_one_user_verified_at_once_leave_exactly_one_claimed() {
    let Some(env) = common::env().await else { return };
    let store = Arc::new(env.store());
    let u = user(&common::unique_username("twice"));
    store.create_user(&u).await.unwrap();
    let old = address();
    let first = verification(&u, &old);
    store.issue_token(&first).await.unwrap();
    assert_eq!(store.verify_email(&first.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    let changes: Vec<_> = (0..2).map(|_| verification(&u, &address())).collect();
    for change in &changes {
        store.issue_token(change).await.unwrap();
    }
    // Both read the old address as the one they replace.
    let handles: Vec<_> = changes
        .iter()
        .map(|change| {
            let (store, token, old) = (store.clone(), change.token.clone(), old.clone());
            tokio::spawn(async move { store.verify_email(&token, Some(&old), AT + 1).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap());
    }
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [VerifyOutcome::UserChanged, VerifyOutcome::Verified]);
    let now = store.get_user(&u.username).await.unwrap().unwrap().email.unwrap();
    for change in &changes {
        let email = change.token.email.clone().unwrap();
        let claimed = env.user_item(&format!("email#{email}")).await.is_some();
        assert_eq!(claimed, email == now, "only the address the user holds is claimed");
    }
    assert!(env.user_item(&format!("email#{old}")).await.is_none());
}

#[tokio::test]
async fn a_mail_allowance_is_one_a_minute_and_five_a_day_taken_atomically() {
    let Some(env) = common::env().await else { return };
    let store = Arc::new(env.store());
    let key = format!("verify#{}", uuid::Uuid::new_v4());
    let t0 = 1_800_000_000_000u64;
    let take = |at: u64| {
        let (store, key) = (store.clone(), key.clone());
        async move { store.take_mail_allowance(&key, at, 60_000, 5, 86_400_000).await.unwrap() }
    };
    assert!(take(t0).await);
    assert!(!take(t0 + 59_999).await, "within the minute");
    for i in 1..5 {
        assert!(take(t0 + i * 60_000).await, "mail {} of the day", i + 1);
    }
    assert!(!take(t0 + 10 * 60_000).await, "the sixth of the day");
    assert!(take(t0 + 86_400_000 + 1).await, "a new day");
    // Ten at once, a day later still: exactly one is taken.
    let later = t0 + 3 * 86_400_000;
    let handles: Vec<_> = (0..10).map(|_| tokio::spawn(take(later))).collect();
    let mut taken = 0;
    for h in handles {
        taken += h.await.unwrap() as usize;
    }
    assert_eq!(taken, 1);
}

#[tokio::test]
async fn the_accounts_holding_an_unverified_address_are_found_by_it() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let email = address();
    let mut a = user(&common::unique_username("holder"));
    a.email = Some(email.clone());
    let mut b = user(&common::unique_username("holder"));
    b.email = Some(email.clone());
    store.create_user(&a).await.unwrap();
    store.create_user(&b).await.unwrap();
    // The index is eventually consistent: moto answers at once, DynamoDB within a second.
    let mut found = Vec::new();
    for _ in 0..20 {
        found = store.users_with_unverified_email(&email).await.unwrap();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut names: Vec<_> = found.iter().map(|u| u.username.clone()).collect();
    names.sort();
    let mut want = vec![a.username.clone(), b.username.clone()];
    want.sort();
    assert_eq!(names, want);
    // Once one has verified it, only the other is found.
    let mailed = verification(&a, &email);
    store.issue_token(&mailed).await.unwrap();
    assert_eq!(store.verify_email(&mailed.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    let found = store.users_with_unverified_email(&email).await.unwrap();
    assert_eq!(found.iter().map(|u| &u.username).collect::<Vec<_>>(), [&b.username]);
}

#[tokio::test]
async fn creating_a_user_with_an_address_another_account_verified_is_refused_whole() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let owner = user(&common::unique_username("owner"));
    store.create_user(&owner).await.unwrap();
    let email = address();
    let mailed = verification(&owner, &email);
    store.issue_token(&mailed).await.unwrap();
    assert_eq!(store.verify_email(&mailed.token, None, AT).await.unwrap(), VerifyOutcome::Verified);
    let mut late = user(&common::unique_username("late"));
    late.email = Some(email.clone());
    let theirs = verification(&late, &email);
    assert_eq!(store.create_user_mailed(&late, Some(&theirs)).await.unwrap(), shared::store::CreateOutcome::EmailTaken);
    assert_eq!(store.get_user(&late.username).await.unwrap(), None);
    assert_eq!(store.one_time_token(&theirs.token.hash).await.unwrap(), None, "nothing written");
}

fn mfa_token() -> OneTimeToken {
    OneTimeToken {
        hash: format!("mfa#{:064x}", uuid::Uuid::new_v4().as_u128()),
        purpose: TokenPurpose::MfaLogin,
        user_id: uuid::Uuid::new_v4().to_string(),
        username: common::unique_username("second"),
        email: None,
        session_id: Some(uuid::Uuid::now_v7().to_string()),
        created_at_ms: 1_800_000_000_000,
        expires_at: 1_800_000_300,
    }
}

#[tokio::test]
async fn a_second_steps_token_is_read_back_whole_and_used_up_once_even_at_once() {
    let Some(env) = common::env().await else { return };
    let store = Arc::new(env.store());
    let token = mfa_token();
    store.put_token(&token).await.unwrap();
    assert_eq!(store.one_time_token(&token.hash).await.unwrap(), Some(token.clone()));
    let spends: Vec<_> = (0..4)
        .map(|_| {
            let (store, hash) = (store.clone(), token.hash.clone());
            tokio::spawn(async move { store.spend_token(&hash, 5).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for spend in spends {
        spent += usize::from(spend.await.unwrap());
    }
    assert_eq!(spent, 1, "one of four spends at once");
    assert_eq!(store.one_time_token(&token.hash).await.unwrap(), None);
    assert!(!store.spend_token(&token.hash, 5).await.unwrap());
}

#[tokio::test]
async fn a_second_steps_token_ends_at_its_fifth_wrong_code_and_a_gone_one_is_not_made_again() {
    let Some(env) = common::env().await else { return };
    let store = env.store();
    let token = mfa_token();
    store.put_token(&token).await.unwrap();
    for _ in 0..4 {
        assert!(store.count_wrong_code(&token.hash, 5).await.unwrap());
    }
    assert!(store.one_time_token(&token.hash).await.unwrap().is_some());
    // Counted to the limit (its delete lost, say): it opens nothing.
    assert!(!store.spend_token(&token.hash, 4).await.unwrap());
    assert!(!store.count_wrong_code(&token.hash, 5).await.unwrap(), "the fifth ends it");
    assert_eq!(store.one_time_token(&token.hash).await.unwrap(), None);
    // Counting against a token that is gone writes nothing back.
    assert!(!store.count_wrong_code(&token.hash, 5).await.unwrap());
    assert_eq!(store.one_time_token(&token.hash).await.unwrap(), None);
    assert!(!store.spend_token(&token.hash, 5).await.unwrap());
}
