//! Reading one mailbox folder over IMAP (`async-imap`): connect (`imaps://`, or `imap://`
//! with STARTTLS when offered; a password in the clear only to a loopback address), log
//! in, SELECT the folder (EXAMINE when it is a person's inbox, read only), fetch every
//! message above the last UID processed with `BODY.PEEK[]` (nothing is marked read), and
//! hand each to a callback. Remembers UIDVALIDITY and the last UID per folder in the
//! store, so a restart neither misses nor repeats a message.
//!
//! Never deletes mail: it may only move what was processed to `processed_folder`. Decides
//! nothing about a message (the callback does), and never touches sending: a server that
//! is down or refuses is logged and retried with backoff.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::net::TcpStream;

mod wire;

use crate::clock::Clock;
use crate::config::{ImapMailbox, ImapSecurity};
use crate::mailer::tls::{Stream, Tls};
use crate::store::{SharedError, SharedStore};
use wire::{Io, command_ok, offers_starttls, read_line};

/// How long connecting, TLS and logging in may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one round of reading may take before the connection is given up.
const ROUND_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a server without IDLE is asked for new mail.
const POLL_EVERY: Duration = Duration::from_secs(60);
/// IDLE is renewed before servers drop it (RFC 2177: at least every 29 minutes).
const IDLE_FOR: Duration = Duration::from_secs(25 * 60);
/// The first and the longest wait after a failure; doubled between them.
const BACKOFF_FIRST: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// How many messages one FETCH asks for, so a full folder is not held in memory at once.
const FETCH_BATCH: usize = 50;

/// Why reading a mailbox failed this time; the next try may succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImapError {
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("{0}")]
    Insecure(String),
    #[error("the server refused the login for {user}: {reason}")]
    Login { user: String, reason: String },
    #[error("the server has no folder {folder:?}, or refused it: {reason}")]
    Folder { folder: String, reason: String },
    #[error("the IMAP conversation failed: {0}")]
    Protocol(String),
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] SharedError),
}

impl From<wire::Protocol> for ImapError {
    fn from(error: wire::Protocol) -> Self {
        ImapError::Protocol(error.0)
    }
}

impl From<async_imap::error::Error> for ImapError {
    fn from(error: async_imap::error::Error) -> Self {
        ImapError::Protocol(error.to_string())
    }
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// `imaps://`: TLS from the first byte (port 993).
    Implicit,
    /// `imap://`: STARTTLS when the server offers it (port 143).
    StartTls,
}

/// One mailbox folder, from `[inbound] mailboxes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailboxUrl {
    pub(crate) security: Security,
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) folder: String,
}

impl From<&ImapMailbox> for MailboxUrl {
    /// A mailbox as the configuration read it (`[inbound] mailboxes`). A password in the
    /// clear goes only to a loopback address, whatever the url says.
    fn from(mailbox: &ImapMailbox) -> MailboxUrl {
        MailboxUrl {
            security: match mailbox.security {
                ImapSecurity::Tls => Security::Implicit,
                ImapSecurity::StartTls | ImapSecurity::StartTlsIfOffered => Security::StartTls,
            },
            user: mailbox.user.clone(),
            host: mailbox.host.clone(),
            port: mailbox.port,
            folder: mailbox.folder.clone(),
        }
    }
}

impl MailboxUrl {
    /// A url read as `[inbound] mailboxes` is.
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Result<MailboxUrl, String> {
        ImapMailbox::parse(text)
            .map(|mailbox| MailboxUrl::from(&mailbox))
            .map_err(|error| error.to_string())
    }

    /// The mailbox's name in the store and in logs: scheme, user, server (no folder, no
    /// password).
    pub(crate) fn key(&self) -> String {
        let scheme = match self.security {
            Security::Implicit => "imaps",
            Security::StartTls => "imap",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{}@{host}:{}", self.user, self.port)
    }
}

/// What the reader may do to the folder.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadOptions {
    /// A person's inbox: EXAMINE, never change or move anything.
    pub(crate) read_only: bool,
    /// Move what was processed here (UID MOVE, when the server offers MOVE).
    pub(crate) processed_folder: Option<String>,
}

