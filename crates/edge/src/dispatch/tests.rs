//! Unit tests of the dispatch core: consistency, distribution, round-robin
//! order, least-latency scaling, determinism of a transaction's messages,
//! zones and the memo bound.

use xxhash_rust::xxh3::xxh3_64;

use super::recent::{SLOTS, TTL_SECS};
use super::*;

fn dest(n: u64, weight: u32) -> Target {
    Target {
        id: xxh3_64(format!("sip:10.0.0.{n}:5060").as_bytes()),
        weight,
        priority: 0,
        zone: None,
        limit_zones: Vec::new(),
        backup_zones: Vec::new(),
        rank: 0,
    }
}

fn weighted(weights: &[u32]) -> Vec<Target> {
    (0u64..).zip(weights).map(|(n, &w)| dest(n, w)).collect()
}

fn zoned(n: u64, zone: &str, limit: &[&str], backup: &[&str]) -> Target {
    Target {
        zone: Some(zone.to_owned()),
        limit_zones: limit.iter().map(|z| (*z).to_owned()).collect(),
        backup_zones: backup.iter().map(|z| (*z).to_owned()).collect(),
        ..dest(n, 1)
    }
}

fn new_tx(key: Option<&[u8]>, tx_key: u64) -> Input<'_> {
    Input {
        hash_key: key,
        aor: None,
        tx_key,
        follow_up: false,
        now_secs: 100,
    }
}

