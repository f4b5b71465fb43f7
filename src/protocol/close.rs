//! WebSocket close codes of the contract. SSE streams end with the same codes, sent as a last
//! `event: close`.

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// The server is shutting down; reconnect with backoff.
pub const GOING_AWAY: u16 = 1001;
/// A frame exceeded `MAX_FRAME_BYTES`.
pub const TOO_BIG: u16 = 1009;
/// The token expired while the socket was open.
pub const TOKEN_EXPIRED: u16 = 4001;
/// The server API revoked access.
pub const REVOKED: u16 = 4003;
/// The outgoing queue overflowed: the client reads too slowly.
pub const TOO_SLOW: u16 = 4008;
/// Replaced: the user opened more sessions than allowed.
pub const REPLACED: u16 = 4009;