/// What one round read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Round {
    pub(crate) uidvalidity: u32,
    /// UIDs handed to the callback that it accepted, in order.
    pub(crate) processed: Vec<u32>,
    /// UIDs whose callback failed, with why: read again next round.
    pub(crate) failed: Vec<(u32, String)>,
    /// Every message up to this UID is done.
    pub(crate) last_uid: u32,
}

/// Reads one mailbox folder.
pub(crate) struct Reader {
    url: MailboxUrl,
    password: String,
    options: ReadOptions,
    tls: Tls,
    poll_every: Duration,
    backoff_first: Duration,
}

type ImapSession = Session<Io>;

impl Reader {
    /// A reader of `url`, logging in with `password`, trusting the system's certificates.
    pub(crate) fn new(
        url: MailboxUrl,
        password: String,
        options: ReadOptions,
    ) -> Result<Reader, String> {
        let tls = Tls::new(&url.host)?;
        Ok(Reader::with_tls(url, password, options, tls))
    }

    pub(crate) fn with_tls(
        url: MailboxUrl,
        password: String,
        options: ReadOptions,
        tls: Tls,
    ) -> Reader {
        Reader {
            url,
            password,
            options,
            tls,
            poll_every: POLL_EVERY,
            backoff_first: BACKOFF_FIRST,
        }
    }

    /// Polls a server without IDLE this often instead of every minute.
    #[cfg(test)]
    pub(crate) fn polling_every(mut self, every: Duration) -> Reader {
        self.poll_every = every;
        self
    }

    /// Retries a failure after this long (doubling) instead of 5 s.
    #[cfg(test)]
    pub(crate) fn retrying_after(mut self, first: Duration) -> Reader {
        self.backoff_first = first;
        self
    }

    /// One round: connect, read every new message, log out. For tests and one-off reads;
    /// the daemon uses [`Reader::run`], which stays connected.
    #[cfg(test)]
    pub(crate) async fn read_once<E: Display>(
        &self,
        store: &SharedStore,
        clock: Clock,
        handle: &mut impl FnMut(u32, Vec<u8>) -> Result<(), E>,
    ) -> Result<Round, ImapError> {
        let mut open = self.open().await?;
        let round = within(ROUND_TIMEOUT, self.round(&mut open, store, clock, handle)).await;
        if round.is_ok() {
            let _ = open.session.logout().await;
        }
        round
    }

