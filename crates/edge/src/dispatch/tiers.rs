//! Zones: which destinations a node may use, and in which order of tiers.
//!
//! DESIGN.md, "Zones": tier 1 is the destinations of the node's own zone that
//! its `limit_zones` allow, tier 2 the destinations whose `backup_zones` name
//! the node's zone, tier 3 any other allowed destination.

use super::target::Target;

/// How many tiers there are.
pub(crate) const TIER_COUNT: usize = 3;
/// Backup ranks per tier (see [`Target::rank`]).
const RANKS: usize = super::target::MAX_RANK as usize + 1;
/// How many groups the selector goes through in order: each tier's
/// ranks, tier by tier.
pub(crate) const GROUPS: usize = TIER_COUNT * RANKS;

/// The allowed destinations of one node, grouped in the order they are
/// used — tier 1 rank 0, tier 1 rank 1, …, tier 2 rank 0, … (group `g`
/// is tier `g / RANKS`, rank `g % RANKS`) — each group in config order
/// (or in priority order for `first`). Only destinations found by DNS
/// have a rank above 0, so without them a tier is one group.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tiers {
    pub(crate) lists: [Vec<usize>; GROUPS],
}

impl Tiers {
    /// Groups `targets` for a node of zone `node_zone`. With `by_priority`
    /// each group is sorted by priority, ties in config order.
    pub(crate) fn new(targets: &[Target], node_zone: Option<&str>, by_priority: bool) -> Tiers {
        let mut tiers = Tiers::default();
        for (index, target) in targets.iter().enumerate() {
            if let Some(tier) = tier_of(target, node_zone) {
                let rank = usize::from(target.rank).min(RANKS - 1);
                tiers.lists[tier * RANKS + rank].push(index);
            }
        }
        if by_priority {
            for list in &mut tiers.lists {
                // Stable sort: equal priorities keep config order.
                list.sort_by_key(|&index| targets[index].priority);
            }
        }
        tiers
    }
}

/// The tier (0-based) of `target` for a node in `node_zone`, or `None` when
/// its `limit_zones` exclude the node.
///
/// A node without a zone is in none of the zones a `limit_zones` list names,
/// so a limited destination is never used by it: "limit" is a promise about
/// where traffic may come from, and an unzoned node cannot prove it keeps it.
/// Without a node zone every other destination is tier 1, and a destination
/// without a zone is tier 1 on every node.
pub(crate) fn tier_of(target: &Target, node_zone: Option<&str>) -> Option<usize> {
    let in_list = |list: &[String]| node_zone.is_some_and(|z| list.iter().any(|l| l == z));
    if !target.limit_zones.is_empty() && !in_list(&target.limit_zones) {
        return None;
    }
    match (node_zone, target.zone.as_deref()) {
        (None, _) | (_, None) => Some(0),
        (Some(node), Some(zone)) if node == zone => Some(0),
        _ if in_list(&target.backup_zones) => Some(1),
        _ => Some(2),
    }
}
