//! The balanced election: PhragMMS (Cevallos and Stewart, "A verifiably secure and
//! proportional committee election rule", 2021) in integer arithmetic.
//!
//! Each round every unelected candidate gets a score: the largest support `t` it could reach
//! if its voters gave it all their free stake plus what they can take from elected members
//! whose support is above `t` (lowering those to `t`). The best score is elected, its voters'
//! stake moves to it, and then every voter's stake is balanced among its elected targets
//! (water-filling, repeated) so that supports are as even as the ballots allow. The rule
//! elects a committee whose minimum support is at least half the best possible
//! (a 2-approximation of maximin support) and satisfies proportional justified
//! representation (PJR).
//!
//! Stakes are first scaled to weights whose sum is just under `2^WEIGHT_BITS`, so that every
//! product below stays far inside `u128`. Ties are broken by a total order: a higher score
//! wins, then the lower candidate; voters are processed in their own order, so the same
//! ballots in any order give the same result. Nothing here can panic on input: a ballot
//! naming an unknown candidate only loses that target.

use std::collections::BTreeMap;

/// Weights (scaled stakes) sum to less than `2^WEIGHT_BITS`.
pub const WEIGHT_BITS: u32 = 48;

/// A voter's stake and the candidates it backs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ballot<V, C> {
    pub voter: V,
    pub stake: u128,
    pub targets: Vec<C>,
}

/// The elected committee with each member's backing, and how each voter's stake is split
/// among the members it backs (in stake units; a voter's shares sum to its whole stake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<V, C> {
    /// Members in the order they were elected, with their backing.
    pub elected: Vec<(C, u128)>,
    /// For every voter that backs at least one member, its shares, by candidate order.
    pub shares: Vec<(V, Vec<(C, u128)>)>,
}

/// One voter during the election: its weight and its weight on each elected target.
struct Voter {
    weight: u128,
    edges: Vec<(usize, u128)>,
}

struct Run {
    voters: Vec<Voter>,
    support: Vec<u128>,
    elected: Vec<bool>,
    /// For each candidate, the voters that back it.
    backers: Vec<Vec<usize>>,
}

/// Elects up to `seats` of `candidates` from `ballots`, balancing `rounds` times after each
/// election (a round that changes nothing ends the balancing early). Candidates without any
/// backing are never elected, so the committee may be smaller than `seats`.
pub fn elect<V: Ord + Clone, C: Ord + Clone>(
    candidates: &[C],
    ballots: &[Ballot<V, C>],
    seats: usize,
    rounds: u32,
) -> Outcome<V, C> {
    let mut cands = candidates.to_vec();
    cands.sort();
    cands.dedup();
    let mut ballots = ballots.to_vec();
    ballots.sort_by(|a, b| (&a.voter, a.stake, &a.targets).cmp(&(&b.voter, b.stake, &b.targets)));
    let scale = Scale::of(ballots.iter().map(|b| b.stake));
    let mut run = Run::new(&cands, &ballots, scale);
    let mut order = Vec::new();
    while order.len() < seats {
        let Some((winner, score)) = run.best() else {
            break;
        };
        run.insert(winner, score);
        order.push(winner);
        run.balance(rounds);
    }
    run.outcome(&cands, &ballots, &order)
}

/// How stakes become weights: the sum of the weights uses (nearly) all of [`WEIGHT_BITS`] so
/// that the integer arithmetic is fine-grained whatever the stakes' unit.
#[derive(Clone, Copy)]
enum Scale {
    /// Small stakes are multiplied by `2^shift`, which is exact.
    Up(u32),
    /// Large stakes are divided, losing less than one part in `2^WEIGHT_BITS` of the total.
    Down(u128),
}

impl Scale {
    fn of(stakes: impl Iterator<Item = u128>) -> Self {
        let total = stakes.fold(0u128, u128::saturating_add);
        let bits = u128::BITS - total.leading_zeros();
        if bits < WEIGHT_BITS {
            Self::Up(WEIGHT_BITS - bits)
        } else {
            Self::Down((total >> WEIGHT_BITS).saturating_add(1))
        }
    }

    fn weight(self, stake: u128) -> u128 {
        match self {
            Self::Up(shift) => stake << shift,
            Self::Down(factor) => stake / factor,
        }
    }
}

