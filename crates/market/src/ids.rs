//! Opaque identifiers. The ledger allocates each kind sequentially; the market only compares
//! them, which is why they are distinct types: an `OfferId` can never be passed as a `JobId`.

use std::fmt;

/// Fuel in one compute unit. Prices are quoted per compute unit so that they are human-sized
/// numbers, while billing stays exact in fuel.
pub const FUEL_PER_UNIT: u64 = 1_000_000_000;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, " {}"), self.0)
            }
        }
    };
}

id!(
    /// A registered provider (one machine, or one slice of a large host).
    ProviderId,
    "provider"
);
id!(
    /// An offer on the book.
    OfferId,
    "offer"
);
id!(
    /// A job; its work units are numbered within it.
    JobId,
    "job"
);
