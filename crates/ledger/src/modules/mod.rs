//! The ledger's modules. Each owns a namespace of state keys, its actions, its refusal codes,
//! its parameters and its genesis, and plugs into the block runner through [`Module`].
//!
//! A new module (staking, governance, capacity NFTs, insurance) is a sibling folder here, a
//! namespace byte, an arm in the router and a line in [`end_block`]. It holds value only in
//! the bank's pots.

pub mod bank;
pub mod evidence;
pub mod market;
pub mod staking;

use crate::{
    Genesis, Params,
    exec::{BlockEnv, Created, ModuleId, Rejection},
    state::{Fault, Halt, StateCache},
};
use exo_types::{Action, Address};

/// What a module sees while a block runs.
pub(crate) struct Ctx<'a> {
    pub cache: &'a mut StateCache,
    pub env: &'a BlockEnv,
    pub params: &'a Params,
    /// Ids the current transaction created, for its receipt.
    pub created: &'a mut Vec<Created>,
}

/// An action's verdict, or why the step stopped.
pub(crate) type Verdict = Result<Result<(), Rejection>, Halt>;

/// The small interface every module implements.
pub(crate) trait Module {
    /// Its namespace in state and its byte in the action encoding and in receipts.
    const ID: ModuleId;
    /// Writes its part of the genesis state.
    fn genesis(cache: &mut StateCache, genesis: &Genesis) -> Result<(), Halt>;
    /// Executes one of its actions for `sender`, who has paid the fee.
    fn deliver(ctx: &mut Ctx<'_>, sender: &Address, action: &Action) -> Verdict;
    /// How many atomic parts its end of block has ([`Module::end_block`]).
    const END_BLOCK_PARTS: usize = 1;
    /// Part `part` of its work at the end of every block. The block runner runs each part as
    /// one piece of work: a part that needs keys is rolled back and run again alone, so a
    /// module whose end of block reads in many rounds splits it where a round would otherwise
    /// run its earlier work again.
    fn end_block(ctx: &mut Ctx<'_>, part: usize) -> Result<(), Halt>;
    /// Asks ([`Halt::Missing`]) for what executing `action` from `sender` reads for sure, as
    /// far as the action and the keys loaded so far tell ([`prefetch`]). Only a hint: the
    /// default names nothing.
    fn prefetch(_cache: &StateCache, _sender: &Address, _action: &Action) -> Result<(), Halt> {
        Ok(())
    }
}

pub(crate) struct Bank;
pub(crate) struct Evidence;
pub(crate) struct Market;
pub(crate) struct Staking;

fn invalid_genesis(err: impl std::fmt::Display) -> Halt {
    Halt::Fault(Fault::Invariant(format!("invalid genesis: {err}")))
}

impl Module for Bank {
    const ID: ModuleId = ModuleId::Bank;
    fn genesis(cache: &mut StateCache, genesis: &Genesis) -> Result<(), Halt> {
        bank::genesis(cache, &genesis.accounts().map_err(invalid_genesis)?)
    }
    fn deliver(ctx: &mut Ctx<'_>, sender: &Address, action: &Action) -> Verdict {
        match action {
            Action::Transfer { to, amount } => {
                let now_secs = ctx.env.time_ms / 1_000;
                Ok(bank::fund(ctx.cache, sender, to, *amount, now_secs)?.map_err(Rejection::Bank))
            }
            _ => Err(Fault::Invariant(format!("{} routed to the bank", action.name())).into()),
        }
    }
    /// Runs last: every other module's end of block may move tokens.
    fn end_block(ctx: &mut Ctx<'_>, _part: usize) -> Result<(), Halt> {
        bank::check_conservation(ctx.cache)
    }
}

impl Module for Evidence {
    const ID: ModuleId = ModuleId::Evidence;
    fn genesis(cache: &mut StateCache, genesis: &Genesis) -> Result<(), Halt> {
        evidence::genesis(cache, &genesis.validators().map_err(invalid_genesis)?)
    }
    fn deliver(_: &mut Ctx<'_>, _: &Address, action: &Action) -> Verdict {
        // Evidence arrives with the block, verified by the chain, never in a transaction.
        Err(Fault::Invariant(format!("{} routed to evidence", action.name())).into())
    }
    fn end_block(_: &mut Ctx<'_>, _part: usize) -> Result<(), Halt> {
        Ok(())
    }
}

impl Module for Market {
    const ID: ModuleId = ModuleId::Market;
    fn genesis(_: &mut StateCache, _: &Genesis) -> Result<(), Halt> {
        Ok(())
    }
    fn deliver(ctx: &mut Ctx<'_>, sender: &Address, action: &Action) -> Verdict {
        let mut market = market::Market::new(&ctx.params.market, ctx.env, ctx.params.epoch_length);
        let verdict = market.deliver(ctx.cache, sender, action);
        ctx.created.extend(market.created);
        verdict
    }
    /// Its deadlines, then its batch match: the match reads in several rounds, which must not
    /// process the deadlines again each time.
    const END_BLOCK_PARTS: usize = 2;
    fn end_block(ctx: &mut Ctx<'_>, part: usize) -> Result<(), Halt> {
        market::Market::new(&ctx.params.market, ctx.env, ctx.params.epoch_length)
            .end_block(ctx.cache, part)
    }
    fn prefetch(cache: &StateCache, sender: &Address, action: &Action) -> Result<(), Halt> {
        market::Market::prefetch(cache, sender, action)
    }
}

impl Module for Staking {
    const ID: ModuleId = ModuleId::Staking;
    /// Runs after the bank's: genesis self-bonds are locked from genesis balances.
    fn genesis(cache: &mut StateCache, genesis: &Genesis) -> Result<(), Halt> {
        let validators = genesis.validators().map_err(invalid_genesis)?;
        staking::genesis(cache, &genesis.params.staking, &validators)
    }
    fn deliver(ctx: &mut Ctx<'_>, sender: &Address, action: &Action) -> Verdict {
        staking_of(ctx).deliver(ctx.cache, sender, action)
    }
    fn end_block(ctx: &mut Ctx<'_>, _part: usize) -> Result<(), Halt> {
        staking_of(ctx).end_block(ctx.cache)
    }
}

fn staking_of<'a>(ctx: &Ctx<'a>) -> staking::Staking<'a> {
    staking_with(ctx.params, ctx.env)
}

