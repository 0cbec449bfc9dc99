//! Runs one consensus engine per epoch, with the committee the ledger elected for it.
//!
//! When the last block of epoch `e` is finalized, the orchestrator reads the committees of
//! `e + 1` and `e + 2` from finalized state (the ledger elected them one epoch earlier),
//! registers their schemes (a signer where this node is a member, a verifier elsewhere), tracks
//! the peers of `e + 1` on the network, and starts the engine of `e + 1` from that block
//! (simplex's genesis for the new epoch) on its own votes, certificates and resolver
//! subchannels; the engine of `e` is aborted. A node outside the committee of an epoch runs the
//! engine with the verifier: it receives and checks the certificates and follows the chain
//! without voting. A validator that restarts resumes the epoch of the next block after its
//! processed height. Messages of an epoch this validator has not reached tell it that it lags:
//! marshal is asked to fetch the boundary finalization from their sender.

use crate::{
    block::Block,
    epochs::{Committees, EpochSchemes, KEPT_EPOCHS, PeerSets},
};
use commonware_consensus::{
    marshal::{core::Mailbox as MarshalMailbox, standard::Standard},
    simplex::scheme::ed25519::Scheme,
    types::{Epoch, Epocher as _, FixedEpocher, Height},
};
use commonware_cryptography::{certificate::Scheme as _, ed25519, sha256};
use commonware_p2p::{
    Receiver, Sender,
    utils::mux::{Builder as _, Muxer, SubReceiver, SubSender},
};
use commonware_runtime::{Handle, Spawner};
use commonware_storage::Context as StorageContext;
use commonware_utils::vec::NonEmptyVec;
use futures::{StreamExt, channel::mpsc};
use std::sync::Arc;
use tracing::{error, info, warn};

/// The subchannels of one epoch's engine.
pub type EpochChannels<S> = (SubSender<S>, SubReceiver<ed25519::PublicKey>);

/// What the orchestrator needs besides the engine factory.
pub struct Setup<E: StorageContext + Spawner, P> {
    pub epocher: FixedEpocher,
    pub genesis: sha256::Digest,
    /// The height marshal had processed at startup.
    pub processed: Height,
    pub marshal: MarshalMailbox<Scheme, Standard<Block>>,
    /// Finalized last blocks of epochs, from the finalized-block hook.
    pub boundaries: mpsc::Receiver<(Height, sha256::Digest)>,
    /// Where each epoch's committee is read.
    pub committees: Committees<E>,
    /// The schemes marshal verifies finalizations with; the orchestrator registers them.
    pub schemes: EpochSchemes,
    /// Where each epoch's peers are announced.
    pub peer_sets: P,
}

/// The epoch a validator resumes in after processing `processed`: the epoch of the next block.
pub fn resume_epoch(epocher: &FixedEpocher, processed: Height) -> Epoch {
    epocher
        .containing(Height::new(processed.get().saturating_add(1)))
        .map_or(Epoch::zero(), |info| info.epoch())
}

