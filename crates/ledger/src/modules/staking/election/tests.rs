//! The election against brute force on small inputs (at most 6 candidates and 6 voters,
//! stakes of 1 to 100, so that weights equal stakes).
//!
//! What is proven here, exactly:
//! - maximin support: the elected committee's best possible minimum support (computed by
//!   brute force through Hall's condition) is at least half of the best over every committee
//!   of the same size, and equal to it for one seat;
//! - the balanced shares reach that committee's best minimum support to within one unit per
//!   voter (each voter's split is rounded from weights back to stake units, its remainder
//!   going to its first share);
//! - PJR: no group of voters with `l` common candidates and a stake of `l` quotas is left with
//!   fewer than `l` members among the candidates it approves;
//! - every voter's shares sum to its stake and each member's backing is the sum of its shares;
//! - the same ballots and candidates in any order give the same outcome;
//! - on larger inputs (up to 12 candidates and 40 voters, stakes up to a million), every score
//!   computed from one claim per elected member is at most the score computed voter by voter
//!   (each voter's kept weight rounded up on its own), and short of it by at most one unit per
//!   voter's weight on an elected member.

use super::{Ballot, Claims, Outcome, Run, Scale, elect};
use proptest::prelude::*;

type Input = (u8, Vec<Ballot<u8, u8>>, usize);

/// Elections of `candidates` candidates, 1 to `voters` voters each with a stake of 1 to
/// `max_stake` backing 1 to `targets` of them, and 1 to `seats` seats (at most the candidates).
fn inputs(
    candidates: std::ops::RangeInclusive<u8>,
    max_stake: u128,
    targets: usize,
    voters: usize,
    seats: usize,
) -> impl Strategy<Value = Input> {
    candidates.prop_flat_map(move |m| {
        let ballot = (
            1u128..=max_stake,
            proptest::collection::btree_set(0..m, 1..=(m as usize).min(targets)),
        );
        (
            Just(m),
            proptest::collection::vec(ballot, 1..=voters),
            1..=(m as usize).min(seats),
        )
            .prop_map(|(m, ballots, seats)| {
                let ballots = ballots
                    .into_iter()
                    .enumerate()
                    .map(|(i, (stake, targets))| Ballot {
                        voter: i as u8,
                        stake,
                        targets: targets.into_iter().collect(),
                    })
                    .collect();
                (m, ballots, seats)
            })
    })
}

/// What brute force can check: at most 6 candidates and 6 voters.
fn input() -> impl Strategy<Value = Input> {
    inputs(1..=6, 100, 6, 6, 4)
}

fn run(m: u8, ballots: &[Ballot<u8, u8>], seats: usize) -> Outcome<u8, u8> {
    elect(&(0..m).collect::<Vec<_>>(), ballots, seats, 100)
}

/// All subsets of `items` of size `k`.
fn subsets(items: &[u8], k: usize) -> Vec<Vec<u8>> {
    if k == 0 {
        return vec![vec![]];
    }
    let Some((first, rest)) = items.split_first() else {
        return vec![];
    };
    let mut out: Vec<Vec<u8>> = subsets(rest, k - 1)
        .into_iter()
        .map(|mut s| {
            s.insert(0, *first);
            s
        })
        .collect();
    out.extend(subsets(rest, k));
    out
}

/// The best minimum support of `committee` as a fraction (numerator, denominator): by Hall's
/// condition, the least `stake(voters backing some of X) / |X|` over non-empty `X`.
fn maximin(committee: &[u8], ballots: &[Ballot<u8, u8>]) -> (u128, u128) {
    let mut best: Option<(u128, u128)> = None;
    for size in 1..=committee.len() {
        for x in subsets(committee, size) {
            let stake: u128 = ballots
                .iter()
                .filter(|b| b.targets.iter().any(|t| x.contains(t)))
                .map(|b| b.stake)
                .sum();
            let value = (stake, size as u128);
            if best.is_none_or(|(n, d)| value.0 * d < n * value.1) {
                best = Some(value);
            }
        }
    }
    best.unwrap_or((0, 1))
}

