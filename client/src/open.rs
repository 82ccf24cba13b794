//! Opening a file's bytes: `GET /v1/files/{uuid}` and its redirect, waiting while the
//! deployment prepares a copy (301 with `Retry-After`).

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::api::{DssClient, shown};
use crate::error::ClientError;

/// Longest wait between polls of a file the deployment is still preparing.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The answer carrying a file's bytes (those of `range`, first and last offset, when given):
/// follows the deployment's redirect to them, and waits while it answers 301 (a copy being
/// prepared).
pub(crate) async fn open_bytes(
    client: &DssClient,
    url: &Url,
    range: Option<(u64, Option<u64>)>,
) -> Result<Response, ClientError> {
    let range = |rb: reqwest::RequestBuilder| match range {
        Some((first, last)) => rb.header(
            reqwest::header::RANGE,
            format!(
                "bytes={first}-{}",
                last.map_or(String::new(), |l| l.to_string())
            ),
        ),
        None => rb,
    };
    loop {
        let res = client
            .send(range(client.request(Method::GET, url.clone())))
            .await?;
        match res.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => return Ok(res),
            StatusCode::MOVED_PERMANENTLY => {
                let wait = res
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(5), Duration::from_secs)
                    .clamp(Duration::from_millis(200), MAX_RETRY_AFTER);
                tracing::info!(url = %shown(url), ?wait, "the deployment is preparing the file");
                tokio::time::sleep(wait).await;
            }
            s if s.is_redirection() => {
                let location = res
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        ClientError::Invalid(format!("{s} from {} without a Location", shown(url)))
                    })?;
                let to = url
                    .join(location)
                    .map_err(|err| ClientError::Invalid(format!("Location '{location}': {err}")))?;
                let res = client
                    .send(range(client.request(Method::GET, to.clone())))
                    .await?;
                return match res.status() {
                    StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(res),
                    s => Err(ClientError::Invalid(format!(
                        "{} answered {s} instead of the file's bytes",
                        shown(&to)
                    ))),
                };
            }
            s => {
                return Err(ClientError::Invalid(format!(
                    "{} answered {s} instead of the file's bytes",
                    shown(url)
                )));
            }
        }
    }
}
