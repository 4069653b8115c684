//! The user aggregate on the users table: the user item and its `id#` alias item.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::errors::{build_err, classify, condition_held, is_condition_failure};
use super::item::{
    Item, get_roles, get_s, get_u64, is_disabled, is_true, ms_to_seconds_attr, n, s, seconds_attr_to_ms, string_set,
};
use super::{DynamoStore, Transacted, email_key, factor_key, refused_at, throttle_key, user_id_key};
use crate::store::{
    CreateOutcome, ImportOutcome, Mailed, PasswordChange, StoreError, ThrottleKey, UserProfile, UserRecord, UserRef,
    UserStore,
};

/// The users table's index of addresses (`template.yaml`, `by-email`).
const EMAIL_INDEX: &str = "by-email";

pub(super) fn user_from_item(item: &Item) -> Result<UserRecord, StoreError> {
    let field = |k: &str| get_s(item, k).ok_or_else(|| StoreError::Internal(format!("user item lacks {k}")));
    Ok(UserRecord {
        user_id: field("user_id")?,
        username: field("username")?,
        password_hash: field("password_hash")?,
        roles: get_roles(item),
        email: get_s(item, "email"),
        email_verified: is_true(item, "email_verified"),
        email_verified_at_ms: seconds_attr_to_ms(item, "email_verified_at"),
        email_change_requested_at_ms: seconds_attr_to_ms(item, "email_change_requested_at"),
        created_at: get_u64(item, "created_at").unwrap_or(0),
        sessions_valid_after_ms: seconds_attr_to_ms(item, "sessions_valid_after"),
        disabled: is_disabled(item),
    })
}

/// A new user's item: everything a new user holds (its verified address and when, if it
/// comes with one); never a cutoff or the disabled flag, which only later writes set.
fn new_user_item(user: &UserRecord) -> Item {
    let mut item: Item = HashMap::from([
        ("username".into(), s(&user.username)),
        ("user_id".into(), s(&user.user_id)),
        ("password_hash".into(), s(&user.password_hash)),
        ("created_at".into(), n(user.created_at)),
    ]);
    if let Some(roles) = string_set(&user.roles) {
        item.insert("roles".into(), roles);
    }
    if let Some(email) = &user.email {
        item.insert("email".into(), s(email));
    }
    if user.email_verified {
        item.insert("email_verified".into(), AttributeValue::Bool(true));
    }
    if let Some(at) = user.email_verified_at_ms {
        item.insert("email_verified_at".into(), ms_to_seconds_attr(at));
    }
    item
}

/// A new user's id item: the id's name, for refresh tokens (which carry only `sub`).
fn id_item(user: &UserRecord) -> Item {
    HashMap::from([("username".into(), s(user_id_key(&user.user_id))), ("alias_of".into(), s(&user.username))])
}

