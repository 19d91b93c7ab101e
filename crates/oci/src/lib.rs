//! WebAssembly as OCI artifacts: push and pull in the CNCF Wasm artifact
//! format (config `application/vnd.wasm.config.v0+json`, one layer
//! `application/wasm`), with credentials from the Docker config file, and a
//! content-addressed store of what was pulled so that `run` (and the shim)
//! use it without another download.
//!
//! The store is `wasmlayer_core::store` (by default under the cache root,
//! `$XDG_CACHE_HOME/wasmlayer/oci`): layers by digest, checked when stored
//! and when read, and a record of what each reference pulled.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::path::{Path, PathBuf};
use wasmlayer_core::{Error, Result};

/// The config media type of a CNCF Wasm artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its Wasm layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The largest layer pulled: a module or component, not a disk image.
pub const MAX_LAYER: u64 = 256 << 20;

/// How to reach the registry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Plain HTTP instead of HTTPS (a registry on loopback).
    pub insecure: bool,
}

/// What a push produced.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest (`sha256:...`): pull `REF@DIGEST` to get exactly this.
    pub digest: String,
    pub manifest_url: String,
}

/// A pulled artifact in the store.
pub use wasmlayer_core::store::Record as Pulled;
/// The content-addressed store of pulled artifacts (shared with `compile
/// --store` and `run --store`).
pub use wasmlayer_core::store::{sha256_digest, Store};

/// Whether `s` names an OCI artifact rather than a file: a registry host
/// (with a `.` or a port, or `localhost`), a repository and a tag or digest.
pub fn looks_like_reference(s: &str) -> bool {
    let Some((host, rest)) = s.split_once('/') else {
        return false;
    };
    let host_like = host == "localhost"
        || host.contains('.') && !host.starts_with('.')
        || host.contains(':') && !host.starts_with(':');
    host_like && !rest.is_empty() && !Path::new(s).exists() && s.parse::<Reference>().is_ok()
}

fn parse_reference(reference: &str) -> Result<Reference> {
    reference.parse::<Reference>().map_err(|e| {
        Error::usage(format!(
            "invalid OCI reference `{reference}`: {e} (expected REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST])"
        ))
    })
}

fn client(opts: Options) -> Client {
    // TLS for registries that are not on loopback, with ring's crypto.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: if opts.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    })
}

/// Credentials for `registry` from the Docker config file
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, with its
/// credential helpers); anonymous when it has none.
pub fn auth_for(registry: &str) -> RegistryAuth {
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(e) => {
            tracing::debug!(registry, "no Docker credentials ({e}); anonymous");
            RegistryAuth::Anonymous
        }
    }
}

fn io_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::host(format!("cannot start the I/O runtime: {e}")))
}

/// What went wrong talking to the registry, for people.
fn registry_error(reference: &Reference, e: oci_client::errors::OciDistributionError) -> Error {
    use oci_client::errors::OciDistributionError as E;
    let registry = reference.resolve_registry();
    match &e {
        E::RequestError(r) if r.is_connect() || r.is_timeout() => Error::host(format!(
            "cannot reach the registry {registry}: {}",
            root_cause(r)
        )),
        E::ImageManifestNotFoundError(_) => {
            Error::host(format!("{reference}: not found in the registry {registry}"))
        }
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                )
            }) =>
        {
            Error::host(format!("{reference}: not found in the registry {registry}"))
        }
        E::AuthenticationFailure(_)
        | E::UnauthorizedError { .. }
        | E::ServerError {
            code: 401 | 403, ..
        } => Error::host(format!(
            "{reference}: the registry {registry} refused the credentials ({e}); set them in the Docker config file"
        )),
        _ => Error::host(format!("{reference}: registry {registry}: {e}")),
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        last = c.to_string();
        cur = c.source();
    }
    last
}

/// Pushes `wasm` (a module or component) as a CNCF Wasm artifact.
pub fn push(wasm: &[u8], reference: &str, opts: Options) -> Result<Pushed> {
    let (format, kind) = wasmlayer_core::artifact::detect(wasm)?;
    if format != wasmlayer_core::Format::Wasm {
        return Err(Error::invalid(
            "only binary WebAssembly (a module or component) is pushed as a Wasm artifact",
        ));
    }
    let reference = parse_reference(reference)?;
    let component = kind == Some(wasmlayer_core::ArtifactKind::Component);
    let layer_digest = sha256_digest(wasm);
    let config = serde_json::json!({
        "created": null,
        "architecture": "wasm",
        "os": if component { "wasip2" } else { "wasip1" },
        "layerDigests": [layer_digest],
        "component": serde_json::Value::Null,
    });
    let mut config_json = config;
    config_json
        .as_object_mut()
        .expect("an object")
        .retain(|_, v| !v.is_null());
    let layers = vec![ImageLayer::new(
        wasm.to_vec(),
        WASM_LAYER_MEDIA_TYPE.to_string(),
        None,
    )];
    let config = Config {
        data: serde_json::to_vec(&config_json).expect("JSON").into(),
        media_type: WASM_CONFIG_MEDIA_TYPE.to_string(),
        annotations: None,
    };
    let manifest = OciImageManifest::build(&layers, &config, None);
    let client = client(opts);
    let auth = auth_for(reference.resolve_registry());
    let rt = io_runtime()?;
    let pushed = rt
        .block_on(client.push(&reference, &layers, config, &auth, Some(manifest.clone())))
        .map_err(|e| registry_error(&reference, e))?;
    let body = serde_json::to_vec(&manifest).expect("JSON");
    // The digest the registry computed, or ours of what was sent.
    let digest = pushed
        .manifest_url
        .rsplit('/')
        .next()
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
        .unwrap_or_else(|| sha256_digest(&body));
    Ok(Pushed {
        digest,
        manifest_url: pushed.manifest_url,
    })
}

