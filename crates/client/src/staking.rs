//! Staking's endpoints: the validator candidates and the committees of epochs.

use crate::{Client, ClientError, wire};
use reqwest::Method;

impl Client {
    /// `GET /v1/validators`.
    pub async fn validators(&self) -> Result<wire::Validators, ClientError> {
        self.json(Method::GET, "v1/validators", None).await
    }

    /// `GET /v1/supply`.
    pub async fn supply(&self) -> Result<wire::Supply, ClientError> {
        self.json(Method::GET, "v1/supply", None).await
    }

    /// `GET /v1/epochs/{n}`, or `None` when the chain has no committee for it yet.
    pub async fn epoch(&self, epoch: u64) -> Result<Option<wire::EpochView>, ClientError> {
        match self
            .json(Method::GET, &format!("v1/epochs/{epoch}"), None)
            .await
        {
            Ok(view) => Ok(Some(view)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }
}