impl Run {
    fn new<V, C: Ord>(cands: &[C], ballots: &[Ballot<V, C>], scale: Scale) -> Self {
        let mut backers = vec![Vec::new(); cands.len()];
        let voters = ballots
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut targets: Vec<usize> = b
                    .targets
                    .iter()
                    .filter_map(|t| cands.binary_search(t).ok())
                    .collect();
                targets.sort_unstable();
                targets.dedup();
                let weight = scale.weight(b.stake);
                if weight > 0 {
                    for &t in &targets {
                        backers[t].push(i);
                    }
                }
                Voter {
                    weight,
                    edges: Vec::new(),
                }
            })
            .collect();
        Self {
            voters,
            support: vec![0; cands.len()],
            elected: vec![false; cands.len()],
            backers,
        }
    }

    /// The unelected candidate with the best score (ties: the lower candidate), if any
    /// scores above zero.
    ///
    /// A score is the largest `t` such that `c`'s voters can give it `t` while keeping every
    /// elected member they back at least at `t`. It is computed from each elected member's
    /// total weight from `c`'s voters ([`Claims`]), not voter by voter: for a member above
    /// `t` the voters keep `min(X, ceil(X t / s) + n - 1)` of its `X` (`n` voters, `s` its
    /// support), never less than the sum of what each keeps rounded up, so the slack is never
    /// overstated; and below `t` they keep all `X`.
    fn best(&self) -> Option<(usize, u128)> {
        let mut slot = vec![usize::MAX; self.elected.len()];
        let mut claims = Claims::default();
        let mut best: Option<(usize, u128)> = None;
        for c in (0..self.elected.len()).filter(|&c| !self.elected[c]) {
            let score = self.score(c, &mut slot, &mut claims);
            if score > 0 && best.is_none_or(|(_, b)| score > b) {
                best = Some((c, score));
            }
        }
        best
    }

    /// The score of `c` (see [`Self::best`]). `slot` (every entry `usize::MAX`, as it is left)
    /// and `claims` are scratch space shared by the candidates of a round.
    fn score(&self, c: usize, slot: &mut [usize], claims: &mut Claims) -> u128 {
        claims.list.clear();
        let mut approval = 0u128;
        for &v in &self.backers[c] {
            let voter = &self.voters[v];
            approval += voter.weight;
            for &(e, x) in voter.edges.iter().filter(|(_, x)| *x > 0) {
                claims.add(slot, e, self.support[e], x);
            }
        }
        for claim in &claims.list {
            slot[claim.member] = usize::MAX;
        }
        claims.score(approval)
    }

    /// Elects `c` at `t`: each of its voters lowers its edges to members above `t` to their
    /// share of `t` and gives `c` all it has left.
    fn insert(&mut self, c: usize, t: u128) {
        let before = self.support.clone();
        for &v in &self.backers[c].clone() {
            let voter = &mut self.voters[v];
            let mut kept = 0u128;
            for (e, x) in &mut voter.edges {
                let s = before[*e];
                if s > t {
                    let lowered = (*x * t).div_ceil(s);
                    self.support[*e] -= *x - lowered;
                    *x = lowered;
                }
                kept += *x;
            }
            let give = voter.weight - kept;
            voter.edges.push((c, give));
            voter.edges.sort_unstable();
            self.support[c] += give;
        }
        self.elected[c] = true;
    }

    /// Spreads every voter's weight over its elected targets so that their supports come as
    /// close to equal as its weight allows; repeated until a pass changes nothing or for
    /// `rounds` passes.
    fn balance(&mut self, rounds: u32) {
        let mut scratch = Vec::new();
        for _ in 0..rounds {
            let mut changed = false;
            for v in 0..self.voters.len() {
                changed |= self.balance_voter(v, &mut scratch);
            }
            if !changed {
                break;
            }
        }
    }

    /// Water-fills one voter's weight over its elected targets: the lowest supports (without
    /// this voter) are raised to one level; the integer remainder goes to the first targets
    /// in (support, candidate) order. `others` is scratch space, kept between voters so that
    /// a pass allocates nothing.
    fn balance_voter(&mut self, v: usize, others: &mut Vec<(u128, usize, usize)>) -> bool {
        let edges = &self.voters[v].edges;
        if edges.len() < 2 {
            return false;
        }
        // (support without this voter, candidate, position in the voter's edges)
        others.clear();
        others.extend(
            edges
                .iter()
                .enumerate()
                .map(|(i, &(e, x))| (self.support[e] - x, e, i)),
        );
        others.sort_unstable();
        let weight = self.voters[v].weight;
        let mut filled = 0usize;
        let mut total = weight;
        for (k, &(s, _, _)) in others.iter().enumerate() {
            // Target k joins the level if the level it would make reaches its support.
            if s * (k as u128 + 1) > total + s {
                break;
            }
            total += s;
            filled = k + 1;
        }
        let n = filled as u128;
        let (level, rest) = (total / n, total % n);
        let mut changed = false;
        for (rank, &(s, e, i)) in others.iter().enumerate() {
            let new = if rank < filled {
                level - s + u128::from((rank as u128) < rest)
            } else {
                0
            };
            let old = &mut self.voters[v].edges[i].1;
            if *old != new {
                self.support[e] = self.support[e] - *old + new;
                *old = new;
                changed = true;
            }
        }
        changed
    }

    /// The result in stake units: a voter's stake is split in proportion to its weights, the
    /// rounding remainder going to its first share, so that its shares sum to its stake.
    fn outcome<V: Clone, C: Clone>(
        &self,
        cands: &[C],
        ballots: &[Ballot<V, C>],
        order: &[usize],
    ) -> Outcome<V, C> {
        let mut backing: BTreeMap<usize, u128> = order.iter().map(|&c| (c, 0)).collect();
        let mut shares = Vec::new();
        for (voter, ballot) in self.voters.iter().zip(ballots) {
            let edges: Vec<_> = voter.edges.iter().filter(|(_, x)| *x > 0).collect();
            if edges.is_empty() {
                continue;
            }
            let mut split: Vec<(usize, u128)> = edges
                .iter()
                .map(|&&(e, x)| (e, mul_div(ballot.stake, x, voter.weight)))
                .collect();
            let given: u128 = split.iter().map(|(_, s)| s).sum();
            split[0].1 += ballot.stake - given;
            for &(e, s) in &split {
                *backing.entry(e).or_default() += s;
            }
            shares.push((
                ballot.voter.clone(),
                split
                    .into_iter()
                    .map(|(e, s)| (cands[e].clone(), s))
                    .collect(),
            ));
        }
        Outcome {
            elected: order
                .iter()
                .map(|&c| (cands[c].clone(), backing[&c]))
                .collect(),
            shares,
        }
    }
}

