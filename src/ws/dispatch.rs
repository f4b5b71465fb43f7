//! Turns one parsed client frame into a service call and its one direct reply.

use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::{ClientFrame, MessageReply, PresenceList, Reply, ServerFrame};
use crate::service::{Caller, messages, presence, receipts, threads, typing};

/// Handles a frame; returns the reply to queue, if the contract calls for one.
pub async fn handle(app: &AppContext, caller: &Caller, frame: ClientFrame) -> Option<ServerFrame> {
    let reference = frame.reference().cloned();
    let has_ref = reference.is_some();
    let result: Result<Option<Reply>, ApiError> = async {
        Ok(match frame {
            ClientFrame::Send(f) => Some(Reply::Message(MessageReply {
                message: messages::send(app, caller, f.msg).await?,
            })),
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
            // Answered by the socket actor without a round trip through here.
            ClientFrame::Ping(_) => None,
        })
    }
    .await;
    match result {
        Ok(Some(reply)) => Some(ServerFrame::Ack { reference, reply }),
        Ok(None) => None,
        Err(e) => Some(e.to_frame(reference)),
    }
}