    /// Reads for ever: a round, then waits for new mail (IDLE when offered, else a poll
    /// every minute), and again. A failure is logged, kept in the store for operators,
    /// and retried after a backoff (5 s doubling to 15 min); so is a message the callback
    /// refused. Stops only when dropped. `handle` runs on this task: keep it short.
    pub(crate) async fn run<E: Display>(
        &self,
        store: SharedStore,
        clock: Clock,
        mut handle: impl FnMut(u32, Vec<u8>) -> Result<(), E>,
    ) {
        let mut backoff = self.backoff_first;
        loop {
            let error = self
                .stay_connected(&store, clock, &mut handle, &mut backoff)
                .await;
            tracing::warn!(
                mailbox = %self.url.key(),
                folder = %self.url.folder,
                retry_in_s = backoff.as_secs(),
                "reading the mailbox failed: {error}"
            );
            let (key, folder, text, now) = (
                self.url.key(),
                self.url.folder.clone(),
                error.to_string(),
                clock.now(),
            );
            if let Err(error) = store
                .call(move |s| s.record_mailbox_error(&key, &folder, &text, now))
                .await
            {
                tracing::warn!("cannot record the mailbox error: {error}");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Rounds on one connection until something fails; that failure.
    async fn stay_connected<E: Display>(
        &self,
        store: &SharedStore,
        clock: Clock,
        handle: &mut impl FnMut(u32, Vec<u8>) -> Result<(), E>,
        backoff: &mut Duration,
    ) -> ImapError {
        let mut open = match self.open().await {
            Ok(open) => open,
            Err(error) => return error,
        };
        loop {
            let retry_soon =
                match within(ROUND_TIMEOUT, self.round(&mut open, store, clock, handle)).await {
                    Ok(round) => {
                        if !round.processed.is_empty() || !round.failed.is_empty() {
                            tracing::info!(
                                mailbox = %self.url.key(),
                                folder = %self.url.folder,
                                processed = round.processed.len(),
                                failed = round.failed.len(),
                                "read new mail"
                            );
                        }
                        !round.failed.is_empty()
                    }
                    Err(error) => return error,
                };
            if retry_soon {
                // A message could not be processed: try it again after a backoff, not
                // only when new mail happens to arrive.
                tokio::time::sleep(*backoff).await;
                *backoff = (*backoff * 2).min(BACKOFF_MAX);
                if let Err(error) = open.session.noop().await {
                    return error.into();
                }
                continue;
            }
            *backoff = self.backoff_first;
            if open.idle {
                let session = open.session;
                match wait_idle(session).await {
                    Ok(session) => open.session = session,
                    Err(error) => return error,
                }
            } else {
                tokio::time::sleep(self.poll_every).await;
                // NOOP lets the server report new messages and keeps the connection.
                if let Err(error) = open.session.noop().await {
                    return error.into();
                }
            }
        }
    }

    /// Connected, logged in, the folder selected (or examined).
    async fn open(&self) -> Result<Open, ImapError> {
        within(CONNECT_TIMEOUT, self.open_now()).await
    }

    async fn open_now(&self) -> Result<Open, ImapError> {
        let url = &self.url;
        let where_ = format!("{}:{}", url.host, url.port);
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| ImapError::Unreachable(format!("{where_}: {e}")))?;
        let peer = tcp.peer_addr().ok();
        let mut stream = Stream::Plain(tcp);
        match url.security {
            Security::Implicit => {
                stream
                    .upgrade(&self.tls)
                    .await
                    .map_err(|e| ImapError::Unreachable(format!("{where_}: {e}")))?;
                read_line(&mut stream).await?;
            }
            Security::StartTls => {
                read_line(&mut stream).await?;
                if offers_starttls(&mut stream).await? {
                    command_ok(&mut stream, "s2 STARTTLS").await?;
                    stream
                        .upgrade(&self.tls)
                        .await
                        .map_err(|e| ImapError::Unreachable(format!("{where_}: {e}")))?;
                } else if !plain_login_allowed(peer) {
                    return Err(ImapError::Insecure(format!(
                        "{where_} offers no STARTTLS: winback sends a password unencrypted only to this machine (127.0.0.1); use imaps://"
                    )));
                }
            }
        }
        let client = Client::new(Io(stream));
        let mut session = client
            .login(&url.user, &self.password)
            .await
            .map_err(|(error, _)| ImapError::Login {
                user: url.user.clone(),
                reason: error.to_string(),
            })?;
        let capabilities = session.capabilities().await?;
        let idle = capabilities.has_str("IDLE");
        let can_move = capabilities.has_str("MOVE");
        let folder_error = |error: async_imap::error::Error| ImapError::Folder {
            folder: url.folder.clone(),
            reason: error.to_string(),
        };
        let mailbox = if self.options.read_only {
            session.examine(&url.folder).await.map_err(folder_error)?
        } else {
            session.select(&url.folder).await.map_err(folder_error)?
        };
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| {
            ImapError::Protocol(format!("the server gave {} no UIDVALIDITY", url.folder))
        })?;
        let move_to = match &self.options.processed_folder {
            Some(target) if !self.options.read_only => {
                if can_move {
                    // Exists already, or is made now; a refusal shows when moving.
                    let _ = session.create(target).await;
                    Some(target.clone())
                } else {
                    tracing::warn!(
                        mailbox = %url.key(),
                        "the server does not offer MOVE: processed mail stays in {}",
                        url.folder
                    );
                    None
                }
            }
            _ => None,
        };
        Ok(Open {
            session,
            uidvalidity,
            idle,
            move_to,
        })
    }

    /// Reads every message above the folder's position, in UID order. A message whose
    /// callback fails keeps the position before it, so it is read again next round; the
    /// messages after it are still handed on (and handed on again next round: the
    /// callback applies a message once however often it sees it).
    async fn round<E: Display>(
        &self,
        open: &mut Open,
        store: &SharedStore,
        clock: Clock,
        handle: &mut impl FnMut(u32, Vec<u8>) -> Result<(), E>,
    ) -> Result<Round, ImapError> {
        let (key, folder) = (self.url.key(), self.url.folder.clone());
        let position = {
            let (key, folder) = (key.clone(), folder.clone());
            store
                .call(move |s| s.mailbox_position(&key, &folder))
                .await?
        };
        let uidvalidity = open.uidvalidity;
        let start = match position {
            Some(position) if position.uidvalidity == uidvalidity => position.last_uid,
            Some(position) => {
                tracing::info!(
                    mailbox = %key,
                    folder = %folder,
                    was = position.uidvalidity,
                    now = uidvalidity,
                    "the folder's UIDVALIDITY changed: reading it again from the start"
                );
                0
            }
            None => 0,
        };
        let mut uids: Vec<u32> = open
            .session
            .uid_search(format!("UID {}:*", start.saturating_add(1)))
            .await?
            .into_iter()
            // `N:*` includes the highest UID even when it is below N.
            .filter(|&uid| uid > start)
            .collect();
        uids.sort_unstable();

        let mut round = Round {
            uidvalidity,
            last_uid: start,
            ..Round::default()
        };
        let mut blocked = false;
        for batch in uids.chunks(FETCH_BATCH) {
            let set = batch
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let mut fetched: Vec<(u32, Vec<u8>)> = Vec::with_capacity(batch.len());
            {
                let mut stream = open.session.uid_fetch(&set, "(UID BODY.PEEK[])").await?;
                while let Some(fetch) = stream.try_next().await? {
                    if let (Some(uid), Some(body)) = (fetch.uid, fetch.body()) {
                        fetched.push((uid, body.to_vec()));
                    }
                }
            }
            for &uid in batch {
                // Expunged since the search: gone, nothing to read.
                let Some(index) = fetched.iter().position(|(u, _)| *u == uid) else {
                    if !blocked {
                        round.last_uid = uid;
                    }
                    continue;
                };
                let (_, raw) = fetched.swap_remove(index);
                match handle(uid, raw) {
                    Ok(()) => {
                        round.processed.push(uid);
                        if !blocked {
                            round.last_uid = uid;
                        }
                    }
                    Err(error) => {
                        blocked = true;
                        round.failed.push((uid, error.to_string()));
                    }
                }
            }
            let (key, folder, last, now) =
                (key.clone(), folder.clone(), round.last_uid, clock.now());
            store
                .call(move |s| s.record_mailbox_position(&key, &folder, uidvalidity, last, now))
                .await?;
        }
        if uids.is_empty() {
            let (key, folder, last, now) =
                (key.clone(), folder.clone(), round.last_uid, clock.now());
            store
                .call(move |s| s.record_mailbox_position(&key, &folder, uidvalidity, last, now))
                .await?;
        }
        if let Some((uid, why)) = round.failed.first() {
            let text = format!(
                "{} message(s) could not be processed and will be read again, first UID {uid}: {why}",
                round.failed.len()
            );
            tracing::warn!(mailbox = %key, folder = %folder, "{text}");
            let now = clock.now();
            store
                .call(move |s| s.record_mailbox_error(&key, &folder, &text, now))
                .await?;
        }
        if let Some(target) = &open.move_to
            && !round.processed.is_empty()
        {
            let set = round
                .processed
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            open.session.uid_mv(&set, target).await?;
        }
        Ok(round)
    }
}

/// A logged-in session on the selected folder.
struct Open {
    session: ImapSession,
    uidvalidity: u32,
    idle: bool,
    move_to: Option<String>,
}

/// Whether a password may go unencrypted to `peer`: only to this machine, where nobody
/// between can read it.
fn plain_login_allowed(peer: Option<SocketAddr>) -> bool {
    peer.is_some_and(|peer| match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    })
}

/// Waits in IDLE until the server reports a change or [`IDLE_FOR`] passes.
async fn wait_idle(session: ImapSession) -> Result<ImapSession, ImapError> {
    let mut idle = session.idle();
    idle.init().await?;
    {
        let (wait, _stop) = idle.wait_with_timeout(IDLE_FOR);
        // The library's timeout restarts at every keepalive the server sends; this one
        // does not, so IDLE is renewed in time whatever the server says meanwhile.
        if let Ok(answer) = tokio::time::timeout(IDLE_FOR, wait).await {
            match answer? {
                IdleResponse::NewData(_)
                | IdleResponse::Timeout
                | IdleResponse::ManualInterrupt => {}
            }
        }
    }
    Ok(idle.done().await?)
}

async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(ImapError::Timeout(limit)))
}

#[cfg(test)]
mod tests;
