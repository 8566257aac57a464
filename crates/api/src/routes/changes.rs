//! `GET /v1/changes` (spec §24.9): the live change stream as Server-Sent Events. The admin
//! pages' `/admin/changes` answers with the same [`event_stream`]; both read the one feed the
//! mail engine publishes to. No replay, no filtering: a client sees what happens while it
//! listens.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use emailengine_mail::changes::{ChangeFeed, ChangeReceiver, StateChange};

use crate::state::AppState;

/// A comment frame is sent after this long without one, so proxies keep the stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(90);

/// The first frame of every stream.
pub fn opening_frame() -> String {
    format!(": EmailEngine v{}\n\n", emailengine_core::COMPAT_VERSION)
}

pub const KEEP_ALIVE_FRAME: &str = ": still here\n\n";

/// One change as an SSE `message` event.
pub fn change_frame(change: &StateChange) -> String {
    format!("event: message\ndata:{}\n\n", change.to_json())
}

/// Stream live account state changes
///
/// Server-Sent Events: a `: EmailEngine v2.79.2` comment first, then one
/// `event: message` per change with `data:{account, type: "state", key, payload, stateLabel}`;
/// a `: still here` comment after 90 seconds without traffic. Past changes are not replayed.
#[utoipa::path(get, path = "/v1/changes", tag = "Account",
    responses((status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String)),
    extensions(("x-ee-group" = json!("events")), ("x-ee-action" = json!("read"))),
    security(("bearerAuth" = [])))]
pub async fn changes(State(state): State<AppState>) -> Response {
    event_stream(&state.events.changes, KEEP_ALIVE)
}

/// The change stream as a `text/event-stream` response.
pub fn event_stream(feed: &ChangeFeed, keep_alive: Duration) -> Response {
    let body = Body::from_stream(frames(feed.subscribe(), keep_alive));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONNECTION, "keep-alive"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

enum Step {
    Opening,
    Listening,
}

/// The frames of one stream: the opening comment, then changes and keep-alives until the
/// feed closes.
fn frames(
    receiver: ChangeReceiver,
    keep_alive: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(
        (Step::Opening, receiver),
        move |(step, mut receiver)| async move {
            let frame = match step {
                Step::Opening => opening_frame(),
                Step::Listening => match tokio::time::timeout(keep_alive, receiver.next()).await {
                    Ok(Some(change)) => change_frame(&change),
                    Ok(None) => return None,
                    Err(_) => KEEP_ALIVE_FRAME.to_string(),
                },
            };
            Some((Ok(Bytes::from(frame)), (Step::Listening, receiver)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use emailengine_core::connection::ConnectionState;
    use futures_util::StreamExt;

    fn text(b: Option<Result<Bytes, Infallible>>) -> String {
        match b {
            Some(Ok(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("no frame: {other:?}"),
        }
    }

    #[test]
    fn frame_format() {
        assert_eq!(opening_frame(), ": EmailEngine v2.79.2\n\n");
        let change = StateChange {
            account: "ann".into(),
            state: ConnectionState::Connecting,
            error: None,
        };
        assert_eq!(
            change_frame(&change),
            "event: message\ndata:{\"account\":\"ann\",\"type\":\"state\",\"key\":\"connecting\",\"payload\":null,\"stateLabel\":{\"type\":\"info\",\"name\":\"Connecting\",\"spinner\":true}}\n\n"
        );
    }

    #[tokio::test]
    async fn a_stream_opens_with_the_version_then_changes_and_keep_alives() {
        let feed = ChangeFeed::default();
        let mut stream = Box::pin(frames(feed.subscribe(), Duration::from_millis(200)));
        assert_eq!(text(stream.next().await), ": EmailEngine v2.79.2\n\n");
        feed.publish(StateChange {
            account: "bob".into(),
            state: ConnectionState::Connected,
            error: None,
        });
        assert!(text(stream.next().await).starts_with("event: message\ndata:{\"account\":\"bob\""));
        assert_eq!(text(stream.next().await), ": still here\n\n");
        feed.close();
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn headers() {
        let r = event_stream(&ChangeFeed::default(), KEEP_ALIVE);
        let h = r.headers();
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["connection"], "keep-alive");
        assert_eq!(h["x-accel-buffering"], "no");
    }
}