fn follow_up(input: Input<'_>) -> Input<'_> {
    Input {
        follow_up: true,
        ..input
    }
}

fn all(_: usize) -> bool {
    true
}

/// Picks of `n` new transactions (tx keys 0..n, no hash key) from one state.
fn sequence(selector: &Selector, state: &mut WorkerState, n: u64) -> Vec<usize> {
    (0..n)
        .map(|tx| selector.select(&new_tx(None, tx), state, &all))
        .map(|pick| pick.expect("a usable destination"))
        .collect()
}

#[test]
fn removing_a_destination_moves_only_its_keys() {
    let full = weighted(&[1; 5]);
    let removed = 2;
    let mut reduced = full.clone();
    reduced.remove(removed);
    let before = Selector::new(Algorithm::HashCallId, &full, None);
    let after = Selector::new(Algorithm::HashCallId, &reduced, None);
    let mut state = WorkerState::new();
    let keys = 10_000;
    let (mut moved, mut modulo_moved) = (0, 0);
    for i in 0..keys {
        let key = format!("call-{i}@host");
        let input = new_tx(Some(key.as_bytes()), i);
        let was = full[before.select(&input, &mut state, &all).unwrap()].id;
        let now = reduced[after.select(&input, &mut state, &all).unwrap()].id;
        if was != now {
            moved += 1;
            assert_eq!(
                was, full[removed].id,
                "key {key} moved off a surviving destination"
            );
        }
        // Kamailio's dispatcher: hash % n over the list.
        let h = xxh3_64(key.as_bytes());
        let was = full[(h % full.len() as u64) as usize].id;
        let now = reduced[(h % reduced.len() as u64) as usize].id;
        modulo_moved += u32::from(was != now);
    }
    let share = f64::from(moved) / keys as f64;
    let modulo_share = f64::from(modulo_moved) / keys as f64;
    println!(
        "removing 1 of 5: rendezvous moved {moved} ({:.1}%), hash % n moved {modulo_moved} ({:.1}%)",
        share * 100.0,
        modulo_share * 100.0
    );
    assert!(moved > 0, "the removed destination held no keys");
    assert!(share <= 0.25, "rendezvous moved {share}");
    assert!(modulo_share > 0.60, "modulo moved only {modulo_share}");
}

#[test]
fn rendezvous_follows_weights() {
    let targets = weighted(&[1, 2, 3, 4]);
    let selector = Selector::new(Algorithm::HashFromUri, &targets, None);
    let mut state = WorkerState::new();
    let keys = 100_000;
    let mut counts = [0u32; 4];
    for i in 0..keys {
        let key = format!("sip:user{i}@example.com");
        let pick = selector.select(&new_tx(Some(key.as_bytes()), 0), &mut state, &all);
        counts[pick.unwrap()] += 1;
    }
    println!("weights 1,2,3,4 over {keys} keys: {counts:?}");
    for (i, &count) in counts.iter().enumerate() {
        let share = f64::from(count) / f64::from(keys);
        let want = f64::from(targets[i].weight) / 10.0;
        assert!(
            (share - want).abs() <= 0.02,
            "weight {want}: share {share} ({counts:?})"
        );
    }
}

#[test]
fn rendezvous_skips_unusable_and_is_stable_per_key() {
    let targets = weighted(&[1; 8]);
    let selector = Selector::new(Algorithm::HashToUri, &targets, None);
    let mut state = WorkerState::new();
    for i in 0..1000 {
        let key = format!("sip:{i}@b.example");
        let input = new_tx(Some(key.as_bytes()), i);
        let pick = selector.select(&input, &mut state, &all).unwrap();
        assert_eq!(selector.select(&input, &mut state, &all), Some(pick));
        let without = selector.select(&input, &mut state, &|j| j != pick).unwrap();
        assert_ne!(without, pick);
    }
    assert_eq!(
        selector.select(&new_tx(Some(b"k"), 0), &mut state, &|_| false),
        None
    );
}

#[test]
fn weighted_round_robin_gives_consecutive_turns() {
    let targets = weighted(&[3, 1]);
    let selector = Selector::new(Algorithm::WeightedRoundRobin, &targets, None);
    let mut state = WorkerState::new();
    let picks = sequence(&selector, &mut state, 2000);
    assert_eq!(picks[..8], [0, 0, 0, 1, 0, 0, 0, 1]);
    for (turn, chunk) in picks.chunks(4).enumerate() {
        assert_eq!(chunk, [0, 0, 0, 1], "turn {turn}");
    }
    let a = picks.iter().filter(|&&p| p == 0).count();
    assert_eq!((a, picks.len() - a), (1500, 500));
}

#[test]
fn weighted_round_robin_skips_unusable_and_handles_weight_50() {
    let targets = weighted(&[3, 1]);
    let selector = Selector::new(Algorithm::WeightedRoundRobin, &targets, None);
    let mut state = WorkerState::new();
    for tx in 0..100 {
        let pick = selector.select(&new_tx(None, tx), &mut state, &|i| i != 0);
        assert_eq!(pick, Some(1));
    }
    assert_eq!(
        selector.select(&new_tx(None, 100), &mut state, &|_| false),
        None
    );

    let targets = weighted(&[50, 1]);
    let selector = Selector::new(Algorithm::WeightedRoundRobin, &targets, None);
    let picks = sequence(&selector, &mut WorkerState::new(), 102);
    assert!(picks[..50].iter().all(|&p| p == 0));
    assert_eq!(picks[50], 1);
    assert!(picks[51..101].iter().all(|&p| p == 0));
    assert_eq!(picks[101], 1);
}

#[test]
fn hash_auth_username_without_a_username_is_round_robin() {
    let targets = weighted(&[3, 1]);
    let selector = Selector::new(Algorithm::HashAuthUsername, &targets, None);
    let picks = sequence(&selector, &mut WorkerState::new(), 8);
    assert_eq!(picks, [0, 0, 0, 1, 0, 0, 0, 1]);
    // With a username it hashes: the same user always lands on one server.
    let mut state = WorkerState::new();
    let alice = |tx| new_tx(Some(b"alice".as_slice()), tx);
    let first = selector.select(&alice(0), &mut state, &all);
    assert!((1..50).all(|tx| selector.select(&alice(tx), &mut state, &all) == first));
}

#[test]
fn random_is_pure_and_weighted() {
    let targets = weighted(&[3, 1]);
    let selector = Selector::new(Algorithm::Random, &targets, None);
    let mut counts = [0u32; 2];
    let n = 100_000;
    let (mut one, mut other) = (
        WorkerState::new(),
        WorkerState::for_algorithm(Algorithm::Random),
    );
    for tx in 0..n {
        let pick = selector.select(&new_tx(None, tx), &mut one, &all).unwrap();
        let again = selector.select(&new_tx(None, tx), &mut other, &all);
        assert_eq!(again, Some(pick), "tx {tx}");
        counts[pick] += 1;
    }
    println!("random, weights 3,1 over {n} tx keys: {counts:?}");
    let share = f64::from(counts[0]) / n as f64;
    assert!(
        (share - 0.75).abs() <= 0.02,
        "share of weight 3: {share} ({counts:?})"
    );
}

#[test]
fn first_takes_the_lowest_priority_value_in_config_order() {
    let mut targets = weighted(&[1; 4]);
    for (t, p) in targets.iter_mut().zip([5, 1, 1, 3]) {
        t.priority = p;
    }
    let selector = Selector::new(Algorithm::First, &targets, None);
    let mut state = WorkerState::new();
    let pick = |usable: &dyn HealthLookup, state: &mut WorkerState| {
        selector.select(&new_tx(None, 7), state, usable)
    };
    assert_eq!(pick(&all, &mut state), Some(1));
    assert_eq!(pick(&|i| i != 1, &mut state), Some(2));
    assert_eq!(pick(&|i| i != 1 && i != 2, &mut state), Some(3));
    assert_eq!(pick(&|i| i == 0, &mut state), Some(0));
    assert_eq!(pick(&|_| false, &mut state), None);
}

#[test]
fn a_transaction_sticks_for_every_algorithm() {
    let targets = weighted(&[3, 1, 2]);
    let key = |i: u64| format!("key-{i}").into_bytes();
    for algorithm in Algorithm::ALL {
        for with_key in [true, false] {
            let selector = Selector::new(algorithm, &targets, None);
            let mut state = WorkerState::new();
            let keys: Vec<Vec<u8>> = (0..100).map(key).collect();
            let input = |tx: u64| new_tx(with_key.then(|| keys[tx as usize].as_slice()), tx + 1000);
            // Many INVITEs first, so the memo must hold more than the last.
            let invites: Vec<Option<usize>> = (0..40)
                .map(|tx| selector.select(&input(tx), &mut state, &all))
                .collect();
            let next_new = selector
                .clone()
                .select(&input(99), &mut state.clone(), &all);
            for tx in 0..40 {
                let invite = invites[tx as usize];
                assert!(invite.is_some());
                let what = format!("{algorithm} key={with_key} tx={tx}");
                let retransmission = selector.select(&input(tx), &mut state, &all);
                assert_eq!(retransmission, invite, "retransmission, {what}");
                let cancel = selector.select(&follow_up(input(tx)), &mut state, &all);
                assert_eq!(cancel, invite, "CANCEL, {what}");
                let ack = selector.select(&follow_up(input(tx)), &mut state, &all);
                assert_eq!(ack, invite, "ACK, {what}");
            }
            // None of that advanced the round-robin.
            assert_eq!(
                selector.select(&input(99), &mut state, &all),
                next_new,
                "{algorithm}"
            );

            // A follow-up on a worker that never saw the INVITE: a usable
            // destination, the same on every such worker, and no turn taken.
            let mut fresh = WorkerState::new();
            let orphan = selector.select(&follow_up(input(5)), &mut fresh, &all);
            assert!(orphan.is_some_and(|i| i < targets.len()));
            let other = selector.select(&follow_up(input(5)), &mut WorkerState::new(), &all);
            assert_eq!(orphan, other, "{algorithm}");
            let only_1 =
                selector.select(&follow_up(input(5)), &mut WorkerState::new(), &|i| i == 1);
            assert_eq!(only_1, Some(1), "{algorithm}");
            if !with_key
                && matches!(
                    algorithm,
                    Algorithm::WeightedRoundRobin | Algorithm::HashAuthUsername
                )
            {
                let after: Vec<usize> = (0..6)
                    .map(|tx| {
                        selector
                            .select(&new_tx(None, 500 + tx), &mut fresh, &all)
                            .unwrap()
                    })
                    .collect();
                assert_eq!(
                    after,
                    [0, 0, 0, 1, 2, 2],
                    "{algorithm}: follow-up advanced the turn"
                );
            }
        }
    }
}

#[test]
fn round_robin_memo_forgets_after_timer_b_and_when_unusable() {
    let targets = weighted(&[1, 1]);
    let selector = Selector::new(Algorithm::WeightedRoundRobin, &targets, None);
    let mut state = WorkerState::new();
    let at = |now_secs, follow_up| Input {
        hash_key: None,
        aor: None,
        tx_key: 42,
        follow_up,
        now_secs,
    };
    assert_eq!(selector.select(&at(100, false), &mut state, &all), Some(0));
    assert_eq!(
        selector.select(&at(100 + TTL_SECS - 1, false), &mut state, &all),
        Some(0)
    );
    // Expired: a retransmission this late is a new turn.
    assert_eq!(
        selector.select(&at(100 + TTL_SECS, false), &mut state, &all),
        Some(1)
    );
    // The remembered destination went down: the CANCEL goes to a usable one.
    assert_eq!(
        selector.select(&at(140, true), &mut state, &|i| i == 0),
        Some(0)
    );
}

#[test]
fn zones_form_tiers() {
    let targets = vec![
        zoned(0, "a", &[], &[]),
        zoned(1, "b", &[], &["a"]),
        zoned(2, "c", &[], &[]),
        zoned(3, "a", &["b"], &[]),
    ];
    for algorithm in Algorithm::ALL {
        let selector = Selector::new(algorithm, &targets, Some("a"));
        let mut state = WorkerState::new();
        for n in 0..50 {
            let key = format!("k{n}");
            // Each check a new transaction, so the round-robin memo does not
            // (rightly) send it where an earlier check went.
            let mut tx = n * 10;
            let mut pick = |usable: &dyn HealthLookup| {
                tx += 1;
                selector.select(&new_tx(Some(key.as_bytes()), tx), &mut state, usable)
            };
            assert_eq!(pick(&all), Some(0), "{algorithm}");
            assert_eq!(pick(&|i| i != 0), Some(1), "{algorithm}");
            assert_eq!(pick(&|i| i > 1), Some(2), "{algorithm}");
            assert_eq!(pick(&|i| i > 2), None, "{algorithm}: limited");
            let mut out = Vec::new();
            let input = new_tx(Some(key.as_bytes()), tx + 1);
            selector.ranked(&input, &mut state, 10, &all, &mut out);
            assert_eq!(out, [0, 1, 2], "{algorithm}");
        }
    }
}

#[test]
fn zone_edge_cases() {
    // No node zone: every destination is tier 1, but a limited one is not
    // for this node.
    let targets = vec![
        zoned(0, "a", &[], &[]),
        zoned(1, "b", &[], &[]),
        zoned(2, "b", &["b"], &[]),
    ];
    let selector = Selector::new(Algorithm::WeightedRoundRobin, &targets, None);
    assert_eq!(
        sequence(&selector, &mut WorkerState::new(), 4),
        [0, 1, 0, 1]
    );
    // A destination without a zone is local to every node; a limited one
    // serves the zones it names.
    let targets = vec![
        zoned(0, "x", &[], &[]),
        dest(1, 1),
        zoned(2, "x", &["b"], &["b"]),
    ];
    let selector = Selector::new(Algorithm::First, &targets, Some("b"));
    let mut state = WorkerState::new();
    assert_eq!(selector.select(&new_tx(None, 0), &mut state, &all), Some(1));
    assert_eq!(
        selector.select(&new_tx(None, 0), &mut state, &|i| i != 1),
        Some(2)
    );
}

#[test]
fn ranked_starts_with_select_and_lists_each_candidate_once() {
    let targets = weighted(&[3, 1, 2, 5, 1]);
    for algorithm in Algorithm::ALL {
        let selector = Selector::new(algorithm, &targets, None);
        let (mut a, mut b) = (WorkerState::new(), WorkerState::new());
        let mut out = Vec::new();
        for tx in 0..30 {
            let key = format!("key-{tx}");
            let input = new_tx(Some(key.as_bytes()), tx);
            let accept = |i: usize| i != 3;
            let chosen = selector.select(&input, &mut a, &accept);
            selector.ranked(&input, &mut b, 3, &accept, &mut out);
            assert_eq!(out.first().copied(), chosen, "{algorithm} tx {tx}");
            assert_eq!(out.len(), 3, "{algorithm}");
            assert!(!out.contains(&3), "{algorithm}");
            let mut unique = out.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), out.len(), "{algorithm}: {out:?}");
        }
        selector.ranked(&new_tx(Some(b"k"), 1), &mut b, 0, &all, &mut out);
        assert!(out.is_empty());
        selector.ranked(&new_tx(Some(b"k"), 1), &mut b, 10, &all, &mut out);
        assert_eq!(out.len(), targets.len(), "{algorithm}");
    }
}

