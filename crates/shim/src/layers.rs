//! A CNCF Wasm OCI artifact's module (config media type
//! `application/vnd.wasm.config.v0+json`, layers `application/wasm`): the
//! shim asks containerd, through its API, for the container's image and
//! reads the Wasm layer from containerd's content store, checked against
//! its digest. (A plain image holds its `.wasm` in the root filesystem and
//! never gets here.)

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetContainerRequest, GetImageRequest, ReadContentRequest};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;
use containerd_client::with_namespace;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::future::Future;

/// Media types of a layer that holds a module or component.
pub const WASM_LAYER_TYPES: [&str; 2] = [
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
];

/// Content by digest: containerd's content store, or a map in tests.
pub trait Content {
    fn read(&self, digest: &str) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// An image manifest or an index of them.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The image's Wasm layer (the first one), checked against its digest:
/// `(digest, bytes)`, or none when the image has no Wasm layer. An index
/// is followed to its `wasm` (or `wasi`) platform's manifest, else its
/// first.
pub async fn wasm_layer(
    content: &impl Content,
    image_digest: &str,
) -> Result<Option<(String, Vec<u8>)>, String> {
    let mut digest = image_digest.to_string();
    for _ in 0..4 {
        let bytes = read_checked(content, &digest).await?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the image's manifest {digest}: {e}"))?;
        if !m.manifests.is_empty() {
            let wasm = m.manifests.iter().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.architecture == "wasm" || p.os == "wasip1" || p.os == "wasi")
            });
            digest = wasm.unwrap_or(&m.manifests[0]).digest.clone();
            continue;
        }
        let Some(layer) = m
            .layers
            .iter()
            .find(|l| WASM_LAYER_TYPES.contains(&l.media_type.as_str()))
        else {
            return Ok(None);
        };
        let bytes = read_checked(content, &layer.digest).await?;
        return Ok(Some((layer.digest.clone(), bytes)));
    }
    Err(format!("the image {image_digest}: indexes nested too deep"))
}

/// Reads `digest` and checks that the bytes are the ones it names.
async fn read_checked(content: &impl Content, digest: &str) -> Result<Vec<u8>, String> {
    let want = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{digest}: not a sha256 digest"))?;
    let bytes = content.read(digest).await?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != want {
        return Err(format!(
            "{digest}: the content store holds other bytes (sha256:{got})"
        ));
    }
    Ok(bytes)
}

/// containerd's API, for one namespace.
pub struct Containerd {
    channel: Channel,
    namespace: String,
}

impl Containerd {
    pub async fn connect(address: &str, namespace: &str) -> Result<Containerd, String> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let channel = containerd_client::connect(path)
            .await
            .map_err(|e| format!("containerd at {path}: {e}"))?;
        Ok(Containerd {
            channel,
            namespace: namespace.to_string(),
        })
    }

    /// The digest of the container's image, none when the container has
    /// no image (`ctr run --rootfs`).
    pub async fn image_of(&self, container: &str) -> Result<Option<String>, String> {
        let req = with_namespace!(
            GetContainerRequest {
                id: container.to_string()
            },
            self.namespace
        );
        let c = ContainersClient::new(self.channel.clone())
            .get(req)
            .await
            .map_err(|e| format!("container {container}: {}", e.message()))?
            .into_inner()
            .container
            .ok_or_else(|| format!("container {container}: not found"))?;
        if c.image.is_empty() {
            return Ok(None);
        }
        let req = with_namespace!(
            GetImageRequest {
                name: c.image.clone()
            },
            self.namespace
        );
        let image = ImagesClient::new(self.channel.clone())
            .get(req)
            .await
            .map_err(|e| format!("image {}: {}", c.image, e.message()))?
            .into_inner()
            .image
            .and_then(|i| i.target)
            .ok_or_else(|| format!("image {}: no target", c.image))?;
        Ok(Some(image.digest))
    }
}

impl Content for Containerd {
    async fn read(&self, digest: &str) -> Result<Vec<u8>, String> {
        let req = with_namespace!(
            ReadContentRequest {
                digest: digest.to_string(),
                ..Default::default()
            },
            self.namespace
        );
        let mut stream = ContentClient::new(self.channel.clone())
            .read(req)
            .await
            .map_err(|e| format!("content {digest}: {}", e.message()))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|e| format!("content {digest}: {}", e.message()))?
        {
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<String, Vec<u8>>);

    impl Content for Map {
        async fn read(&self, digest: &str) -> Result<Vec<u8>, String> {
            self.0
                .get(digest)
                .cloned()
                .ok_or_else(|| format!("content {digest}: not found"))
        }
    }

    fn put(m: &mut Map, bytes: &[u8]) -> String {
        let d = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        m.0.insert(d.clone(), bytes.to_vec());
        d
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn finds_the_wasm_layer_through_an_index_and_checks_digests() {
        let mut m = Map(HashMap::new());
        let module = b"\0asm\x01\0\0\0";
        let layer = put(&mut m, module);
        let config = put(&mut m, b"{}");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/wasm", "digest": layer, "size": module.len()}],
        })
        .to_string();
        let manifest = put(&mut m, manifest.as_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:00", "size": 1,
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": 1,
                 "platform": {"architecture": "wasm", "os": "wasip1"}},
            ],
        })
        .to_string();
        let index = put(&mut m, index.as_bytes());
        let (d, bytes) = block_on(wasm_layer(&m, &index)).unwrap().unwrap();
        assert_eq!((d, bytes.as_slice()), (layer.clone(), &module[..]));

        // A plain image: no Wasm layer.
        let plain = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": config, "size": 2}],
        })
        .to_string();
        let plain = put(&mut m, plain.as_bytes());
        assert!(block_on(wasm_layer(&m, &plain)).unwrap().is_none());

        // Bytes that are not the ones the digest names.
        m.0.insert(layer.clone(), b"\0asm tampered".to_vec());
        let e = block_on(wasm_layer(&m, &manifest)).unwrap_err();
        assert!(e.contains("the content store holds other bytes"), "{e}");
    }
}
