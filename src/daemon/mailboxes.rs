//! The daemon's mailbox readers: one task per `[inbound] mailboxes` folder, each handing
//! what arrives to `inbound::apply`, as `winback inbound` does.
//!
//! A reader never stops sending: its failures are logged and retried by the reader. A
//! message that cannot be applied for now (the database busy or full) is read again; one
//! that is not mail at all is logged and left in the folder.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::{Config, ImapMailbox};
use crate::inbound::apply::{ApplyError, apply};
use crate::inbound::imap::{MailboxUrl, ReadOptions, Reader};
use crate::store::SharedStore;
use crate::token::Secret;

/// Starts a reader for each configured mailbox; none without a password (setup refuses
/// that before) or in `--once` runs.
pub(super) fn start(
    config: &Config,
    password: Option<&str>,
    store: &SharedStore,
    secret: &Arc<Secret>,
    clock: Clock,
    wake: &Arc<tokio::sync::Notify>,
) {
    let Some(password) = password else { return };
    let rules = config.inbound.rules();
    for mailbox in &config.inbound.mailboxes {
        let options = ReadOptions {
            read_only: is_a_persons_inbox(config, mailbox),
            processed_folder: config.inbound.processed_folder.clone(),
        };
        let reader = match Reader::new(MailboxUrl::from(mailbox), password.to_string(), options) {
            Ok(reader) => reader,
            Err(error) => {
                tracing::error!(mailbox = %mailbox.url, %error, "cannot read this mailbox");
                continue;
            }
        };
        let (store, secret, url) = (store.clone(), secret.clone(), mailbox.url.clone());
        let applying = store.clone();
        let wake = wake.clone();
        tokio::spawn(async move {
            tracing::info!(mailbox = %url, "reading returned mail");
            reader
                .run(store, clock, move |uid, raw: Vec<u8>| {
                    let now = clock.now();
                    // The callback runs on a runtime thread and the store call may wait
                    // for the database (an import holding it): hand the thread's other
                    // tasks (delivery, HTTP) to another thread meanwhile.
                    let applied = tokio::task::block_in_place(|| {
                        applying.blocking(|store| Ok(apply(store, &raw, &secret, rules, now)))
                    })
                    .map_err(|e| e.to_string())?;
                    match applied {
                        Ok(applied) => {
                            tracing::info!(mailbox = %url, uid, outcome = %applied.record.outcome, already_seen = applied.already_seen, "returned mail read");
                            if rules.notify && applied.record.applied && !applied.already_seen {
                                // It may have queued a notice to the team.
                                wake.notify_one();
                            }
                            Ok(())
                        }
                        Err(ApplyError::NotAMessage(error)) => {
                            tracing::warn!(mailbox = %url, uid, %error, "left in the mailbox: not a mail message");
                            Ok(())
                        }
                        Err(error) => Err(error.to_string()),
                    }
                })
                .await;
        });
    }
}

/// The reply-to (or from) mailbox is a person's: read, never changed or moved.
fn is_a_persons_inbox(config: &Config, mailbox: &ImapMailbox) -> bool {
    let smtp = &config.smtp;
    std::iter::once(&smtp.from)
        .chain(smtp.reply_to.as_ref())
        .any(|person| person.email.to_string().eq_ignore_ascii_case(&mailbox.user))
}