#[test]
fn ranked_hash_order_is_the_failover_order() {
    // The second candidate is where the key goes when the first is down.
    let targets = weighted(&[1, 2, 3, 4]);
    let selector = Selector::new(Algorithm::HashCallId, &targets, None);
    let mut state = WorkerState::new();
    let mut out = Vec::new();
    for i in 0..500 {
        let key = format!("c{i}");
        let input = new_tx(Some(key.as_bytes()), 0);
        selector.ranked(&input, &mut state, 4, &all, &mut out);
        for k in 1..out.len() {
            let down = &out[..k];
            let next = selector.select(&input, &mut state, &|j| !down.contains(&j));
            assert_eq!(next, Some(out[k]), "{key}: {out:?}");
        }
    }
}

#[test]
fn memo_is_bounded() {
    let targets = weighted(&[2, 1, 1]);
    let selector = Selector::new(Algorithm::WeightedRoundRobin, &targets, None);
    let mut state = WorkerState::new();
    let before = state.memo_footprint();
    assert_eq!(before.0, SLOTS * 24);
    for tx in 0..100_000u64 {
        let input = Input {
            hash_key: None,
            aor: None,
            tx_key: xxh3_64(&tx.to_le_bytes()),
            follow_up: false,
            now_secs: tx / 1000,
        };
        assert!(selector.select(&input, &mut state, &all).is_some());
    }
    assert_eq!(state.memo_footprint(), before);
    assert_eq!(
        WorkerState::for_algorithm(Algorithm::HashCallId)
            .memo_footprint()
            .0,
        0
    );
    // least-latency remembers its picks for CANCEL and ACK.
    assert_eq!(
        WorkerState::for_algorithm(Algorithm::LeastLatency)
            .memo_footprint()
            .0,
        SLOTS * 24
    );
}