/// The weight one candidate's voters put on one elected member.
struct Claim {
    member: usize,
    /// The member's support.
    support: u128,
    /// The voters' weight on it, summed.
    weight: u128,
    /// How many of the voters put weight on it.
    voters: u128,
}

/// The weights one candidate's voters put on elected members, one [`Claim`] per member.
#[derive(Default)]
struct Claims {
    list: Vec<Claim>,
}

impl Claims {
    /// Adds a voter's weight `x` on `member`; `slot` maps a member to its claim's position
    /// (`usize::MAX` for none; the caller resets the members listed).
    fn add(&mut self, slot: &mut [usize], member: usize, support: u128, x: u128) {
        match slot[member] {
            usize::MAX => {
                slot[member] = self.list.len();
                self.list.push(Claim {
                    member,
                    support,
                    weight: x,
                    voters: 1,
                });
            }
            at => {
                self.list[at].weight += x;
                self.list[at].voters += 1;
            }
        }
    }

    /// What the voters, whose weights sum to `approval`, could give a new member if every
    /// elected member they back above `t` came down to `t`, never overstated: on a member
    /// above `t` they keep `min(X, ceil(X t / s) + n - 1)`, at least the sum of each voter's
    /// `ceil(x t / s)` (each at most its `x`), and growing with `t`.
    fn slack(&self, approval: u128, t: u128) -> u128 {
        let kept: u128 = self
            .list
            .iter()
            .map(|c| {
                if c.support <= t {
                    c.weight
                } else {
                    ((c.weight * t).div_ceil(c.support) + c.voters - 1).min(c.weight)
                }
            })
            .sum();
        approval.saturating_sub(kept)
    }

    /// The largest `t` up to `approval` with `slack(t) >= t`. The gap `slack(t) - t` falls by
    /// at least one as `t` rises by one, so from an estimate `t0` where the gap is `g` the
    /// answer lies in `t0..=t0 + g` (`g >= 0`) or `t0 - |g|..t0` (`g < 0`), which an exact
    /// bisection then searches. The estimate, a bisection in floating point, only narrows
    /// that range: the result is the same however a platform rounds floating point.
    fn score(&self, approval: u128) -> u128 {
        let gap = |t: u128| (self.slack(approval, t) as i128).saturating_sub(t as i128);
        let estimate = self.estimate(approval);
        let g = gap(estimate);
        let (mut lo, mut hi) = if g >= 0 {
            (
                estimate,
                estimate.saturating_add(g.unsigned_abs()).min(approval),
            )
        } else {
            (estimate.saturating_sub(g.unsigned_abs()), estimate - 1)
        };
        if gap(lo) < 0 {
            // Only if the slope bound failed: search everything below the estimate.
            lo = 0;
        }
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if gap(mid) >= 0 {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// A floating-point estimate of [`Self::score`], at most `approval`.
    fn estimate(&self, approval: u128) -> u128 {
        let slack = |t: f64| {
            let kept: f64 = self
                .list
                .iter()
                .map(|c| {
                    let (s, x) = (c.support as f64, c.weight as f64);
                    if s <= t {
                        x
                    } else {
                        (x * t / s + (c.voters as f64 - 1.0)).min(x)
                    }
                })
                .sum();
            approval as f64 - kept
        };
        let (mut lo, mut hi) = (0.0f64, approval as f64);
        for _ in 0..64 {
            let mid = (lo + hi) / 2.0;
            if slack(mid) >= mid {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo as u128).min(approval)
    }
}

/// `a * b / c` for `b <= c`, without overflow: `a` may use all of `u128`.
fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    let (q, r) = (a / c, a % c);
    // q * b <= a and r * b < c * b < 2^(2 * WEIGHT_BITS): neither overflows.
    q * b + r * b / c
}

#[cfg(test)]
mod tests;
