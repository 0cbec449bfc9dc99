//! Staking: validators bond a deposit, nominators back them, and once an epoch a balanced
//! election picks the next committee.

pub mod election;