#[test]
fn hash_auth_username_cancel_follows_the_authenticated_invite() {
    // Many users, so that for some of them the username hash and the
    // transaction-seeded fallback disagree: the memo must win every time.
    let targets = weighted(&[1, 1, 1, 1]);
    let selector = Selector::new(Algorithm::HashAuthUsername, &targets, None);
    let mut state = WorkerState::for_algorithm(Algorithm::HashAuthUsername);
    let mut disagreements = 0;
    for tx in 0..200u64 {
        let user = format!("user{tx}");
        let invite = new_tx(Some(user.as_bytes()), tx);
        let placed = selector.select(&invite, &mut state, &all);
        let cancel = Input {
            hash_key: None,
            aor: None,
            follow_up: true,
            ..new_tx(None, tx)
        };
        let fallback = selector.select(&cancel, &mut WorkerState::new(), &all);
        if fallback != placed {
            disagreements += 1;
        }
        assert_eq!(
            selector.select(&cancel, &mut state, &all),
            placed,
            "tx {tx}"
        );
    }
    assert!(
        disagreements > 50,
        "the test exercises the memo ({disagreements})"
    );
}

/// A health view for tests: per-destination usability and least-latency
/// scale.
struct View {
    usable: Vec<bool>,
    scale: Vec<f64>,
}

