//! One destination as the selector sees it.

/// One destination, reduced to what selection needs.
///
/// The caller builds these from the edge's `[[edge.destination]]` entries;
/// the selector refers to them by their position in the slice it was built
/// from, so that index is what `select` and `ranked` return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Stable identity, the same on every node (the caller passes xxh3 of
    /// the destination URI). Hash algorithms mix it with the request key, so
    /// a destination keeps its keys when others are added or removed.
    pub id: u64,
    /// Relative share, 1..=50 (config validation enforces the range; a 0
    /// here is treated as 1 so that a destination is never silently dead).
    pub weight: u32,
    /// Lower is preferred, as in DNS SRV; ties keep config order. Only
    /// `first` looks at it.
    pub priority: i32,
    /// The zone the destination lives in; `None` counts as local to every
    /// node.
    pub zone: Option<String>,
    /// Nodes of these zones may use the destination; empty means every zone.
    pub limit_zones: Vec<String>,
    /// Nodes of these zones use the destination when their own zone has
    /// nothing usable (tier 2).
    pub backup_zones: Vec<String>,
    /// Backup rank within its tier: 0 for a destination given by
    /// address; for a server a destination's DNS name led to, the place of
    /// its SRV priority among that name's (the lowest 0, capped at
    /// [`MAX_RANK`]). A tier's rank 1 is used only when none of its rank 0
    /// is usable, and so on (RFC 2782: lower priorities first).
    pub rank: u8,
}

/// The highest backup rank: SRV priorities beyond the fourth distinct one
/// share it.
pub const MAX_RANK: u8 = 3;