/// Starts the orchestrator. `start_engine(context, epoch, scheme, floor, votes, certificates,
/// resolver)` starts one epoch's engine with `scheme` from `floor`, the digest of its first
/// parent.
pub fn start<E, P, S, R, F>(
    context: E,
    setup: Setup<E, P>,
    start_engine: F,
    (votes, certificates, resolver): ((S, R), (S, R), (S, R)),
) -> Handle<()>
where
    E: StorageContext + Spawner,
    P: PeerSets,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    F: Fn(
            E,
            Epoch,
            Arc<Scheme>,
            sha256::Digest,
            EpochChannels<S>,
            EpochChannels<S>,
            EpochChannels<S>,
        ) -> Handle<()>
        + Send
        + 'static,
{
    context.spawn(move |context| async move {
        let Setup {
            epocher,
            genesis,
            processed,
            marshal,
            mut boundaries,
            committees,
            schemes,
            mut peer_sets,
        } = setup;
        let (vote_mux, mut vote_handle, mut vote_backup) =
            Muxer::builder(context.child("vote_mux"), votes.0, votes.1)
                .with_backup()
                .build();
        vote_mux.start();
        let (cert_mux, mut cert_handle, mut cert_backup) = Muxer::builder(
            context.child("certificate_mux"),
            certificates.0,
            certificates.1,
        )
        .with_backup()
        .build();
        cert_mux.start();
        let (resolver_mux, mut resolver_handle) =
            Muxer::new(context.child("resolver_mux"), resolver.0, resolver.1);
        resolver_mux.start();

        let mut epoch = resume_epoch(&epocher, processed);
        let mut floor = match epoch.previous().and_then(|e| epocher.last(e)) {
            None => genesis,
            Some(boundary) => match marshal.get_info(boundary).await {
                Some((_, digest)) => digest,
                None => {
                    warn!(%epoch, "boundary block of the resumed epoch is unknown; stopping");
                    return;
                }
            },
        };
        let mut active: Option<Handle<()>> = None;
        loop {
            // The committees of this epoch and the next are in finalized state from the boundary
            // block on; registering the next one early lets marshal verify its finalizations as
            // soon as a peer sends them.
            let (scheme, peers) = match enter(&committees, &schemes, epoch).await {
                Ok(entered) => entered,
                Err(err) => {
                    error!(%epoch, %err, "cannot read the epoch's committee; stopping");
                    return;
                }
            };
            let member = scheme.me().is_some();
            peer_sets.track(epoch.get(), peers);
            let (Ok(v), Ok(c), Ok(r)) = (
                vote_handle.register(epoch.get()).await,
                cert_handle.register(epoch.get()).await,
                resolver_handle.register(epoch.get()).await,
            ) else {
                warn!(%epoch, "consensus channels closed; stopping");
                return;
            };
            let engine = start_engine(
                context
                    .child("simplex")
                    .with_attribute("epoch", epoch.get()),
                epoch,
                scheme,
                floor,
                v,
                c,
                r,
            );
            if let Some(old) = active.replace(engine) {
                old.abort();
            }
            info!(%epoch, member, "consensus engine started");
            let last = epocher.last(epoch).unwrap_or(Height::new(u64::MAX));
            // Wait for this epoch's last block; meanwhile a message of a later epoch means this
            // validator lags, so marshal fetches the boundary finalization from its sender.
            floor = loop {
                let lagging_peer = commonware_macros::select! {
                    boundary = boundaries.next() => match boundary {
                        Some((height, digest)) if height == last => break digest,
                        Some(_) => None,
                        None => return,
                    },
                    backup = vote_backup.recv() => match backup {
                        Some((their_epoch, (from, _))) if their_epoch > epoch.get() => Some(from),
                        Some(_) => None,
                        None => return,
                    },
                    backup = cert_backup.recv() => match backup {
                        Some((their_epoch, (from, _))) if their_epoch > epoch.get() => Some(from),
                        Some(_) => None,
                        None => return,
                    },
                };
                if let Some(from) = lagging_peer {
                    marshal.hint_finalized(last, NonEmptyVec::new(from));
                }
            };
            epoch = epoch.next();
        }
    })
}

/// Registers the schemes of `epoch` and the next one from their committees, forgets those past
/// [`KEPT_EPOCHS`], and returns `epoch`'s scheme and peers.
async fn enter<E: StorageContext + Spawner>(
    committees: &Committees<E>,
    schemes: &EpochSchemes,
    epoch: Epoch,
) -> Result<(Arc<Scheme>, crate::epochs::EpochPeers), crate::epochs::EpochError> {
    let scheme = schemes.register(epoch, committees.committee(epoch).await?);
    schemes.register(epoch.next(), committees.committee(epoch.next()).await?);
    schemes.retain_from(Epoch::new(epoch.get().saturating_sub(KEPT_EPOCHS)));
    Ok((scheme, committees.peers(epoch).await?))
}
