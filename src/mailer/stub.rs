//! `StubMailer`: a recording [`Mailer`] for unit tests, after lettre's `StubTransport`.
//!
//! Owns the list of messages it was handed and the scripted answers for chosen
//! recipients. It must not touch the network or the disk; end-to-end tests go through
//! real SMTP instead.

use std::sync::{Mutex, PoisonError};

use super::{Delivered, Mailer, OutgoingMessage, SendError};

/// Records every message handed to `send` and answers `250 2.0.0 Ok: queued` unless a
/// scripted failure for that recipient says otherwise.
#[derive(Debug, Default)]
pub(crate) struct StubMailer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    attempts: Vec<Attempt>,
    scripts: Vec<Script>,
}

#[derive(Debug)]
struct Attempt {
    message: OutgoingMessage,
    accepted: bool,
}

#[derive(Debug)]
struct Script {
    to: String,
    error: SendError,
    /// `None`: every time; `Some(n)`: the next `n` sends to `to`.
    remaining: Option<usize>,
}

impl StubMailer {
    pub(crate) fn new() -> StubMailer {
        StubMailer::default()
    }

    /// Every send to `to` (compared case-insensitively) fails with `error` from now on.
    pub(crate) fn fail_with(&self, to: &str, error: SendError) {
        self.script(to, error, None);
    }

    /// The next `times` sends to `to` fail with `error`; later ones succeed again
    /// (unless another script for `to` applies). Scripts are used in the order given.
    pub(crate) fn fail_first(&self, to: &str, error: SendError, times: usize) {
        self.script(to, error, Some(times));
    }

    /// Every message handed to `send`, in order, whatever the answer was.
    pub(crate) fn sent(&self) -> Vec<OutgoingMessage> {
        let state = self.lock();
        state
            .attempts
            .iter()
            .map(|attempt| attempt.message.clone())
            .collect()
    }

    /// Only the messages that were answered with success, in order.
    pub(crate) fn accepted(&self) -> Vec<OutgoingMessage> {
        let state = self.lock();
        state
            .attempts
            .iter()
            .filter(|attempt| attempt.accepted)
            .map(|attempt| attempt.message.clone())
            .collect()
    }

    fn script(&self, to: &str, error: SendError, remaining: Option<usize>) {
        self.lock().scripts.push(Script {
            to: to.to_owned(),
            error,
            remaining,
        });
    }

    fn answer(&self, message: &OutgoingMessage) -> Result<Delivered, SendError> {
        let mut state = self.lock();
        let scripted = state
            .scripts
            .iter_mut()
            .find(|script| {
                script.to.eq_ignore_ascii_case(message.envelope.to.as_ref())
                    && script.remaining != Some(0)
            })
            .map(|script| {
                if let Some(remaining) = &mut script.remaining {
                    *remaining -= 1;
                }
                script.error.clone()
            });
        let accepted = scripted.is_none();
        state.attempts.push(Attempt {
            message: message.clone(),
            accepted,
        });
        match scripted {
            Some(error) => Err(error),
            None => Ok(Delivered {
                reply: format!("250 2.0.0 Ok: queued as stub-{}", state.attempts.len()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Mailer for StubMailer {
    fn send<'a>(
        &'a self,
        message: &'a OutgoingMessage,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Delivered, SendError>> + Send + 'a>> {
        let answer = self.answer(message);
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str) -> OutgoingMessage {
        OutgoingMessage {
            message_id: format!("<{to}>"),
            envelope: super::super::Envelope {
                from: Some("success@acme.example".parse().expect("a valid address")),
                to: to.parse().expect("a valid address"),
            },
            bytes: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
        }
    }

    #[tokio::test]
    async fn records_every_message_and_answers_as_scripted() {
        let stub = StubMailer::new();
        let greylisted = SendError::Transient("451 4.7.1 greylisted".to_owned());
        let unknown = SendError::Permanent("550 5.1.1 no such user".to_owned());
        stub.fail_first("grey@client.example", greylisted.clone(), 2);
        stub.fail_with("gone@client.example", unknown.clone());

        let ok = stub.send(&message("ada@client.example")).await;
        assert!(ok.is_ok_and(|delivered| delivered.reply.starts_with("250 ")));
        assert_eq!(
            stub.send(&message("GREY@client.example")).await,
            Err(greylisted.clone())
        );
        assert_eq!(
            stub.send(&message("grey@client.example")).await,
            Err(greylisted)
        );
        assert!(stub.send(&message("grey@client.example")).await.is_ok());
        assert_eq!(
            stub.send(&message("gone@client.example")).await,
            Err(unknown.clone())
        );
        assert_eq!(
            stub.send(&message("gone@client.example")).await,
            Err(unknown)
        );

        let to = |messages: Vec<OutgoingMessage>| -> Vec<String> {
            messages
                .into_iter()
                .map(|message| message.envelope.to.to_string())
                .collect()
        };
        assert_eq!(
            to(stub.sent()),
            [
                "ada@client.example",
                "GREY@client.example",
                "grey@client.example",
                "grey@client.example",
                "gone@client.example",
                "gone@client.example",
            ]
        );
        assert_eq!(
            to(stub.accepted()),
            ["ada@client.example", "grey@client.example"]
        );
        assert_eq!(stub.sent()[0], message("ada@client.example"));
    }
}
