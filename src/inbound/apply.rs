//! One inbound message, from its bytes to the store: parsed (`parse`), classified
//! (`domain::inbound::classify`), matched to the message of ours it answers and applied
//! once (`Store::apply_inbound`).
//!
//! Decides nothing itself: what an outcome means is the domain's, the matching order and
//! the writing are the store's. Reads no clock (`now` is passed in) and no mailbox.

use chrono::{DateTime, Utc};

use super::verp::message_row;
use crate::domain::inbound::{Classification, Facts, InboundRules, classify};
use crate::store::{Applied, Inbound, Store, StoreError};
use crate::token::Secret;

/// The longest excerpt of a reply kept for the team, in characters.
const EXCERPT_CHARS: usize = 2000;

/// Why a message was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// Not a mail message: nothing was recorded for it.
    #[error(transparent)]
    NotAMessage(#[from] super::parse::NotAMessage),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the message is applied once by: its Message-ID, else a hash of its content.
pub(crate) fn key(facts: &Facts) -> String {
    match facts
        .message_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
    {
        Some(id) => format!("id:{id}"),
        None => format!("sha256:{}", facts.content_hash),
    }
}

/// The store's view of a classified message: what matching and applying need.
pub(crate) fn inbound(facts: &Facts, class: &Classification, secret: &Secret) -> Inbound {
    let verp_row = facts
        .envelope_recipients
        .iter()
        .find_map(|address| message_row(secret, address));
    let keeps_text = matches!(
        class.outcome,
        crate::domain::inbound::Outcome::Reply
            | crate::domain::inbound::Outcome::LeftCompany
            | crate::domain::inbound::Outcome::Unsubscribe
    );
    let excerpt = keeps_text
        .then(|| {
            facts
                .text
                .trim()
                .chars()
                .take(EXCERPT_CHARS)
                .collect::<String>()
        })
        .filter(|text| !text.is_empty());
    Inbound {
        key: key(facts),
        outcome: class.outcome,
        recipient: class.recipient.clone(),
        from: facts.from.clone(),
        verp_row,
        referenced_ids: facts.referenced_ids.clone(),
        status: class.status.clone(),
        why: class.why.clone(),
        excerpt,
        written_at: facts.date,
    }
}

/// Reads, classifies and applies one raw message.
pub(crate) fn apply(
    store: &mut Store,
    raw: &[u8],
    secret: &Secret,
    rules: InboundRules,
    now: DateTime<Utc>,
) -> Result<Applied, ApplyError> {
    let mut facts = super::parse::parse(raw)?;
    if facts.content_hash.is_empty() {
        // Never one key for every message without a Message-ID.
        use sha2::Digest;
        facts.content_hash = crate::store::lower_hex(&sha2::Sha256::digest(raw));
    }
    let class = classify(&facts);
    Ok(store.apply_inbound(&inbound(&facts, &class, secret), rules, now)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::Outcome;

    #[test]
    fn the_key_is_the_message_id_else_the_content_hash() {
        let mut facts = Facts {
            content_hash: "ab12".to_string(),
            ..Facts::default()
        };
        assert_eq!(key(&facts), "sha256:ab12");
        facts.message_id = Some("  ".to_string());
        assert_eq!(key(&facts), "sha256:ab12");
        facts.message_id = Some("x@y".to_string());
        assert_eq!(key(&facts), "id:x@y");
    }

    #[test]
    fn only_human_answers_keep_their_text() {
        let facts = Facts {
            text: "  Please call me next week.  ".to_string(),
            from: Some("pat@client.example".to_string()),
            referenced_ids: vec!["a@b".to_string()],
            ..Facts::default()
        };
        let secret = Secret::from_text("test secret");
        let class = |outcome| Classification {
            outcome,
            recipient: None,
            status: None,
            why: String::new(),
        };
        let reply = inbound(&facts, &class(Outcome::Reply), &secret);
        assert_eq!(reply.excerpt.as_deref(), Some("Please call me next week."));
        assert_eq!(reply.referenced_ids, facts.referenced_ids);
        assert_eq!(reply.from, facts.from);
        assert_eq!(
            inbound(&facts, &class(Outcome::Bounce), &secret).excerpt,
            None
        );
    }
}
