//! Long-lived response bodies (a socket's frames, an SSE stream) handed to the HTTP server in
//! pieces of at most [`PIECE_BYTES`].
//!
//! actix-http copies body chunks into a per-connection write buffer and keeps whatever that
//! buffer grew to, up to 128 KiB, for the connection's life. One large frame (a history page,
//! a thread with many members) used to grow a socket's buffer for good, so a node's memory crept
//! up as its sockets met their largest frames (the soak in docs/performance.md). With the
//! server flushing once [`PIECE_BYTES`] are buffered (`h1_write_buffer_size` in app.rs) and no
//! piece larger than that, the buffer never outgrows the 8 KiB it starts with: at most 2 KiB
//! left unwritten plus 2 KiB buffered plus a 2 KiB piece (and 8 bytes of chunk framing for
//! SSE), which fits even when a partial write leaves the data where it was. With 4 KiB
//! pieces it could double once, to 16 KiB.

use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};

/// The largest piece of body handed to the server at once; also its flush threshold.
pub const PIECE_BYTES: usize = 2048;

/// `body`, with every chunk larger than [`PIECE_BYTES`] split (without copying).
pub fn in_pieces<S, E>(body: S) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    futures_util::stream::unfold(
        (Box::pin(body), Bytes::new()),
        |(mut body, mut rest)| async move {
            if rest.is_empty() {
                match body.next().await? {
                    Ok(chunk) => rest = chunk,
                    Err(e) => return Some((Err(e), (body, rest))),
                }
            }
            let piece = rest.split_to(rest.len().min(PIECE_BYTES));
            Some((Ok(piece), (body, rest)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[tokio::test]
    async fn big_chunks_are_split_small_ones_pass_and_nothing_is_lost() {
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let chunks = vec![
            Ok::<_, Infallible>(Bytes::from_static(b"small")),
            Ok(Bytes::from(big.clone())),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"end")),
        ];
        let out: Vec<Bytes> = in_pieces(futures_util::stream::iter(chunks))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert!(out.iter().all(|p| p.len() <= PIECE_BYTES));
        let sizes: Vec<usize> = out.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [5, 2048, 2048, 2048, 2048, 1808, 0, 3]);
        let joined: Vec<u8> = out.concat();
        let mut expected = b"small".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"end");
        assert_eq!(joined, expected);
    }
}
