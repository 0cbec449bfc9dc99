//! The worker's local nonce counter.
//!
//! The worker sends one transaction at a time, so its next nonce is known locally: it is the
//! account's finalized nonce when the worker starts, plus one per transaction the node admitted.
//! A refusal that names a nonce problem (`replayed_nonce`, `gapped_nonce`, `nonce_too_far`)
//! means the local count is wrong (another process used the key, a transaction was dropped from
//! a mempool): the worker forgets its count and reads the account again before the next one.

/// What the node said about a submission, as far as the nonce is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// In the mempool: the nonce is used.
    Admitted,
    /// Refused with this error code.
    Refused(&'static str),
    /// Refused with an error code this module does not know.
    RefusedOther,
    /// The node did not answer: whether the nonce was used is unknown.
    Unknown,
}

/// Error codes that mean the local nonce is out of step with the chain.
pub const NONCE_CODES: [&str; 3] = ["replayed_nonce", "gapped_nonce", "nonce_too_far"];

/// The next nonce to use, or nothing when it must be read from the account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonceCounter {
    next: Option<u64>,
}

impl NonceCounter {
    /// The nonce to sign with, if known.
    pub fn next(&self) -> Option<u64> {
        self.next
    }

    /// The account's nonce as the node reports it. Taken only when the count is unknown, or
    /// when the chain is ahead (another process used the key): a transaction this worker sent
    /// may still be pending, and the finalized nonce does not count it yet.
    pub fn sync(&mut self, account_nonce: u64) {
        self.next = Some(match self.next {
            Some(local) if local >= account_nonce => local,
            _ => account_nonce,
        });
    }

    /// Forgets the count: the next transaction reads the account first.
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// Updates the count after a submission signed with `nonce`.
    pub fn after(&mut self, nonce: u64, outcome: Submitted) {
        match outcome {
            Submitted::Admitted => self.next = Some(nonce + 1),
            Submitted::Refused(code) if NONCE_CODES.contains(&code) => self.next = None,
            Submitted::Refused(_) | Submitted::RefusedOther => {}
            Submitted::Unknown => self.next = None,
        }
    }

    /// Classifies an error code of a refused submission.
    pub fn classify(code: &str) -> Submitted {
        NONCE_CODES
            .iter()
            .find(|c| **c == code)
            .map_or(Submitted::RefusedOther, |c| Submitted::Refused(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_resyncs_and_resets() {
        let mut n = NonceCounter::default();
        assert_eq!(n.next(), None);
        n.sync(5);
        assert_eq!(n.next(), Some(5));
        n.after(5, Submitted::Admitted);
        assert_eq!(n.next(), Some(6));
        // The finalized nonce lags behind a pending transaction: keep the local count.
        n.sync(5);
        assert_eq!(n.next(), Some(6));
        // Someone else used the key: the chain is ahead.
        n.sync(9);
        assert_eq!(n.next(), Some(9));
        // A refusal for another reason leaves the nonce unused.
        n.after(9, NonceCounter::classify("insufficient_funds"));
        assert_eq!(n.next(), Some(9));
        // A nonce refusal forgets the count.
        for code in NONCE_CODES {
            n.sync(9);
            n.after(9, NonceCounter::classify(code));
            assert_eq!(n.next(), None, "{code}");
        }
        // So does a submission whose fate is unknown.
        n.sync(3);
        n.after(3, Submitted::Unknown);
        assert_eq!(n.next(), None);
        n.sync(4);
        assert_eq!(n.next(), Some(4));
    }
}