/// Pulls a CNCF Wasm artifact (or an image whose layers include one
/// `application/wasm` layer), checks the manifest against the reference's
/// digest (when it has one) and the layer against its descriptor's digest,
/// and stores it.
pub fn pull(reference: &str, store: &Store, opts: Options) -> Result<Pulled> {
    let parsed = parse_reference(reference)?;
    let client = client(opts);
    let auth = auth_for(parsed.resolve_registry());
    let rt = io_runtime()?;
    rt.block_on(async {
        let (body, digest) = client
            .pull_manifest_raw(
                &parsed,
                &auth,
                &[
                    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
                ],
            )
            .await
            .map_err(|e| registry_error(&parsed, e))?;
        let computed = sha256_digest(&body);
        if let Some(want) = parsed.digest() {
            if want != computed {
                return Err(Error::invalid(format!(
                    "{reference}: digest mismatch: the registry sent a manifest with digest {computed}"
                )));
            }
        }
        if digest != computed && digest.starts_with("sha256:") {
            tracing::debug!(%digest, %computed, "the registry's manifest digest header differs");
        }
        let manifest: OciManifest = serde_json::from_slice(&body).map_err(|e| {
            Error::invalid(format!("{reference}: not an OCI image manifest: {e}"))
        })?;
        let OciManifest::Image(manifest) = manifest else {
            return Err(Error::invalid(format!(
                "{reference}: an image index, not one artifact; name a platform's manifest by its digest"
            )));
        };
        let layer = wasm_layer(reference, &manifest)?;
        if layer.size < 0 || layer.size as u64 > MAX_LAYER {
            return Err(Error::invalid(format!(
                "{reference}: the Wasm layer is {} bytes, more than the {} allowed",
                layer.size, MAX_LAYER
            )));
        }
        let mut bytes: Vec<u8> = Vec::with_capacity(layer.size as usize);
        client
            .pull_blob(&parsed, layer, &mut bytes)
            .await
            .map_err(|e| match e {
                oci_client::errors::OciDistributionError::DigestError(d) => Error::invalid(
                    format!("{reference}: digest mismatch in the Wasm layer: {d}"),
                ),
                other => registry_error(&parsed, other),
            })?;
        let got = sha256_digest(&bytes);
        if got != layer.digest {
            return Err(Error::invalid(format!(
                "{reference}: digest mismatch: the Wasm layer should be {} and is {got}",
                layer.digest
            )));
        }
        wasmlayer_core::artifact::detect(&bytes).map_err(|e| {
            Error::invalid(format!("{reference}: the application/wasm layer is not WebAssembly: {e}"))
        })?;
        store.record(
            Pulled {
                reference: reference.to_string(),
                manifest: computed,
                layer: got,
                size: bytes.len() as u64,
                path: PathBuf::new(),
            },
            &bytes,
        )
    })
}

/// The one Wasm layer of an artifact's manifest.
fn wasm_layer<'a>(reference: &str, manifest: &'a OciImageManifest) -> Result<&'a OciDescriptor> {
    let wasm: Vec<&OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
        .collect();
    match wasm.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::invalid(format!(
            "{reference}: not a Wasm artifact: no layer of type {WASM_LAYER_MEDIA_TYPE} (config {}, layers {})",
            manifest.config.media_type,
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(Error::invalid(format!(
            "{reference}: {} layers of type {WASM_LAYER_MEDIA_TYPE}; a Wasm artifact has one",
            wasm.len()
        ))),
    }
}

/// The stored artifact for `reference`, pulling it first when the store
/// does not have it.
pub fn resolve(reference: &str, store: &Store, opts: Options) -> Result<Pulled> {
    if let Some(p) = store.lookup(reference) {
        tracing::info!(reference, layer = %p.layer, "OCI artifact from the local store: nothing downloaded");
        return Ok(p);
    }
    pull(reference, store, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_files_are_told_apart() {
        assert!(looks_like_reference("127.0.0.1:5000/hello/p1:1"));
        assert!(looks_like_reference("localhost/hello:latest"));
        assert!(looks_like_reference("ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
        assert!(!looks_like_reference("hello.wasm"));
        assert!(!looks_like_reference("target/guests/hello-p1.wasm"));
        assert!(!looks_like_reference("./x/y.wasm"));
    }
}
