//! A node's own settings PVE keeps: its time zone and its resolver.

use super::{ProxmoxClient, ProxmoxError};
use reqwest::Method;
use serde::Deserialize;

/// `GET /nodes/{node}/dns`: `/etc/resolv.conf` as PVE reads it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Resolver {
    #[serde(default)]
    pub search: Option<String>,
    #[serde(default)]
    pub dns1: Option<String>,
    #[serde(default)]
    pub dns2: Option<String>,
    #[serde(default)]
    pub dns3: Option<String>,
}

impl Resolver {
    /// The name servers in order.
    pub fn servers(&self) -> Vec<String> {
        [&self.dns1, &self.dns2, &self.dns3]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

#[derive(Deserialize)]
struct Time {
    timezone: String,
}

impl ProxmoxClient {
    pub async fn timezone(&self, node: &str) -> Result<String, ProxmoxError> {
        let time: Time = self
            .typed(Method::GET, &format!("/nodes/{node}/time"), &[])
            .await?;
        Ok(time.timezone)
    }

    pub async fn set_timezone(&self, node: &str, timezone: &str) -> Result<(), ProxmoxError> {
        let params = [("timezone".to_owned(), timezone.to_owned())];
        self.call(Method::PUT, &format!("/nodes/{node}/time"), &params)
            .await?;
        Ok(())
    }

    pub async fn resolver(&self, node: &str) -> Result<Resolver, ProxmoxError> {
        self.typed(Method::GET, &format!("/nodes/{node}/dns"), &[])
            .await
    }

    /// Rewrites the node's resolv.conf: `search` and up to three servers (PVE drops the
    /// ones not given).
    pub async fn set_resolver(
        &self,
        node: &str,
        search: &str,
        servers: &[String],
    ) -> Result<(), ProxmoxError> {
        let mut params = vec![("search".to_owned(), search.to_owned())];
        for (i, server) in servers.iter().take(3).enumerate() {
            params.push((format!("dns{}", i + 1), server.clone()));
        }
        self.call(Method::PUT, &format!("/nodes/{node}/dns"), &params)
            .await?;
        Ok(())
    }
}