fn staking_with<'a>(params: &'a Params, env: &'a BlockEnv) -> staking::Staking<'a> {
    staking::Staking {
        params: &params.staking,
        env,
        epoch_length: params.epoch_length,
    }
}

/// Every module's genesis, in namespace order.
pub(crate) fn genesis(cache: &mut StateCache, genesis: &Genesis) -> Result<(), Halt> {
    Bank::genesis(cache, genesis)?;
    Evidence::genesis(cache, genesis)?;
    Market::genesis(cache, genesis)?;
    Staking::genesis(cache, genesis)
}

/// Hands a newly recorded fault to staking, which jails the offender and schedules its slash.
pub(crate) fn report_offence(
    cache: &mut StateCache,
    env: &BlockEnv,
    params: &Params,
    evidence: &evidence::Evidence,
) -> Result<(), Halt> {
    staking_with(params, env).report(cache, evidence)
}

/// Asks every transaction's module for what it reads for sure ([`Module::prefetch`]). The
/// block runner asks for all of a block's transactions before it runs any, and loads what they
/// name together, round after round, instead of a round and a re-run per transaction.
pub(crate) fn prefetch(cache: &StateCache, sender: &Address, action: &Action) -> Result<(), Halt> {
    match action.module() {
        m if m == Bank::ID as u8 => Bank::prefetch(cache, sender, action),
        m if m == Market::ID as u8 => Market::prefetch(cache, sender, action),
        m if m == Staking::ID as u8 => Staking::prefetch(cache, sender, action),
        _ => Ok(()),
    }
}

/// Sends an action to the module that owns it.
pub(crate) fn route(ctx: &mut Ctx<'_>, sender: &Address, action: &Action) -> Verdict {
    match action.module() {
        m if m == Bank::ID as u8 => Bank::deliver(ctx, sender, action),
        m if m == Market::ID as u8 => Market::deliver(ctx, sender, action),
        m if m == Staking::ID as u8 => Staking::deliver(ctx, sender, action),
        m => Err(Fault::Invariant(format!("no module {m} for {}", action.name())).into()),
    }
}

/// The parts of every block's end, over all modules.
pub(crate) const END_BLOCK_PIECES: usize = Market::END_BLOCK_PARTS
    + Evidence::END_BLOCK_PARTS
    + Staking::END_BLOCK_PARTS
    + Bank::END_BLOCK_PARTS;

/// Piece `piece` of the end of a block (below [`END_BLOCK_PIECES`]): every module's parts in
/// turn, the market's first and the bank's conservation check last.
pub(crate) fn end_block(ctx: &mut Ctx<'_>, piece: usize) -> Result<(), Halt> {
    type Part = fn(&mut Ctx<'_>, usize) -> Result<(), Halt>;
    let modules: [(usize, Part); 4] = [
        (Market::END_BLOCK_PARTS, Market::end_block),
        (Evidence::END_BLOCK_PARTS, Evidence::end_block),
        (Staking::END_BLOCK_PARTS, Staking::end_block),
        (Bank::END_BLOCK_PARTS, Bank::end_block),
    ];
    let mut at = piece;
    for (parts, run) in modules {
        if at < parts {
            return run(ctx, at);
        }
        at -= parts;
    }
    Err(Fault::Invariant(format!("the end of a block has no piece {piece}")).into())
}
