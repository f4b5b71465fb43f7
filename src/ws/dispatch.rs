//! Turns one parsed client frame into a service call and its one direct reply.

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

/// Handles a frame; returns the reply to queue, if the contract calls for one.
pub async fn handle(app: &AppContext, caller: &Caller, frame: ClientFrame) -> Option<ServerFrame> {
    let frame = match frame {
        ClientFrame::Send(f) => return Some(send(app, caller, f, Instant::now()).await.await),
        other => other,
    };
    let reference = frame.reference().cloned();
    let has_ref = reference.is_some();
    let result: Result<Option<Reply>, ApiError> = async {
        Ok(match frame {
            ClientFrame::Typing(f) => {
                typing::set(app, caller, &f.thread_id, f.is_typing).await?;
                // `typing` is fire-and-forget unless the client asked for a reply.
                has_ref.then_some(Reply::Empty {})
            }
            ClientFrame::Read(f) => {
                receipts::mark(app, caller, receipts::Which::Read, &f.thread_id, f.seq).await?;
                Some(Reply::Empty {})
            }
            ClientFrame::Delivered(f) => {
                receipts::mark(app, caller, receipts::Which::Delivered, &f.thread_id, f.seq)
                    .await?;
                Some(Reply::Empty {})
            }
            ClientFrame::History(f) => Some(Reply::History(
                messages::history(app, caller, &f.thread_id, f.query).await?,
            )),
            ClientFrame::Threads(f) => {
                Some(Reply::Threads(threads::list(app, caller, f.query).await?))
            }
            ClientFrame::WatchPresence(f) => Some(Reply::Presence(PresenceList {
                presence: presence::watch(app, caller, f.user_ids, true).await?,
            })),
            ClientFrame::UnwatchPresence(f) => {
                presence::watch(app, caller, f.user_ids, false).await?;
                Some(Reply::Empty {})
            }
            // Sends were taken above; pings are answered by the socket actor.
            ClientFrame::Send(_) | ClientFrame::Ping(_) => None,
        })
    }
    .await;
    match result {
        Ok(Some(reply)) => Some(ServerFrame::Ack { reference, reply }),
        Ok(None) => None,
        Err(e) => Some(e.to_frame(reference)),
    }
}