impl DynamoStore {
    /// A put of `item` that holds only if nothing has its key yet: how names, ids and
    /// verified addresses are taken, atomically, with no read beforehand.
    fn put_new(&self, item: Item) -> aws_sdk_dynamodb::types::builders::PutBuilder {
        Put::builder()
            .table_name(&self.users_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(username)")
    }
}

fn in_transaction(put: aws_sdk_dynamodb::types::builders::PutBuilder) -> Result<TransactWriteItem, StoreError> {
    put.build().map(|p| TransactWriteItem::builder().put(p).build()).map_err(build_err)
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user_mailed(
        &self,
        user: &UserRecord,
        mailed: Option<&Mailed>,
    ) -> Result<CreateOutcome, StoreError> {
        // Both items or neither; the condition on the user item is what makes a username
        // unique. A failed condition returns the item that holds the name (ALL_OLD).
        let put = |item: Item| {
            in_transaction(
                self.put_new(item)
                    .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld),
            )
        };
        let (item, id_item) = (put(new_user_item(user))?, put(id_item(user))?);
        // An address another account has verified is refused in the same transaction: a
        // check of its claim, never a read beforehand.
        let email_free = match &user.email {
            Some(email) => vec![
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.users_table)
                            .key("username", s(email_key(email)))
                            .condition_expression("attribute_not_exists(username)")
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            ],
            None => Vec::new(),
        };
        let mail = match mailed {
            Some(mailed) => self.mailed_writes(mailed)?,
            None => Vec::new(),
        };
        let items = [vec![item, id_item], email_free.clone(), mail].concat();
        let Transacted::Refused(reasons) = self.transact(items, "a registration").await? else {
            return Ok(CreateOutcome::Created);
        };
        if let Some(user_reason) = reasons.first().filter(|_| refused_at(&reasons, 0)) {
            // Taken, unless what holds the name is this very registration: an attempt
            // the SDK retried after DynamoDB had applied it (the answer was lost); the
            // user id is fresh per registration.
            let holder = user_reason.item().and_then(|i| get_s(i, "user_id"));
            return Ok(if holder.as_deref() == Some(&user.user_id) {
                CreateOutcome::Created
            } else {
                CreateOutcome::UsernameTaken
            });
        }
        if !email_free.is_empty() && refused_at(&reasons, 2) {
            return Ok(CreateOutcome::EmailTaken);
        }
        Err(StoreError::Internal("a registration refused by an unexpected condition".into()))
    }

    async fn import_user(&self, user: &UserRecord, password_scheme: &str) -> Result<ImportOutcome, StoreError> {
        let mut item = new_user_item(user);
        if password_scheme != "argon2id" {
            item.insert("password_scheme".into(), s(password_scheme));
        }
        let mut items = vec![item, id_item(user)];
        // A verified address is claimed with the user, as a verification claims it.
        if let Some(email) = user.email.as_ref().filter(|_| user.email_verified) {
            items.push(HashMap::from([("username".into(), s(email_key(email))), ("user_id".into(), s(&user.user_id))]));
        }
        let puts = items.into_iter().map(|item| in_transaction(self.put_new(item))).collect::<Result<Vec<_>, _>>()?;
        let Transacted::Refused(reasons) = self.transact(puts, "an import").await? else {
            return Ok(ImportOutcome::Imported);
        };
        if refused_at(&reasons, 0) {
            // Taken, unless by this very user: an earlier attempt (a retried request, a
            // re-run import) that landed.
            let holder = self.user_profile(&user.username).await?;
            return Ok(if holder.is_some_and(|h| h.user_id == user.user_id) {
                ImportOutcome::AlreadyImported
            } else {
                ImportOutcome::UsernameTaken
            });
        }
        if refused_at(&reasons, 1) {
            return Ok(ImportOutcome::IdTaken);
        }
        if refused_at(&reasons, 2) {
            return Ok(ImportOutcome::EmailTaken);
        }
        Err(StoreError::Internal("an import refused by an unexpected condition".into()))
    }

    async fn get_user(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item().map(user_from_item).transpose()
    }

    async fn verified_owner(&self, email: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(email_key(email)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item().and_then(|item| get_s(item, "user_id")))
    }

    async fn users_with_unverified_email(&self, email: &str) -> Result<Vec<UserRef>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.users_table)
            .index_name(EMAIL_INDEX)
            .key_condition_expression("#email = :email")
            .expression_attribute_names("#email", "email")
            .expression_attribute_values(":email", s(email))
            .limit(100)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .items()
            .iter()
            .filter(|item| !is_true(item, "email_verified"))
            .filter_map(|item| Some(UserRef { username: get_s(item, "username")?, user_id: get_s(item, "user_id")? }))
            .collect())
    }

    async fn user_profile(&self, username: &str) -> Result<Option<UserProfile>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .projection_expression("#n, #id, #roles, #created, #dis, #email, #verified, #scheme")
            .expression_attribute_names("#n", "username")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_names("#created", "created_at")
            .expression_attribute_names("#dis", "disabled")
            .expression_attribute_names("#email", "email")
            .expression_attribute_names("#verified", "email_verified")
            .expression_attribute_names("#scheme", "password_scheme")
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = out.item() else { return Ok(None) };
        let field = |k: &str| get_s(item, k).ok_or_else(|| StoreError::Internal(format!("user item lacks {k}")));
        Ok(Some(UserProfile {
            user_id: field("user_id")?,
            username: field("username")?,
            roles: get_roles(item),
            email: get_s(item, "email"),
            email_verified: is_true(item, "email_verified"),
            created_at: get_u64(item, "created_at").unwrap_or(0),
            disabled: is_disabled(item),
            password_scheme: get_s(item, "password_scheme"),
        }))
    }

    async fn username_for_id(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(user_id_key(user_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item().and_then(|item| get_s(item, "alias_of")))
    }

    async fn replace_password_hash(&self, username: &str, old_hash: &str, new_hash: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET password_hash = :new REMOVE password_scheme")
            .condition_expression("password_hash = :old")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(old_hash))
            .send()
            .await;
        // Changed meanwhile (condition failed): the newer hash wins, nothing to do.
        condition_held(result).map(|_| ())
    }

    async fn revoke_sessions_before(&self, username: &str, at_ms: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET #after = :t")
            .condition_expression("attribute_exists(username) AND (attribute_not_exists(#after) OR #after < :t)")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_values(":t", ms_to_seconds_attr(at_ms))
            .send()
            .await;
        // Already later (a concurrent "log out everywhere"), or no such user: done.
        condition_held(result).map(|_| ())
    }

    async fn mark_email_change(&self, username: &str, user_id: &str, at_ms: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET #at = :at")
            .condition_expression("#id = :id")
            .expression_attribute_names("#at", "email_change_requested_at")
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_values(":at", ms_to_seconds_attr(at_ms))
            .expression_attribute_values(":id", s(user_id))
            .send()
            .await;
        condition_held(result)
    }

    async fn replace_roles(&self, username: &str, old: &[String], new: &[String]) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .expression_attribute_names("#roles", "roles");
        update = match string_set(new) {
            Some(set) => update.update_expression("SET #roles = :new").expression_attribute_values(":new", set),
            None => update.update_expression("REMOVE #roles"),
        };
        update = match string_set(old) {
            Some(set) => update
                .condition_expression("attribute_exists(username) AND #roles = :old")
                .expression_attribute_values(":old", set),
            None => update.condition_expression("attribute_exists(username) AND attribute_not_exists(#roles)"),
        };
        condition_held(update.send().await)
    }

    async fn set_disabled(&self, username: &str, disabled: bool, at_ms: u64) -> Result<bool, StoreError> {
        let update = || {
            self.client
                .update_item()
                .table_name(&self.users_table)
                .key("username", s(username))
                .expression_attribute_names("#dis", "disabled")
        };
        if !disabled {
            let enable = update().update_expression("REMOVE #dis").condition_expression("attribute_exists(username)");
            return condition_held(enable.send().await);
        }
        // Disabled and every session cut off, in one write...
        let with_cutoff = update()
            .update_expression("SET #dis = :true, #after = :t")
            .condition_expression("attribute_exists(username) AND (attribute_not_exists(#after) OR #after < :t)")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":t", ms_to_seconds_attr(at_ms));
        if condition_held(with_cutoff.send().await)? {
            return Ok(true);
        }
        // ...unless a later cutoff is already there (or there is no such user).
        let alone = update()
            .update_expression("SET #dis = :true")
            .condition_expression("attribute_exists(username)")
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        condition_held(alone.send().await)
    }

    async fn change_password(
        &self,
        username: &str,
        user_id: &str,
        old_hash: &str,
        new_hash: &str,
        cutoff_ms: u64,
    ) -> Result<PasswordChange, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .update_expression("SET #hash = :new, #after = :t REMOVE #scheme")
            .expression_attribute_names("#scheme", "password_scheme")
            .condition_expression(
                "#id = :id AND #hash = :old AND attribute_not_exists(#dis) \
                 AND (attribute_not_exists(#after) OR #after < :t)",
            )
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#hash", "password_hash")
            .expression_attribute_names("#after", "sessions_valid_after")
            .expression_attribute_names("#dis", "disabled")
            .expression_attribute_values(":id", s(user_id))
            .expression_attribute_values(":old", s(old_hash))
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":t", ms_to_seconds_attr(cutoff_ms))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PasswordChange::Changed),
            Err(e) if is_condition_failure(&e) => {
                // A salted hash is unique to this change: finding it stored means this very
                // write was applied by an attempt whose answer was lost (the SDK retried).
                let stored = self.get_user(username).await?;
                Ok(match stored {
                    Some(u) if u.user_id == user_id && u.password_hash == new_hash => PasswordChange::Changed,
                    _ => PasswordChange::Conflict,
                })
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn delete_user(
        &self,
        username: &str,
        user_id: &str,
        password_hash: &str,
        verified_email: Option<&str>,
        counters: &[ThrottleKey],
    ) -> Result<bool, StoreError> {
        let delete = |key: String| {
            aws_sdk_dynamodb::types::Delete::builder().table_name(&self.users_table).key("username", s(key))
        };
        let user = delete(username.to_string())
            .expression_attribute_names("#id", "user_id")
            .expression_attribute_names("#hash", "password_hash")
            .expression_attribute_names("#dis", "disabled")
            .expression_attribute_names("#verified", "email_verified")
            .expression_attribute_values(":id", s(user_id))
            .expression_attribute_values(":hash", s(password_hash))
            .expression_attribute_values(":yes", AttributeValue::Bool(true));
        // The verified address as read: its claim is released with the user.
        let user = match verified_email {
            Some(email) => user
                .condition_expression(
                    "#id = :id AND #hash = :hash AND attribute_not_exists(#dis) AND #verified = :yes AND #email = :email",
                )
                .expression_attribute_names("#email", "email")
                .expression_attribute_values(":email", s(email)),
            None => user.condition_expression(
                "#id = :id AND #hash = :hash AND attribute_not_exists(#dis) AND (attribute_not_exists(#verified) OR #verified <> :yes)",
            ),
        };
        let mut items = vec![user];
        if let Some(email) = verified_email {
            items.push(
                delete(email_key(email))
                    .condition_expression("attribute_not_exists(username) OR user_id = :id")
                    .expression_attribute_values(":id", s(user_id)),
            );
        }
        items.extend(counters.iter().map(|key| delete(throttle_key(key))));
        // A second factor goes with its user: its sealed secret is of no use to anyone else.
        items.push(delete(factor_key(user_id)));
        let mut items = items
            .into_iter()
            .map(|d| d.build().map(|d| TransactWriteItem::builder().delete(d).build()).map_err(build_err))
            .collect::<Result<Vec<_>, _>>()?;
        // The id item stays, as a tombstone: it names no user any more (no `alias_of`, so
        // tokens of the id find nobody), and no import or migration can create a user with
        // that id again, which would bring the deleted user's unexpired tokens back.
        let tombstone = Put::builder()
            .table_name(&self.users_table)
            .item("username", s(user_id_key(user_id)))
            .item(
                "deleted_at",
                n(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()),
            )
            .build()
            .map_err(build_err)?;
        items.insert(1, TransactWriteItem::builder().put(tombstone).build());
        match self.transact(items, "a deletion").await? {
            Transacted::Applied => Ok(true),
            // The user changed since it was read: nothing deleted.
            Transacted::Refused(reasons) if refused_at(&reasons, 0) => Ok(false),
            Transacted::Refused(_) => Err(StoreError::Internal("a deletion refused by an unexpected condition".into())),
        }
    }
}
