//! What every request passes through before and around its route: the time limit, the
//! per-client rate limit (and whose address a request is, behind a proxy), the security
//! headers, the token check and the body limit. Nothing here reads or writes the store.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, ExtensionRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::app::{App, Shared};
use super::pages::Failure;
use super::rate_limit;
use crate::token::{self, Purpose, Target};

/// How long a request may take from its head to the response, body included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request that takes longer than [`REQUEST_TIMEOUT`] (a body sent a byte at a time,
/// say) gets 408 and its connection back.
pub(super) async fn request_deadline(request: Request, next: Next) -> Response {
    within(REQUEST_TIMEOUT, next.run(request)).await
}

/// The response, or 408 (closing the connection) if it is not ready within `limit`.
pub(super) async fn within(limit: Duration, response: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, response).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = StatusCode::REQUEST_TIMEOUT.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// Refuses a client over [`REQUESTS_PER_MINUTE`](super::REQUESTS_PER_MINUTE) on the
/// recipient routes, except for a POST whose token verifies: the one-click unsubscribes of
/// a mailbox provider all come from a few shared servers, and a person's wish must never
/// be refused. What the limit slows down is guessing tokens and fetching pages, where
/// nothing is recorded.
pub(super) async fn rate_limit(
    State(app): State<Shared>,
    connect_info: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    token: Result<Path<String>, PathRejection>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST
        && let Ok(Path(token)) = token
        && token::verify(
            &app.state.secret,
            route_purpose(request.uri().path()),
            &token,
        )
        .is_some()
    {
        return next.run(request).await;
    }
    let peer = connect_info.ok().map(|ConnectInfo(addr)| addr.ip());
    let client = client_address(peer, request.headers());
    match app.limiter.check(client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => {
            tracing::warn!(%client, "too many requests; refused");
            app.failure(Failure::TooManyRequests { retry_after })
        }
    }
}

/// What the tokens of a recipient route's path are for: `/s/…` is the survey, `/u/…`
/// unsubscribes.
fn route_purpose(path: &str) -> Purpose {
    if path.starts_with("/s/") {
        Purpose::Survey
    } else {
        Purpose::Unsubscribe
    }
}

/// The address a request came from. Behind a reverse proxy on the same host or network
/// (a loopback or private peer), that is the last address the proxy appended to
/// `X-Forwarded-For` (or its `X-Real-IP`); a direct client cannot choose it.
pub(super) fn client_address(peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let Some(peer) = peer else {
        return IpAddr::from([0, 0, 0, 0]);
    };
    let trusted = match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if !trusted {
        return peer;
    }
    let forwarded = headers
        .get_all(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .map(rate_limit::forwarded_hop);
    let real_ip = || {
        headers
            .get(HeaderName::from_static("x-real-ip"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    };
    match forwarded {
        // The proxy's own entry; one it wrote in a form we cannot read trusts nothing
        // before it (those entries are the client's to choose).
        Some(hop) => hop.unwrap_or(peer),
        None => real_ip().unwrap_or(peer),
    }
}

/// Headers on every answer: nothing cached or framed, the token never sent on as a
/// referrer, no scripts, forms posted only here (or to `public_url`, the same server
/// behind a proxy). Styles and images may come from any https address, for restyling.
pub(super) fn security_headers(
    public_url: &str,
) -> impl Fn(Response) -> std::future::Ready<Response> + Clone + Send + 'static {
    let origin = match public_url.find("://") {
        Some(scheme) => match public_url[scheme + 3..].find('/') {
            Some(path) => &public_url[..scheme + 3 + path],
            None => public_url,
        },
        None => "",
    };
    let policy = format!(
        "default-src 'none'; style-src 'unsafe-inline' https:; img-src https: data:; font-src https: data:; \
         form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let policy = HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    move |mut response: Response| {
        let headers = response.headers_mut();
        let mut set = |name: HeaderName, value: HeaderValue| {
            headers.insert(name, value);
        };
        set(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        set(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        set(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        set(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        set(
            HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex, nofollow"),
        );
        set(header::CONTENT_SECURITY_POLICY, policy.clone());
        std::future::ready(response)
    }
}

impl App {
    /// What a token of `purpose` points at; anything else is "not found".
    pub(super) fn verify(
        &self,
        purpose: Purpose,
        token: Result<Path<String>, PathRejection>,
    ) -> Result<Target, Failure> {
        let Path(token) = token.map_err(|_| Failure::NotFound)?;
        token::verify(&self.state.secret, purpose, &token).ok_or(Failure::NotFound)
    }
}

/// The body of a POST, read within the body limit (to refuse what is too large); its
/// content does not matter.
pub(super) fn check_body(body: Result<Bytes, BytesRejection>) -> Result<(), Failure> {
    match body {
        Ok(_) => Ok(()),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Failure::TooLarge)
        }
        Err(_) => Err(Failure::BadRequest),
    }
}