fn optimum(m: u8, ballots: &[Ballot<u8, u8>], seats: usize) -> (u128, u128) {
    subsets(&(0..m).collect::<Vec<_>>(), seats)
        .iter()
        .map(|c| maximin(c, ballots))
        .fold(
            (0, 1),
            |(bn, bd), (n, d)| {
                if n * bd > bn * d { (n, d) } else { (bn, bd) }
            },
        )
}

fn members(outcome: &Outcome<u8, u8>) -> Vec<u8> {
    let mut c: Vec<u8> = outcome.elected.iter().map(|(c, _)| *c).collect();
    c.sort_unstable();
    c
}

proptest! {
    #[test]
    fn the_elected_committee_has_at_least_half_the_best_maximin_support((m, ballots, seats) in input()) {
        let outcome = run(m, &ballots, seats);
        let (n, d) = maximin(&members(&outcome), &ballots);
        let (on, od) = optimum(m, &ballots, seats);
        let backed = (0..m).filter(|c| ballots.iter().any(|b| b.targets.contains(c))).count();
        prop_assert_eq!(outcome.elected.len(), seats.min(backed));
        prop_assert!(2 * n * od >= on * d, "ours {n}/{d}, optimum {on}/{od}");
    }

    #[test]
    fn one_seat_goes_to_the_best_backed_candidate((m, ballots, _) in input()) {
        let outcome = run(m, &ballots, 1);
        let (n, d) = maximin(&members(&outcome), &ballots);
        let (on, od) = optimum(m, &ballots, 1);
        prop_assert_eq!(n * od, on * d);
    }

    #[test]
    fn balanced_shares_reach_the_committees_best_minimum_support((m, ballots, seats) in input()) {
        let outcome = run(m, &ballots, seats);
        let (n, d) = maximin(&members(&outcome), &ballots);
        let least = outcome.elected.iter().map(|(_, b)| *b).min().unwrap_or(0);
        prop_assert!((least + ballots.len() as u128) * d >= n, "least backing {least}, best {n}/{d}");
    }

    #[test]
    fn the_committee_is_proportional_pjr((m, ballots, seats) in input()) {
        let outcome = run(m, &ballots, seats);
        let elected = members(&outcome);
        let total: u128 = ballots.iter().map(|b| b.stake).sum();
        let voters: Vec<u8> = (0..ballots.len() as u8).collect();
        for size in 1..=voters.len() {
            for group in subsets(&voters, size) {
                let group: Vec<&Ballot<u8, u8>> = group.iter().map(|&v| &ballots[v as usize]).collect();
                let stake: u128 = group.iter().map(|b| b.stake).sum();
                let common = (0..m).filter(|c| group.iter().all(|b| b.targets.contains(c))).count();
                let approved = elected
                    .iter()
                    .filter(|c| group.iter().any(|b| b.targets.contains(c)))
                    .count();
                for l in 1..=common.min(seats) {
                    // The group deserves l members when its stake is at least l quotas.
                    if stake * seats as u128 >= l as u128 * total {
                        prop_assert!(approved >= l, "a group of {stake}/{total} with {common} common candidates got {approved} of {l}");
                    }
                }
            }
        }
    }

    #[test]
    fn shares_add_up_to_every_stake_and_every_backing((m, ballots, seats) in input()) {
        let outcome = run(m, &ballots, seats);
        for (voter, shares) in &outcome.shares {
            let stake = ballots[*voter as usize].stake;
            prop_assert_eq!(shares.iter().map(|(_, s)| s).sum::<u128>(), stake);
        }
        for (member, backing) in &outcome.elected {
            let sum: u128 = outcome.shares.iter().flat_map(|(_, s)| s).filter(|(c, _)| c == member).map(|(_, s)| s).sum();
            prop_assert_eq!(sum, *backing);
        }
    }

    #[test]
    fn the_same_ballots_in_any_order_give_the_same_outcome(
        (m, ballots, seats) in input(),
        rotate in 0usize..6,
    ) {
        let outcome = run(m, &ballots, seats);
        let mut shuffled = ballots.clone();
        shuffled.reverse();
        let len = shuffled.len();
        shuffled.rotate_left(rotate % len);
        for b in &mut shuffled {
            b.targets.reverse();
        }
        let mut cands: Vec<u8> = (0..m).collect();
        cands.reverse();
        prop_assert_eq!(elect(&cands, &shuffled, seats, 100), outcome);
    }
}

