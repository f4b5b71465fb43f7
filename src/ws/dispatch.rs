//! Turns one parsed client frame into a service call and its one direct reply.

use crate::app::AppState;
use crate::error::ApiError;
use crate::presence;
use crate::registry::Watch;
use crate::service::{Caller, messages, receipts, threads, typing};
use crate::store::Receipt;
use crate::ws::frames::{ClientFrame, Reply, ServerFrame};

/// Handles a frame; returns the reply to queue, if the contract calls for one.
pub async fn handle(state: &AppState, caller: &Caller, frame: ClientFrame) -> Option<ServerFrame> {
    let reference = frame.reference().cloned();
    let has_ref = reference.is_some();
    let result: Result<Option<Reply>, ApiError> = async {
        Ok(match frame {
            ClientFrame::Send(f) => Some(Reply::Message {
                message: messages::send(state, caller, f.msg).await?,
            }),
            ClientFrame::Typing(f) => {
                typing::set(state, caller, &f.thread_id, f.is_typing).await?;
                // `typing` is fire-and-forget unless the client asked for a reply.
                has_ref.then_some(Reply::Empty {})
            }
            ClientFrame::Read(f) => {
                receipts::mark(state, caller, Receipt::Read, &f.thread_id, f.seq).await?;
                Some(Reply::Empty {})
            }
            ClientFrame::Delivered(f) => {
                receipts::mark(state, caller, Receipt::Delivered, &f.thread_id, f.seq).await?;
                Some(Reply::Empty {})
            }
            ClientFrame::History(f) => {
                let (messages, has_more) =
                    messages::history(state, caller, &f.thread_id, f.query).await?;
                Some(Reply::History { messages, has_more })
            }
            ClientFrame::Threads(f) => {
                let (threads, next) = threads::list(state, caller, f.query).await?;
                Some(Reply::Threads { threads, next })
            }
            ClientFrame::WatchPresence(f) => {
                // Watch first, then look up: a change in between is then sent, not missed.
                if f.user_ids.len() > presence::MAX_LOOKUP {
                    return Err(ApiError::new(
                        crate::error::ErrorCode::TooLarge,
                        format!("at most {} users per watch", presence::MAX_LOOKUP),
                    ));
                }
                watch(state, caller, f.user_ids.clone(), true).await?;
                let presence = presence::lookup(state, &f.user_ids).await?;
                Some(Reply::Presence { presence })
            }
            ClientFrame::UnwatchPresence(f) => {
                watch(state, caller, f.user_ids, false).await?;
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

/// Registers the session's watches, then (for a user this node now watches for the first
/// time, or no longer watches) has the relay subscribe or unsubscribe before the ack goes out.
async fn watch(
    state: &AppState,
    caller: &Caller,
    user_ids: Vec<String>,
    on: bool,
) -> Result<(), ApiError> {
    let Some(session_id) = caller.session_id.clone() else {
        return Ok(());
    };
    let edges = state
        .registry
        .send(Watch {
            session_id,
            user_ids,
            watch: on,
        })
        .await
        .unwrap_or(Ok(Vec::new()))
        .map_err(|max| {
            ApiError::new(
                crate::error::ErrorCode::TooLarge,
                format!("a session may watch at most {max} users"),
            )
        })?;
    for user in edges {
        state.relay.watch(&user, on).await;
    }
    Ok(())
}