impl View {
    fn scaled(scale: &[f64]) -> View {
        View {
            usable: vec![true; scale.len()],
            scale: scale.to_vec(),
        }
    }
}

impl HealthLookup for View {
    fn usable(&self, i: usize) -> bool {
        self.usable.get(i).copied().unwrap_or(false)
    }
    fn scale(&self, i: usize) -> f64 {
        self.scale[i]
    }
}

/// How many of `n` new transactions (tx keys 0..n) go to each destination.
fn shares(selector: &Selector, health: &dyn HealthLookup, targets: usize, n: u64) -> Vec<u32> {
    let mut counts = vec![0u32; targets];
    let mut state = WorkerState::for_algorithm(selector.algorithm());
    for tx in 0..n {
        let pick = selector.select(&new_tx(None, tx), &mut state, health);
        counts[pick.expect("a usable destination")] += 1;
    }
    counts
}

fn assert_shares(counts: &[u32], want: &[f64], what: &str) {
    let total: u32 = counts.iter().sum();
    println!("{what}: {counts:?}");
    for (&count, &want) in counts.iter().zip(want) {
        let share = f64::from(count) / f64::from(total);
        assert!(
            (share - want).abs() <= 0.02,
            "{what}: share {share}, want {want} ({counts:?})"
        );
    }
}