/// A score computed voter by voter, as the election did before it summed claims: the largest
/// `t` whose voters' slack, each voter's kept weight on a member above `t` rounded up on its
/// own, reaches `t`.
fn score_voter_by_voter(run: &Run, c: usize) -> u128 {
    let slack = |v: usize, t: u128| {
        let voter = &run.voters[v];
        let kept: u128 = voter
            .edges
            .iter()
            .map(|&(e, x)| {
                let s = run.support[e];
                if s <= t { x } else { (x * t).div_ceil(s) }
            })
            .sum();
        voter.weight.saturating_sub(kept)
    };
    let approval: u128 = run.backers[c].iter().map(|&v| run.voters[v].weight).sum();
    let (mut lo, mut hi) = (0u128, approval);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let total: u128 = run.backers[c].iter().map(|&v| slack(v, mid)).sum();
        if total >= mid {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

fn larger_input() -> impl Strategy<Value = Input> {
    inputs(2..=12, 1_000_000, 6, 40, 8)
}

proptest! {
    #[test]
    fn scores_from_claims_never_exceed_and_stay_within_a_unit_per_edge_of_voter_by_voter(
        (m, ballots, seats) in larger_input()
    ) {
        let cands: Vec<u8> = (0..m).collect();
        let scale = Scale::of(ballots.iter().map(|b| b.stake));
        let mut run = Run::new(&cands, &ballots, scale);
        let mut slot = vec![usize::MAX; cands.len()];
        let mut claims = Claims::default();
        for _ in 0..seats {
            for c in (0..cands.len()).filter(|&c| !run.elected[c]) {
                let ours = run.score(c, &mut slot, &mut claims);
                let exact = score_voter_by_voter(&run, c);
                let edges = run.backers[c]
                    .iter()
                    .map(|&v| run.voters[v].edges.iter().filter(|(_, x)| *x > 0).count() as u128)
                    .sum::<u128>();
                prop_assert!(ours <= exact, "candidate {c}: {ours} > {exact}");
                prop_assert!(exact - ours <= edges, "candidate {c}: {ours} vs {exact}, {edges} edges");
            }
            let Some((winner, score)) = run.best() else { break };
            run.insert(winner, score);
            run.balance(10);
        }
    }
}

#[test]
fn stakes_over_the_weight_range_are_scaled_and_still_split_exactly() {
    let big = u128::MAX / 4;
    let ballots = vec![
        Ballot {
            voter: 0u8,
            stake: big,
            targets: vec![0u8, 1],
        },
        Ballot {
            voter: 1,
            stake: big / 3,
            targets: vec![1],
        },
        Ballot {
            voter: 2,
            stake: big / 2,
            targets: vec![2],
        },
    ];
    let outcome = elect(&[0, 1, 2], &ballots, 2, 100);
    assert_eq!(outcome.elected.len(), 2);
    for (voter, shares) in &outcome.shares {
        assert_eq!(
            shares.iter().map(|(_, s)| s).sum::<u128>(),
            ballots[*voter as usize].stake
        );
    }
}

#[test]
fn a_candidate_nobody_backs_is_never_elected() {
    let ballots = vec![Ballot {
        voter: 0u8,
        stake: 10,
        targets: vec![1u8],
    }];
    let outcome = elect(&[0, 1, 2], &ballots, 3, 10);
    assert_eq!(outcome.elected, vec![(1, 10)]);
}
