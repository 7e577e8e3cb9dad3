//! Channel: the interest an fd registers with its loop's poller, and the token that names it.
//!
//! muduo's Channel holds an fd, its interest and callbacks. Here dispatch goes by token into the
//! loop's slab (no closures holding pointers), so what remains of a channel is its interest and
//! the encoding of its token: slot in the low 32 bits, generation in the high 32, so an event
//! still queued for a slot that was closed and reused in the same turn is recognised as stale.

/// What a channel wants to hear about. Level-triggered, as muduo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Interest {
    pub readable: bool,
    pub writable: bool,
}

impl Interest {
    pub const READABLE: Interest = Interest {
        readable: true,
        writable: false,
    };
    pub const NONE: Interest = Interest {
        readable: false,
        writable: false,
    };
}

/// Token for the poller: `generation << 32 | slot`.
pub(crate) fn token(slot: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | (slot as u64 & 0xffff_ffff)
}

/// Splits a token back into `(slot, generation)`.
pub(crate) fn split_token(token: u64) -> (usize, u32) {
    ((token & 0xffff_ffff) as usize, (token >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        assert_eq!(split_token(token(7, 9)), (7, 9));
        assert_eq!(
            split_token(token(0xffff_fffe, u32::MAX)),
            (0xffff_fffe, u32::MAX)
        );
    }
}