#[test]
fn least_latency_shares_follow_weight_times_scale() {
    // Equal weights, the second twice as slow: 2:1.
    let targets = weighted(&[1, 1]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let counts = shares(&selector, &View::scaled(&[1.0, 0.5]), 2, 30_000);
    assert_shares(&counts, &[2.0 / 3.0, 1.0 / 3.0], "scales 1.0, 0.5");

    // Weight is capacity, scale is speed; the share follows the product:
    // 1×1.0 : 2×0.25 : 1×0.5 = 2 : 1 : 1.
    let targets = weighted(&[1, 2, 1]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let counts = shares(&selector, &View::scaled(&[1.0, 0.25, 0.5]), 3, 30_000);
    assert_shares(
        &counts,
        &[0.5, 0.25, 0.25],
        "weights 1,2,1 × scales 1,.25,.5",
    );
}

#[test]
fn least_latency_at_scale_one_is_plain_weighted() {
    // Unmeasured (or equally fast) destinations: exactly `random`'s picks,
    // so shares follow the configured weights.
    let targets = weighted(&[3, 1, 2]);
    let least = Selector::new(Algorithm::LeastLatency, &targets, None);
    let random = Selector::new(Algorithm::Random, &targets, None);
    let ones = View::scaled(&[1.0; 3]);
    let (mut a, mut b, mut c) = (
        WorkerState::for_algorithm(Algorithm::LeastLatency),
        WorkerState::for_algorithm(Algorithm::LeastLatency),
        WorkerState::for_algorithm(Algorithm::Random),
    );
    let mut counts = [0u32; 3];
    for tx in 0..30_000 {
        let input = new_tx(None, tx);
        let pick = least.select(&input, &mut a, &ones).unwrap();
        // A plain predicate has scale 1.0 everywhere.
        assert_eq!(least.select(&input, &mut b, &all), Some(pick), "tx {tx}");
        assert_eq!(random.select(&input, &mut c, &all), Some(pick), "tx {tx}");
        counts[pick] += 1;
    }
    assert_shares(&counts, &[0.5, 1.0 / 6.0, 1.0 / 3.0], "weights 3,1,2");

    // Equal weights with equal scales below 1: still an even spread.
    let targets = weighted(&[1, 1, 1]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let counts = shares(&selector, &View::scaled(&[0.3; 3]), 3, 30_000);
    assert_shares(&counts, &[1.0 / 3.0; 3], "equal scales 0.3");
}

#[test]
fn least_latency_never_picks_an_unusable_destination() {
    let targets = weighted(&[1, 5, 1]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let mut view = View::scaled(&[0.1, 1.0, 0.1]);
    view.usable[1] = false;
    let counts = shares(&selector, &view, 3, 10_000);
    assert_eq!(counts[1], 0, "{counts:?}");
    assert!(counts[0] > 0 && counts[2] > 0, "{counts:?}");

    // Remembered, then gone down: the CANCEL goes to a usable one.
    let mut state = WorkerState::for_algorithm(Algorithm::LeastLatency);
    let mut view = View::scaled(&[1.0; 3]);
    let invite = new_tx(None, 7);
    let placed = selector.select(&invite, &mut state, &view).unwrap();
    view.usable[placed] = false;
    let cancel = selector.select(&follow_up(invite), &mut state, &view);
    assert!(cancel.is_some_and(|i| i != placed), "{cancel:?}");

    view.usable = vec![false; 3];
    assert_eq!(selector.select(&new_tx(None, 8), &mut state, &view), None);
}

#[test]
fn least_latency_honours_tiers() {
    // Node zone "a": 0 is tier 1 however slow, 1 tier 2 (backup for "a"),
    // 2 tier 3, 3 excluded by its limit_zones however fast.
    let targets = vec![
        zoned(0, "a", &[], &[]),
        zoned(1, "b", &[], &["a"]),
        zoned(2, "c", &[], &[]),
        zoned(3, "a", &["b"], &[]),
    ];
    let selector = Selector::new(Algorithm::LeastLatency, &targets, Some("a"));
    let mut view = View::scaled(&[0.001, 1.0, 1.0, 1.0]);
    let mut state = WorkerState::for_algorithm(Algorithm::LeastLatency);
    let mut tx = 0;
    let mut picks = |view: &View| -> Vec<Option<usize>> {
        (0..200)
            .map(|_| {
                tx += 1;
                selector.select(&new_tx(None, tx), &mut state, view)
            })
            .collect()
    };
    assert!(picks(&view).iter().all(|&p| p == Some(0)));
    view.usable[0] = false;
    assert!(picks(&view).iter().all(|&p| p == Some(1)));
    view.usable[1] = false;
    assert!(picks(&view).iter().all(|&p| p == Some(2)));
    view.usable[2] = false;
    assert!(picks(&view).iter().all(|&p| p.is_none()), "limited");
}

#[test]
fn least_latency_follow_ups_stick_when_scales_change() {
    let targets = weighted(&[1, 1, 1]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let mut state = WorkerState::for_algorithm(Algorithm::LeastLatency);
    let before = View::scaled(&[1.0, 1.0, 1.0]);
    let after = View::scaled(&[0.05, 1.0, 0.05]);
    let mut invites = Vec::new();
    let mut moved = 0;
    for tx in 0..300 {
        let invite = selector.select(&new_tx(None, tx), &mut state, &before);
        let invite = invite.expect("a usable destination");
        invites.push(invite);
        // The latencies were re-measured between the INVITE and what follows.
        let retransmission = selector.select(&new_tx(None, tx), &mut state, &after);
        assert_eq!(retransmission, Some(invite), "retransmission, tx {tx}");
        let cancel = selector.select(&follow_up(new_tx(None, tx)), &mut state, &after);
        assert_eq!(cancel, Some(invite), "CANCEL, tx {tx}");
        let ack = selector.select(&follow_up(new_tx(None, tx)), &mut state, &after);
        assert_eq!(ack, Some(invite), "ACK, tx {tx}");
        // Without the memo the pick under the new scales, the same on every
        // worker that never saw the INVITE.
        let orphan = selector.select(
            &follow_up(new_tx(None, tx)),
            &mut WorkerState::new(),
            &after,
        );
        let again = selector.select(
            &follow_up(new_tx(None, tx)),
            &mut WorkerState::new(),
            &after,
        );
        assert_eq!(orphan, again, "tx {tx}");
        moved += u32::from(orphan != Some(invite));
    }
    assert!(moved > 50, "the test exercises the memo ({moved})");
    // A worker without a memo still places follow-ups purely: with the
    // scales unchanged that is the INVITE's destination.
    let mut stateless = WorkerState::for_algorithm(Algorithm::HashCallId);
    for (tx, &invite) in (0..).zip(&invites) {
        let cancel = selector.select(&follow_up(new_tx(None, tx)), &mut stateless, &before);
        assert_eq!(cancel, Some(invite), "tx {tx}");
    }
}

#[test]
fn least_latency_tolerates_bad_scales() {
    let targets = weighted(&[1, 1]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let plain = shares(&selector, &View::scaled(&[1.0, 1.0]), 2, 2_000);
    // NaN counts as unmeasured, above 1 as the fastest.
    for bad in [f64::NAN, f64::INFINITY, 7.0] {
        let counts = shares(&selector, &View::scaled(&[bad, 1.0]), 2, 2_000);
        assert_eq!(counts, plain, "scale {bad}");
    }
    // Zero or negative: a trickle at most, but still used when alone.
    for bad in [0.0, -1.0, f64::NEG_INFINITY] {
        let counts = shares(&selector, &View::scaled(&[bad, 1.0]), 2, 2_000);
        assert!(counts[0] <= 1, "scale {bad}: {counts:?}");
        let mut alone = View::scaled(&[bad, 1.0]);
        alone.usable[1] = false;
        let counts = shares(&selector, &alone, 2, 100);
        assert_eq!(counts, [100, 0], "scale {bad}");
    }
}

#[test]
fn least_latency_ranked_is_the_failover_order() {
    let targets = weighted(&[1, 2, 3, 4]);
    let selector = Selector::new(Algorithm::LeastLatency, &targets, None);
    let mut view = View::scaled(&[1.0, 0.2, 0.7, 0.4]);
    let mut out = Vec::new();
    for tx in 0..500 {
        let input = new_tx(None, tx);
        let mut state = WorkerState::new();
        selector.ranked(&input, &mut state, 4, &view, &mut out);
        assert_eq!(out.len(), 4);
        for k in 1..out.len() {
            view.usable = (0..4).map(|j| !out[..k].contains(&j)).collect();
            let next = selector.select(&input, &mut WorkerState::new(), &view);
            assert_eq!(next, Some(out[k]), "tx {tx}: {out:?}");
        }
        view.usable = vec![true; 4];
    }
}

#[test]
fn tier_reports_each_destination_for_the_node_zone() {
    let targets = vec![
        zoned(0, "a", &[], &[]),
        zoned(1, "b", &[], &["a"]),
        zoned(2, "c", &[], &[]),
        zoned(3, "a", &["b"], &[]),
        dest(4, 1),
        zoned(5, "c", &["a", "c"], &[]),
    ];
    for algorithm in Algorithm::ALL {
        let selector = Selector::new(algorithm, &targets, Some("a"));
        let tiers: Vec<Option<u8>> = (0..7).map(|i| selector.tier(i)).collect();
        assert_eq!(
            tiers,
            [Some(1), Some(2), Some(3), None, Some(1), Some(3), None],
            "{algorithm}"
        );
        // A node without a zone: no limited destination, the rest tier 1.
        let selector = Selector::new(algorithm, &targets, None);
        let tiers: Vec<Option<u8>> = (0..6).map(|i| selector.tier(i)).collect();
        assert_eq!(
            tiers,
            [Some(1), Some(1), Some(1), None, Some(1), None],
            "{algorithm}"
        );
    }
}

#[test]
fn attempts_try_each_tier_up_to_its_limit_then_the_rest() {
    // Node zone a: 0, 1, 2 in a (tier 1); 3, 4 back up a (tier 2); 5 in c
    // (tier 3); 6 limited to zone c (never).
    let targets = vec![
        zoned(0, "a", &[], &[]),
        zoned(1, "a", &[], &[]),
        zoned(2, "a", &[], &[]),
        zoned(3, "b", &[], &["a"]),
        zoned(4, "b", &[], &["a"]),
        zoned(5, "c", &[], &[]),
        zoned(6, "c", &["c"], &[]),
    ];
    let tier = |i: usize| match i {
        0..=2 => 1,
        3 | 4 => 2,
        _ => 3,
    };
    for algorithm in Algorithm::ALL {
        let selector = Selector::new(algorithm, &targets, Some("a"));
        let mut state = WorkerState::new();
        let mut out = Vec::new();
        for tx in 0..20 {
            let key = format!("key-{tx}");
            let input = new_tx(Some(key.as_bytes()), tx);
            selector.attempts(&input, &mut state, [2, 1], 16, &all, &mut out);
            let tiers: Vec<u8> = out.iter().map(|&i| tier(i)).collect();
            // Two of zone a, one backup, the other zone, then the held-back
            // third of zone a and second backup.
            assert_eq!(tiers, [1, 1, 2, 3, 1, 2], "{algorithm}: {out:?}");
            assert!(!out.contains(&6), "{algorithm}: limited to zone c");
            let mut unique = out.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), 6, "{algorithm}: {out:?}");
            // Unusable destinations are left out, and `max` caps the list.
            selector.attempts(&input, &mut state, [2, 1], 3, &|i| i != 3, &mut out);
            assert_eq!(out.len(), 3);
            assert!(!out.contains(&3));
        }
    }
}

#[test]
fn a_higher_rank_is_used_only_when_no_lower_rank_of_its_tier_is_usable() {
    // Two servers of SRV priority 10 (rank 0, weights 1 and 3) and one of
    // priority 20 (rank 1), in one tier; every algorithm agrees.
    let mut targets = weighted(&[1, 3, 1]);
    targets[2].rank = 1;
    for alg in [
        Algorithm::WeightedRoundRobin,
        Algorithm::Random,
        Algorithm::HashCallId,
        Algorithm::First,
        Algorithm::LeastLatency,
    ] {
        let sel = Selector::new(alg, &targets, None);
        let mut state = WorkerState::new();
        let mut counts = [0usize; 3];
        for k in 0..400u64 {
            let key = k.to_le_bytes();
            let picked = sel.select(&new_tx(Some(&key), k), &mut state, &|_: usize| true);
            counts[picked.expect("a pick")] += 1;
        }
        assert_eq!(counts[2], 0, "{alg:?}: rank 1 while rank 0 is up");
        if alg != Algorithm::First {
            assert!(counts[1] > counts[0], "{alg:?}: by weight {counts:?}");
        }
        let only_backup = |i: usize| i == 2;
        let picked = sel.select(&new_tx(Some(b"x"), 1), &mut state, &only_backup);
        assert_eq!(picked, Some(2), "{alg:?}: rank 1 when rank 0 is down");
        let mut out = Vec::new();
        sel.ranked(
            &new_tx(Some(b"y"), 999),
            &mut state,
            3,
            &|_: usize| true,
            &mut out,
        );
        assert_eq!(out.last(), Some(&2), "{alg:?}: failover tries rank 1 last");
    }
}
