//! WASI as an [`Extension`]: preview 1 for core modules, 0.2 and 0.3 for
//! components (each release only when the component imports from it), a
//! context built from the grant, and name lookups and sockets held to the
//! network allowlist.

use crate::caps::Capabilities;
use crate::error::{Error, Result};
use crate::host::{ComponentState, Extension, Imports, ModuleState};
use std::sync::Arc;
use wasmtime_wasi::WasiCtxBuilder;

/// WASI's imports; every [`crate::host::Host`] starts with it.
pub struct Wasi;

impl Extension for Wasi {
    fn name(&self) -> &'static str {
        "WASI"
    }

    fn link_module(&self, linker: &mut wasmtime::Linker<ModuleState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p1::add_to_linker_async(linker, ModuleState::wasi_p1)
    }

    fn link_component(
        &self,
        linker: &mut wasmtime::component::Linker<ComponentState>,
        imports: &Imports,
    ) -> wasmtime::Result<()> {
        add_wasi_to_linker(linker, imports)
    }
}

/// WASI 0.2 and 0.3, each only when the component imports from it (a 0.3
/// guest's standard library may still use 0.2 interfaces; linking a release
/// it does not use would only cost start-up time), with name lookups of
/// either going through the allowlist's names.
fn add_wasi_to_linker(
    linker: &mut wasmtime::component::Linker<ComponentState>,
    imports: &Imports,
) -> wasmtime::Result<()> {
    fn lookup(s: &mut ComponentState) -> FilteredLookup<'_> {
        let names = s.names.clone();
        FilteredLookup {
            inner: wasmtime_wasi::sockets::WasiSocketsView::sockets(s),
            names,
        }
    }
    let (p2, p3) = (imports.wasi("0.2"), imports.wasi("0.3"));
    if p2 || !p3 {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::add_to_linker::<
            ComponentState,
            FilteredLookupData,
        >(linker, lookup)?;
        linker.allow_shadowing(false);
    }
    #[cfg(feature = "p3")]
    if p3 {
        wasmtime_wasi::p3::add_to_linker(linker)?;
        linker.allow_shadowing(true);
        wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::add_to_linker::<
            ComponentState,
            FilteredLookupData,
        >(linker, lookup)?;
        linker.allow_shadowing(false);
    }
    Ok(())
}

/// Builds a WASI context that grants exactly `caps` (stdio aside: see
/// [`crate::host::Stdio`]).
///
/// Name lookups (`wasi:sockets/ip-name-lookup`) are switched on when a
/// network pattern names a host; the runner's linker then resolves only the
/// names the patterns give (see [`NameLookup`]).
pub fn builder(caps: &Capabilities, program_name: &str) -> Result<WasiCtxBuilder> {
    caps.check_dirs()?;
    let mut b = WasiCtxBuilder::new();
    b.arg(program_name);
    b.args(&caps.args);
    b.envs(&caps.resolved_env());
    for d in &caps.dirs {
        let perms = if d.read_only {
            wasmtime_wasi::FsPerms::ReadOnly
        } else {
            wasmtime_wasi::FsPerms::ReadWrite
        };
        b.preopened_dir(&d.host, &d.guest, perms).map_err(|e| {
            Error::usage(format!("cannot open directory {}: {e}", d.host.display()))
        })?;
    }
    if !caps.allow_net.is_empty() {
        let patterns = Arc::new(caps.allow_net.clone());
        b.allow_tcp(true);
        b.allow_udp(true);
        b.allow_ip_name_lookup(caps.allow_net.iter().any(|p| p.needs_name_lookup()));
        b.socket_addr_check(move |addr, use_| {
            let patterns = patterns.clone();
            Box::pin(async move { net_check(&patterns, addr, use_) })
        });
    }
    Ok(b)
}

/// Outbound only: connects and sends to allowlisted addresses; binds only
/// the implicit wildcard bind that an outbound socket needs; no listening.
fn net_check(
    patterns: &[crate::caps::NetPattern],
    addr: std::net::SocketAddr,
    use_: wasmtime_wasi::sockets::SocketAddrUse,
) -> bool {
    use wasmtime_wasi::sockets::SocketAddrUse as U;
    let allowed = match use_ {
        U::TcpConnect | U::UdpSend | U::UdpReceive => patterns.iter().any(|p| p.matches(&addr)),
        U::TcpBind | U::UdpBind => addr.ip().is_unspecified() && addr.port() == 0,
        _ => false,
    };
    if !allowed {
        tracing::warn!(%addr, ?use_, "network access denied: not on the allowlist");
    }
    allowed
}

/// Which host names a guest may look up: the names the network allowlist
/// gives, or any name when it has a `*` host. A lookup of any other name is
/// refused before it reaches a resolver, so the guest cannot use DNS queries
/// as a channel out of the sandbox. IP address literals need no resolver
/// and are always answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameLookup {
    Any,
    Only(Vec<String>),
}

