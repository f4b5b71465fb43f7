//! Turns one parsed client frame into a service call and its one direct reply.

use std::future::Future;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::context::AppContext;
use crate::error::ApiError;
use crate::metrics;
use crate::protocol::frames::SendFrame;
use crate::protocol::{ClientFrame, MessageReply, PresenceList, Reply, ServerFrame};
use crate::service::{Caller, messages, presence, receipts, threads, typing};

/// Checks a `send` and queues it for the group commit; the returned future gives its reply
/// once it has committed (or at once, for a send refused before queueing).
pub async fn send(
    app: &AppContext,
    caller: &Caller,
    f: SendFrame,
    read_at: Instant,
) -> BoxFuture<'static, ServerFrame> {
    let reference = f.reference;
    let queued = messages::queue(app, caller, f.msg).await;
    async move {
        let result = match queued {
            Ok(committing) => committing.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(message) => {
                metrics::send_acked(read_at.elapsed());
                ServerFrame::Ack {
                    reference,
                    reply: Reply::Message(MessageReply { message }),
                }
            }
            Err(e) => ApiError::from(e).to_frame(reference),
        }
    }
    .boxed()
}

/// Handles a frame; resolves to the reply to queue, if the contract calls for one.
///
/// Each kind of frame is boxed on its own, at its own size: one future for every kind was
/// as large as the largest (9.4 KB), copied whole for every `typing` or `read`.
pub fn handle<'a>(
    app: &'a AppContext,
    caller: &'a Caller,
    frame: ClientFrame,
) -> BoxFuture<'a, Option<ServerFrame>> {
    let reference = frame.reference().cloned();
    let has_ref = reference.is_some();
    match frame {
        ClientFrame::Send(f) => {
            async move { Some(send(app, caller, f, Instant::now()).await.await) }.boxed()
        }
        ClientFrame::Typing(f) => answer(reference, async move {
            typing::set(app, caller, &f.thread_id, f.is_typing).await?;
            // `typing` is fire-and-forget unless the client asked for a reply.
            Ok(has_ref.then_some(Reply::Empty {}))
        }),
        ClientFrame::Read(f) => answer(reference, async move {
            receipts::mark(app, caller, receipts::Which::Read, &f.thread_id, f.seq).await?;
            Ok(Some(Reply::Empty {}))
        }),
        ClientFrame::Delivered(f) => answer(reference, async move {
            receipts::mark(app, caller, receipts::Which::Delivered, &f.thread_id, f.seq).await?;
            Ok(Some(Reply::Empty {}))
        }),
        ClientFrame::History(f) => answer(reference, async move {
            let page = messages::history(app, caller, &f.thread_id, f.query).await?;
            Ok(Some(Reply::History(page)))
        }),
        ClientFrame::Threads(f) => answer(reference, async move {
            Ok(Some(Reply::Threads(
                threads::list(app, caller, f.query).await?,
            )))
        }),
        ClientFrame::WatchPresence(f) => answer(reference, async move {
            let presence = presence::watch(app, caller, f.user_ids, true).await?;
            Ok(Some(Reply::Presence(PresenceList { presence })))
        }),
        ClientFrame::UnwatchPresence(f) => answer(reference, async move {
            presence::watch(app, caller, f.user_ids, false).await?;
            Ok(Some(Reply::Empty {}))
        }),
        // Answered by the socket actor.
        ClientFrame::Ping(_) => futures_util::future::ready(None).boxed(),
    }
}

/// A handler's result as the frame that answers it: its reply as an `ack`, or its error.
fn answer<'a>(
    reference: Option<String>,
    handler: impl Future<Output = Result<Option<Reply>, ApiError>> + Send + 'a,
) -> BoxFuture<'a, Option<ServerFrame>> {
    async move {
        match handler.await {
            Ok(Some(reply)) => Some(ServerFrame::Ack { reference, reply }),
            Ok(None) => None,
            Err(e) => Some(e.to_frame(reference)),
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned<A, B, C, R>(_: fn(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// A send's future is built on the stack and moved to the heap on every send: each of
    /// its bytes is copied at least once per message. At 8.7 KB, memcpy was 13% of a
    /// send's instructions (docs/performance.md, "Session 19").
    #[test]
    fn a_send_future_stays_small() {
        let send = returned(|a: &'static AppContext, c: &'static Caller, f: SendFrame| {
            send(a, c, f, Instant::now())
        });
        assert!(send <= 1536, "a send's future is {send} bytes");
    }
}
