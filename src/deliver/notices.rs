//! Sending the notices to the team (`[inbound] notify`) between delivery passes, one at a
//! time: each is claimed (committed `sending`) before its SMTP transaction and its result
//! recorded after, so a crash leaves it `uncertain`, never sent twice.
//!
//! Must not touch SQL (the store does) nor decide who is told (`domain::notice` does).

use std::sync::atomic::{AtomicBool, Ordering};

use super::{DeliverError, Deliverer};
use crate::mail::new_message_id;
use crate::mailer::SendError;
use crate::store::NoticeResult;

/// What one round of notices did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoticeReport {
    pub sent: usize,
    /// Not sent this time: tried again later, given up or uncertain.
    pub unsent: usize,
}

impl Deliverer {
    /// Sends the notices due now, until none is due, our mail server refuses us or
    /// `stopping` is set. Nothing without `[inbound] notify`: they wait for it.
    pub(crate) async fn send_notices(
        &self,
        stopping: &AtomicBool,
    ) -> Result<NoticeReport, DeliverError> {
        let mut report = NoticeReport::default();
        let Some(to) = self.config.inbound.notify.clone() else {
            return Ok(report);
        };
        let policy = self.config.smtp.retry_policy();
        while !stopping.load(Ordering::SeqCst) {
            let now = self.clock.now();
            let message_id = new_message_id(&self.config, now);
            let Some(claimed) = self
                .store
                .call(move |store| store.claim_notice(now, &message_id))
                .await?
            else {
                break;
            };
            let (id, kind) = (claimed.id, claimed.notice.kind.as_str());
            let built = self.renderer.build_notice(
                &self.config,
                &to,
                &claimed.notice,
                &claimed.message_id,
                now,
            );
            let result = match built {
                Err(error) => NoticeResult::Failed {
                    error: error.to_string(),
                },
                Ok(message) => match self.mailer.send(&message).await {
                    Ok(delivered) => NoticeResult::Sent {
                        reply: delivered.reply,
                    },
                    Err(SendError::Transient(error) | SendError::Blocked(error)) => {
                        NoticeResult::Retry { error }
                    }
                    Err(SendError::Permanent(error) | SendError::Unsupported(error)) => {
                        NoticeResult::Failed { error }
                    }
                    Err(SendError::Uncertain(error)) => NoticeResult::Uncertain { error },
                    Err(SendError::Setup(error)) => NoticeResult::Deferred { error },
                },
            };
            match &result {
                NoticeResult::Sent { reply } => {
                    report.sent += 1;
                    tracing::info!(notice = id, kind, to = %to.email, %reply, "notice to the team sent");
                }
                NoticeResult::Retry { error } | NoticeResult::Deferred { error } => {
                    report.unsent += 1;
                    tracing::warn!(notice = id, kind, to = %to.email, %error, "notice to the team not sent; will retry");
                }
                NoticeResult::Failed { error } => {
                    report.unsent += 1;
                    tracing::error!(notice = id, kind, to = %to.email, %error, "notice to the team refused; not sent (check [inbound] notify; `winback inbox` lists the event)");
                }
                NoticeResult::Uncertain { error } => {
                    report.unsent += 1;
                    tracing::error!(notice = id, kind, to = %to.email, %error, "notice to the team may or may not have arrived; not sent again");
                }
            }
            let deferred = matches!(result, NoticeResult::Deferred { .. });
            let at = self.clock.now();
            self.store
                .call(move |store| store.record_notice(id, &result, policy, at))
                .await?;
            if deferred {
                break;
            }
        }
        Ok(report)
    }
}