impl NameLookup {
    pub fn for_patterns(patterns: &[crate::caps::NetPattern]) -> NameLookup {
        use crate::caps::HostPattern;
        let mut names = Vec::new();
        for p in patterns {
            match &p.host {
                HostPattern::Any => return NameLookup::Any,
                HostPattern::Name(n) => names.push(n.to_ascii_lowercase()),
                HostPattern::Cidr(..) => {}
            }
        }
        NameLookup::Only(names)
    }

    /// Whether `name`, as the guest asked for it, may be resolved.
    pub fn allows(&self, name: &str) -> bool {
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        match self {
            NameLookup::Any => true,
            NameLookup::Only(names) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
        }
    }
}

/// `wasi:sockets/ip-name-lookup` for the runner: WASI's own implementation,
/// behind the [`NameLookup`] filter.
struct FilteredLookup<'a> {
    inner: wasmtime_wasi::sockets::WasiSocketsCtxView<'a>,
    names: Arc<NameLookup>,
}

struct FilteredLookupData;

impl wasmtime::component::HasData for FilteredLookupData {
    type Data<'a> = FilteredLookup<'a>;
}

mod lookup {
    use super::FilteredLookup;
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
        Host, HostResolveAddressStream, ResolveAddressStream,
    };
    use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
    use wasmtime_wasi::p2::{DynPollable, SocketError};

    impl Host for FilteredLookup<'_> {
        fn resolve_addresses(
            &mut self,
            network: Resource<Network>,
            name: String,
        ) -> Result<Resource<ResolveAddressStream>, SocketError> {
            if !self.names.allows(&name) {
                tracing::warn!(
                    name = %name,
                    "name lookup denied: the name is not on the allowlist"
                );
                return Err(ErrorCode::AccessDenied.into());
            }
            self.inner.resolve_addresses(network, name)
        }
    }

    // What ip-name-lookup needs of the network interface: its error codes.
    impl network::Host for FilteredLookup<'_> {
        fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
            network::Host::convert_error_code(&mut self.inner, error)
        }

        fn network_error_code(
            &mut self,
            err: Resource<network::Error>,
        ) -> wasmtime::Result<Option<ErrorCode>> {
            network::Host::network_error_code(&mut self.inner, err)
        }
    }

    impl network::HostNetwork for FilteredLookup<'_> {
        fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
            network::HostNetwork::drop(&mut self.inner, this)
        }
    }

    impl HostResolveAddressStream for FilteredLookup<'_> {
        fn resolve_next_address(
            &mut self,
            stream: Resource<ResolveAddressStream>,
        ) -> Result<Option<IpAddress>, SocketError> {
            self.inner.resolve_next_address(stream)
        }

        fn subscribe(
            &mut self,
            stream: Resource<ResolveAddressStream>,
        ) -> wasmtime::Result<Resource<DynPollable>> {
            HostResolveAddressStream::subscribe(&mut self.inner, stream)
        }

        async fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
            HostResolveAddressStream::drop(&mut self.inner, stream).await
        }
    }

    /// WASI 0.3's lookups: the same check, then WASI's own resolver.
    #[cfg(feature = "p3")]
    mod p3 {
        use super::super::{ComponentState, FilteredLookupData};
        use super::FilteredLookup;
        use wasmtime::component::Accessor;
        use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::{
            ErrorCode, Host, HostWithStore,
        };
        use wasmtime_wasi::p3::bindings::sockets::types::IpAddress;
        use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

        impl Host for FilteredLookup<'_> {}

        impl HostWithStore<ComponentState> for FilteredLookupData {
            async fn resolve_addresses(
                store: &Accessor<ComponentState, Self>,
                name: String,
            ) -> wasmtime::Result<Result<Vec<IpAddress>, ErrorCode>> {
                if !store.with(|mut view| view.get().names.allows(&name)) {
                    return Ok(Err(ErrorCode::AccessDenied));
                }
                let wasi = store.with_getter::<WasiSockets>(|s: &mut ComponentState| s.sockets());
                <WasiSockets as HostWithStore<ComponentState>>::resolve_addresses(&wasi, name).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lookups_follow_the_allowlist() {
        let pats = |ps: &[&str]| -> Vec<crate::caps::NetPattern> {
            ps.iter().map(|p| p.parse().unwrap()).collect()
        };
        let only = NameLookup::for_patterns(&pats(&["10.0.0.0/8:*", "Api.Internal:443"]));
        assert_eq!(only, NameLookup::Only(vec!["api.internal".into()]));
        assert!(only.allows("api.internal"));
        assert!(only.allows("API.internal."));
        assert!(!only.allows("other.internal"));
        assert!(!only.allows("api.internal.evil"));
        assert!(!only.allows("x.api.internal"));
        assert!(only.allows("127.0.0.1"));
        assert!(only.allows("::1"));
        assert!(only.allows("[::1]"));
        let any = NameLookup::for_patterns(&pats(&["api.internal:443", "*:80"]));
        assert_eq!(any, NameLookup::Any);
        assert!(any.allows("anything.example"));
        assert!(!NameLookup::for_patterns(&[]).allows("localhost"));
    }
}
