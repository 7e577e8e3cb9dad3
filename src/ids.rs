//! Ids every layer names things by: users, groups, connections. Plain values, no behaviour.
//!
//! They live below every other module so that the protocol, the store, the cluster and the
//! chat layer can all speak of a user or a connection without importing one another.

use std::fmt;

/// A user's id, as issued by the `user` table.
pub type UserId = i64;
/// A group's id, as issued by the `allgroup` table.
pub type GroupId = i64;

/// Names a connection from anywhere: which loop, which slot of its slab, which generation of
/// that slot. The owning loop checks the generation on every use, so an id kept after its
/// connection closed is a harmless no-op even once the slot is reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) loop_index: u32,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// The index of the loop that owns the connection.
    pub fn loop_index(self) -> usize {
        self.loop_index as usize
    }

    /// A compact form for maps, logs and presence tokens; unique among the live connections
    /// of one process.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.loop_index) << 56)
            ^ (u64::from(self.generation) << 24)
            ^ u64::from(self.slot)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conn#{}.{}.{}",
            self.loop_index, self.slot, self.generation
        )
    }
}
