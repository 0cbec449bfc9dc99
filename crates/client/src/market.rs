//! The compute market's endpoints, the blob store and unit outputs.

use crate::{Client, ClientError, MAX_BLOB_BYTES, wire};
use exo_types::{Address, Hash32, address_to_hex};
use reqwest::{Method, StatusCode};

/// Maps a 404 answer to `None`.
fn found<T>(result: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

fn page_query(from: u64, limit: Option<u64>) -> String {
    match limit {
        Some(limit) => format!("from={from}&limit={limit}"),
        None => format!("from={from}"),
    }
}

/// The BLAKE3 hash of `bytes`, the name the blob store gives them.
pub fn blob_hash(bytes: &[u8]) -> Hash32 {
    *blake3::hash(bytes).as_bytes()
}

impl Client {
    /// `GET /v1/providers?from=&limit=`.
    pub async fn providers(
        &self,
        from: u64,
        limit: Option<u64>,
    ) -> Result<wire::ProviderPage, ClientError> {
        let path = format!("v1/providers?{}", page_query(from, limit));
        self.json(Method::GET, &path, None).await
    }

    /// `GET /v1/providers/{id}`, or `None` if there is no such provider.
    pub async fn provider(&self, id: u64) -> Result<Option<wire::Provider>, ClientError> {
        found(
            self.json(Method::GET, &format!("v1/providers/{id}"), None)
                .await,
        )
    }

    /// `GET /v1/accounts/{address}/provider`: the provider id `address` registered, if any.
    pub async fn provider_of(&self, address: &Address) -> Result<Option<u64>, ClientError> {
        let path = format!("v1/accounts/{}/provider", address_to_hex(address));
        let answer: Option<wire::ProviderOf> = found(self.json(Method::GET, &path, None).await)?;
        Ok(answer.map(|a| a.provider))
    }

    /// One page of `GET /v1/providers/{id}/work`.
    pub async fn provider_work_page(
        &self,
        id: u64,
        from: u64,
        limit: Option<u64>,
    ) -> Result<wire::WorkPage, ClientError> {
        let path = format!("v1/providers/{id}/work?{}", page_query(from, limit));
        self.json(Method::GET, &path, None).await
    }

    /// `GET /v1/providers/{id}/capacity`.
    pub async fn provider_capacity(&self, id: u64) -> Result<wire::ProviderCapacity, ClientError> {
        let path = format!("v1/providers/{id}/capacity");
        self.json(Method::GET, &path, None).await
    }

    /// Every open replica of provider `id` (all pages).
    pub async fn provider_work(&self, id: u64) -> Result<Vec<wire::WorkItem>, ClientError> {
        let mut work = Vec::new();
        let mut from = 0;
        loop {
            let page = self.provider_work_page(id, from, None).await?;
            work.extend(page.work);
            match page.next {
                Some(next) if next > from => from = next,
                _ => return Ok(work),
            }
        }
    }

    /// `GET /v1/market/offers?from=&limit=`.
    pub async fn offers(
        &self,
        from: u64,
        limit: Option<u64>,
    ) -> Result<wire::OfferPage, ClientError> {
        let path = format!("v1/market/offers?{}", page_query(from, limit));
        self.json(Method::GET, &path, None).await
    }

    /// The distinct providers with an offer among the first `limit` offers on the book.
    pub async fn offering_providers(&self, limit: u64) -> Result<Vec<u64>, ClientError> {
        let page = self.offers(0, Some(limit)).await?;
        let mut providers: Vec<u64> = page.offers.iter().map(|o| o.provider).collect();
        providers.sort_unstable();
        providers.dedup();
        Ok(providers)
    }

    /// `GET /v1/market/depth`.
    pub async fn depth(&self) -> Result<wire::Depth, ClientError> {
        self.json(Method::GET, "v1/market/depth", None).await
    }

    /// `GET /v1/jobs/{id}?from=&limit=`: the job with one page of its units, or `None`.
    pub async fn job_page(
        &self,
        id: u64,
        from: u32,
        limit: Option<u64>,
    ) -> Result<Option<wire::Job>, ClientError> {
        let path = format!("v1/jobs/{id}?{}", page_query(u64::from(from), limit));
        found(self.json(Method::GET, &path, None).await)
    }

    /// `GET /v1/jobs/{id}` with every unit (all pages), or `None` if there is no such job.
    pub async fn job(&self, id: u64) -> Result<Option<wire::Job>, ClientError> {
        let Some(mut job) = self.job_page(id, 0, None).await? else {
            return Ok(None);
        };
        while let Some(next) = job.next_unit {
            let Some(page) = self.job_page(id, next, None).await? else {
                break;
            };
            if page.units.is_empty() {
                break;
            }
            job.units.extend(page.units);
            job.next_unit = page.next_unit.filter(|n| *n > next);
        }
        Ok(Some(job))
    }

    /// `GET /v1/jobs?requester=&height=`: the jobs `requester` submitted at `height` or later,
    /// newest first.
    pub async fn jobs_since(
        &self,
        requester: &Address,
        height: u64,
    ) -> Result<Vec<wire::JobSummary>, ClientError> {
        let path = format!(
            "v1/jobs?requester={}&height={height}",
            address_to_hex(requester)
        );
        let page: wire::JobPage = self.json(Method::GET, &path, None).await?;
        Ok(page.jobs)
    }

    /// `GET /v1/apps?from=&limit=`.
    pub async fn apps(&self, from: u64, limit: Option<u64>) -> Result<wire::AppPage, ClientError> {
        let path = format!("v1/apps?{}", page_query(from, limit));
        self.json(Method::GET, &path, None).await
    }

    /// `GET /v1/apps/{hash}/{developer}`, or `None` if `developer` published no app with this
    /// module.
    pub async fn app(
        &self,
        module_hash: &Hash32,
        developer: &Address,
    ) -> Result<Option<wire::App>, ClientError> {
        let path = format!(
            "v1/apps/{}/{}",
            hex::encode(module_hash),
            address_to_hex(developer)
        );
        found(self.json(Method::GET, &path, None).await)
    }

    /// `PUT /v1/blobs`: stores `bytes` for `key`'s account (which must be funded; the blob
    /// counts against its quota) and answers their hash, checked against the hash computed
    /// here (the node refuses bytes that arrive with another hash). Asks the node for its
    /// chain id first: use [`Client::put_blob_on`] when it is known.
    pub async fn put_blob(
        &self,
        bytes: Vec<u8>,
        key: &exo_types::PrivateKey,
    ) -> Result<Hash32, ClientError> {
        let chain_id = self.status().await?.chain_id;
        self.put_blob_on(&chain_id, bytes, key).await
    }

    /// [`Client::put_blob`] on chain `chain_id`.
    pub async fn put_blob_on(
        &self,
        chain_id: &str,
        bytes: Vec<u8>,
        key: &exo_types::PrivateKey,
    ) -> Result<Hash32, ClientError> {
        let hash = blob_hash(&bytes);
        let path = format!("v1/blobs?hash={}", hex::encode(hash));
        let headers = wire::blob_upload_headers(chain_id, hash, key);
        let stored: wire::BlobStored = self.upload(Method::PUT, &path, headers, bytes).await?;
        if stored.hash != hash {
            return Err(self.protocol("node stored the blob under another hash"));
        }
        Ok(hash)
    }

    /// `HEAD /v1/blobs/{hash}`: the size of the blob if the node holds it.
    pub async fn blob_size(&self, hash: &Hash32) -> Result<Option<u64>, ClientError> {
        let path = format!("v1/blobs/{}", hex::encode(hash));
        let response = self
            .http
            .head(self.endpoint(&path)?)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => response
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| self.protocol("HEAD answer without a Content-Length")),
            status => Err(self.refusal(status, &[])),
        }
    }

    /// `GET /v1/blobs/{hash}`: the blob's bytes, checked against `hash` here as well.
    pub async fn get_blob(&self, hash: &Hash32) -> Result<Vec<u8>, ClientError> {
        let bytes = self.get_blob_range(hash, None).await?;
        if blob_hash(&bytes) != *hash {
            return Err(self.protocol(format!(
                "blob {} arrived with another hash",
                hex::encode(hash)
            )));
        }
        Ok(bytes)
    }

    /// `GET /v1/blobs/{hash}` with `Range: bytes=start-end` (inclusive) when `range` is given.
    /// A part of a blob cannot be checked against its hash.
    pub async fn get_blob_range(
        &self,
        hash: &Hash32,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>, ClientError> {
        let path = format!("v1/blobs/{}", hex::encode(hash));
        let mut request = self
            .http
            .get(self.endpoint(&path)?)
            .timeout(self.blob_timeout());
        if let Some((start, end)) = range {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let body = self.read_limited(response, MAX_BLOB_BYTES).await?;
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        Ok(body)
    }

    /// `PUT /v1/outputs/{job}/{unit}` without a signature: records that the blob `archive`
    /// (see [`crate::outputs`]) holds the outputs of a unit that has its verdict (the node
    /// checks it against the accepted digest). Before the verdict the node refuses it
    /// (`unsigned`): use [`Client::put_replica_outputs`].
    pub async fn put_outputs(
        &self,
        job: u64,
        unit: u32,
        archive: &Hash32,
    ) -> Result<wire::Outputs, ClientError> {
        self.send_outputs(job, unit, &wire::OutputsPut::unsigned(*archive))
            .await
    }

    /// `PUT /v1/outputs/{job}/{unit}` signed by `key`, the provider of replica `replica` of
    /// the unit on chain `chain_id`: accepted before the unit's verdict as that replica's
    /// candidate.
    pub async fn put_replica_outputs(
        &self,
        chain_id: &str,
        job: u64,
        unit: u32,
        replica: u32,
        archive: &Hash32,
        key: &exo_types::PrivateKey,
    ) -> Result<wire::Outputs, ClientError> {
        let request = wire::OutputsPut::signed(chain_id, job, unit, replica, *archive, key);
        self.send_outputs(job, unit, &request).await
    }

    /// `PUT /v1/outputs/{job}/{unit}/replicas/{replica}`: uploads `bytes`, a packed outputs
    /// archive, and registers it for replica `replica` of the unit in one request, signed with
    /// `key` (the replica's provider) for the chain `chain_id`.
    pub async fn put_replica_archive(
        &self,
        chain_id: &str,
        (job, unit, replica): (u64, u32, u32),
        bytes: Vec<u8>,
        key: &exo_types::PrivateKey,
    ) -> Result<wire::Outputs, ClientError> {
        let archive = blob_hash(&bytes);
        let claim = wire::OutputsPut::signed(chain_id, job, unit, replica, archive, key);
        let path = format!(
            "v1/outputs/{job}/{unit}/replicas/{replica}?archive={}",
            hex::encode(archive)
        );
        let headers = [(wire::SIGNATURE_HEADER, claim.signature.unwrap_or_default())];
        let outputs: wire::Outputs = self.upload(Method::PUT, &path, headers, bytes).await?;
        if outputs.archive != archive {
            return Err(self.protocol("node registered another archive"));
        }
        Ok(outputs)
    }

    /// `POST /v1/outputs/batch`: uploads outputs archives of replicas of `key`'s providers
    /// (at most [`wire::MAX_OUTPUTS_BATCH_ITEMS`], each at most
    /// [`wire::MAX_OUTPUTS_BATCH_ARCHIVE_BYTES`]) and registers each for its replica, under
    /// one signature for the chain `chain_id`. The answer says, per archive in the order
    /// sent, its registered outputs or the error that refused it.
    pub async fn put_outputs_batch(
        &self,
        chain_id: &str,
        batch: &wire::OutputsBatch,
        key: &exo_types::PrivateKey,
    ) -> Result<wire::OutputsBatchResult, ClientError> {
        let headers = wire::signed_headers(key, &batch.claim(chain_id).sign(key));
        let result: wire::OutputsBatchResult = self
            .upload(Method::POST, "v1/outputs/batch", headers, batch.to_bytes())
            .await?;
        let answered = result.items.iter().map(|i| (i.job, i.unit, i.replica));
        let sent = batch.items.iter().map(|i| (i.job, i.unit, i.replica));
        if !answered.eq(sent) {
            return Err(self.protocol("node answered for other archives than those sent"));
        }
        Ok(result)
    }

    /// `method` (`PUT`, `POST`) of `bytes` to `path` with the signature `headers`, within the
    /// blob timeout: the node's JSON answer.
    async fn upload<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        headers: impl IntoIterator<Item = (&'static str, String)>,
        bytes: Vec<u8>,
    ) -> Result<T, ClientError> {
        let mut request = self
            .http
            .request(method, self.endpoint(path)?)
            .timeout(self.blob_timeout())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        let body = self
            .read_limited(response, crate::MAX_RESPONSE_BYTES)
            .await?;
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        let route = path.split('?').next().unwrap_or(path);
        serde_json::from_slice(&body).map_err(|e| self.protocol(format!("{route}: {e}")))
    }

    async fn send_outputs(
        &self,
        job: u64,
        unit: u32,
        request: &wire::OutputsPut,
    ) -> Result<wire::Outputs, ClientError> {
        let body = serde_json::to_string(request).map_err(|e| self.protocol(e.to_string()))?;
        self.json(Method::PUT, &format!("v1/outputs/{job}/{unit}"), Some(body))
            .await
    }

    /// `GET /v1/outputs/{job}/{unit}`: where this node holds the accepted outputs of a unit;
    /// `None` if it holds none or the unit is not accepted (the error code tells which when
    /// that matters: use [`Client::outputs_or_reason`]).
    pub async fn outputs(&self, job: u64, unit: u32) -> Result<Option<wire::Outputs>, ClientError> {
        found(self.outputs_or_reason(job, unit).await)
    }

    /// [`Client::outputs`] as of a finalized height of at least `height`: a node that is
    /// behind waits (briefly) to reach it before it answers.
    pub async fn outputs_at(
        &self,
        job: u64,
        unit: u32,
        height: u64,
    ) -> Result<Option<wire::Outputs>, ClientError> {
        let path = format!("v1/outputs/{job}/{unit}?min_height={height}");
        found(self.json(Method::GET, &path, None).await)
    }

    /// `GET /v1/outputs/{job}/{unit}`, keeping the node's refusal.
    pub async fn outputs_or_reason(
        &self,
        job: u64,
        unit: u32,
    ) -> Result<wire::Outputs, ClientError> {
        self.json(Method::GET, &format!("v1/outputs/{job}/{unit}"), None)
            .await
    }

    /// Downloads the accepted outputs of a unit from this node and checks them: the archive
    /// against its blob hash, and its recomputed result digest against `accepted_digest`.
    pub async fn fetch_outputs(
        &self,
        job: u64,
        unit: u32,
        accepted_digest: &Hash32,
    ) -> Result<crate::outputs::Archive, ClientError> {
        let where_ = self.outputs_or_reason(job, unit).await?;
        let bytes = self.get_blob(&where_.archive).await?;
        let archive = crate::outputs::unpack(&bytes)
            .map_err(|e| self.protocol(format!("outputs of job {job} unit {unit}: {e}")))?;
        if archive.result_digest() != *accepted_digest {
            return Err(self.protocol(format!(
                "outputs of job {job} unit {unit} do not have the accepted digest"
            )));
        }
        Ok(archive)
    }
}
