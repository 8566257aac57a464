//! The crate's one error: stored bounce records that cannot be read. Parsing incoming messages
//! never fails; a message that is not feedback is simply `Feedback::None`.

/// Why a stored bounce list could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("bounce list is not valid msgpack: {0}")]
    Msgpack(#[from] rmpv::decode::Error),
    #[error("bounce record {index} is not a map with string i, r, a and a millisecond t")]
    InvalidRecord { index: usize },
}
