//! `Capabilities`: everything a guest may touch. Deny-by-default: the empty
//! value grants nothing but inherited stdio.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A preopened host directory. In a grant file it is a table
/// (`{host, guest, read_only}`) or the `--dir` string `HOST[::GUEST[:ro|:rw]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirGrant {
    /// Host directory (absolute once resolved).
    pub host: PathBuf,
    /// Path the guest sees it as.
    pub guest: String,
    /// Read-only: the guest may read but not create, write or delete.
    #[serde(default)]
    pub read_only: bool,
}

impl DirGrant {
    /// Parses the `--dir` syntax: `HOST`, `HOST::GUEST`, `HOST::GUEST:ro`,
    /// `HOST::GUEST:rw`. `read_only` forces read-only (for `--dir-ro`).
    pub fn parse(spec: &str, read_only: bool) -> Result<DirGrant> {
        let (host, rest) = match spec.split_once("::") {
            Some((h, g)) => (h, Some(g)),
            None => (spec, None),
        };
        let (guest, mode_ro) = match rest {
            None => (host.to_string(), false),
            Some(g) => {
                if let Some(g) = g.strip_suffix(":ro") {
                    (g.to_string(), true)
                } else if let Some(g) = g.strip_suffix(":rw") {
                    (g.to_string(), false)
                } else {
                    (g.to_string(), false)
                }
            }
        };
        if host.is_empty() || guest.is_empty() {
            return Err(Error::usage(format!(
                "invalid directory `{spec}`: expected HOST[::GUEST[:ro|:rw]]"
            )));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest,
            read_only: read_only || mode_ro,
        })
    }
}

impl<'de> Deserialize<'de> for DirGrant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            host: PathBuf,
            guest: String,
            #[serde(default)]
            read_only: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spec {
            Text(String),
            Table(Table),
        }
        match Spec::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a directory is \"HOST[::GUEST[:ro|:rw]]\" or a table {host, guest, read_only}",
            )
        })? {
            Spec::Text(t) => DirGrant::parse(&t, false).map_err(serde::de::Error::custom),
            Spec::Table(t) => Ok(DirGrant {
                host: t.host,
                guest: t.guest,
                read_only: t.read_only,
            }),
        }
    }
}

/// One entry of the outbound network allowlist: `HOST:PORT` where HOST is
/// an IP address, `[v6]`, a CIDR block, a host name or `*`, and PORT a
/// number, a range `A-B` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPattern {
    pub host: HostPattern,
    pub ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Cidr(IpAddr, u8),
    Name(String),
}

impl NetPattern {
    /// Whether this pattern names hosts that must be looked up.
    pub fn needs_name_lookup(&self) -> bool {
        matches!(self.host, HostPattern::Name(_) | HostPattern::Any)
    }

    fn port_matches(&self, port: u16) -> bool {
        self.ports.0 <= port && port <= self.ports.1
    }

    /// Whether a request to `host:port` is allowed, matching the host as
    /// written (a name is compared with names, not resolved). Used for
    /// outbound HTTP, where the host's own client resolves the name.
    pub fn matches_authority(&self, host: &str, port: u16) -> bool {
        if !self.port_matches(port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match (&self.host, host.parse::<IpAddr>()) {
            (HostPattern::Any, _) => true,
            (HostPattern::Cidr(net, bits), Ok(ip)) => cidr_contains(*net, *bits, canonical_ip(ip)),
            (HostPattern::Name(name), Err(_)) => name.eq_ignore_ascii_case(host),
            _ => false,
        }
    }

    /// Whether `addr` is allowed by this pattern. Host names are resolved
    /// with the host's resolver.
    pub fn matches(&self, addr: &SocketAddr) -> bool {
        if !self.port_matches(addr.port()) {
            return false;
        }
        let ip = canonical_ip(addr.ip());
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Cidr(net, bits) => cidr_contains(*net, *bits, ip),
            HostPattern::Name(name) => (name.as_str(), 0)
                .to_socket_addrs()
                .map(|mut it| it.any(|a| canonical_ip(a.ip()) == ip))
                .unwrap_or(false),
        }
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether `ip` is in the block `net/bits` (a prefix past the address's
/// length counts as the whole address).
fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let host_bits = |len: u32| len.saturating_sub(u32::from(bits));
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(host_bits(32)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(host_bits(128)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

impl NetPattern {
    /// Parses an outbound HTTP allowlist entry: `HOST[:PORT]`, where no
    /// port means any port.
    pub fn parse_http(spec: &str) -> std::result::Result<NetPattern, String> {
        let has_port = if let Some(rest) = spec.strip_prefix('[') {
            rest.contains("]:")
        } else {
            spec.contains(':')
        };
        if has_port {
            spec.parse()
        } else {
            format!("{spec}:*").parse()
        }
    }
}

impl FromStr for NetPattern {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid network pattern `{s}`: {why} (expected HOST:PORT, e.g. 127.0.0.1:8080, localhost:*, 10.0.0.0/8:443)")
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| bad("missing `]:PORT`"))?;
            (h, p)
        } else {
            s.rsplit_once(':').ok_or_else(|| bad("missing `:PORT`"))?
        };
        let ports = if port == "*" {
            (0, u16::MAX)
        } else if let Some((a, b)) = port.split_once('-') {
            let a: u16 = a.parse().map_err(|_| bad("bad port range"))?;
            let b: u16 = b.parse().map_err(|_| bad("bad port range"))?;
            if a > b {
                return Err(bad("empty port range"));
            }
            (a, b)
        } else {
            let p: u16 = port.parse().map_err(|_| bad("bad port"))?;
            (p, p)
        };
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some((ip, bits)) = host.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| bad("bad CIDR address"))?;
            let bits: u8 = bits.parse().map_err(|_| bad("bad CIDR prefix"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return Err(bad("CIDR prefix too long"));
            }
            match (ip, canonical_ip(ip)) {
                // An IPv4-mapped block (`::ffff:10.0.0.0/104`) is the IPv4
                // block it maps (`10.0.0.0/8`): addresses are compared in
                // their IPv4 form, so its prefix counts IPv4 bits.
                (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => {
                    let bits = bits.checked_sub(96).ok_or_else(|| {
                        bad("an IPv4-mapped CIDR block needs a prefix of /96 or longer")
                    })?;
                    HostPattern::Cidr(v4, bits)
                }
                (ip, _) => HostPattern::Cidr(ip, bits),
            }
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            let ip = canonical_ip(ip);
            HostPattern::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 })
        } else if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            HostPattern::Name(host.to_ascii_lowercase())
        } else {
            return Err(bad("bad host"));
        };
        Ok(NetPattern { host, ports })
    }
}

impl fmt::Display for NetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Any => write!(f, "*")?,
            HostPattern::Name(n) => write!(f, "{n}")?,
            HostPattern::Cidr(IpAddr::V4(ip), 32) => write!(f, "{ip}")?,
            HostPattern::Cidr(IpAddr::V6(ip), 128) => write!(f, "[{ip}]")?,
            HostPattern::Cidr(ip, bits) => write!(f, "{ip}/{bits}")?,
        }
        match self.ports {
            (0, u16::MAX) => write!(f, ":*"),
            (a, b) if a == b => write!(f, ":{a}"),
            (a, b) => write!(f, ":{a}-{b}"),
        }
    }
}

impl Serialize for NetPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What a guest may touch. The default value grants nothing from the host
/// but the process's stdio.
///
/// One schema for every grant: the capability file of `run --caps`, a serve
/// manifest's `[[route]]` and a policy's input all use these keys (see
/// [`Capabilities::from_toml_str`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCapabilities")]
pub struct Capabilities {
    /// Preopened directories.
    #[serde(default, rename = "dir", skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirGrant>,
    /// Environment variables with their values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of host environment variables passed through (when set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherit_env: Vec<String>,
    /// Arguments after the program name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Outbound network allowlist (TCP connects, UDP sends, name lookup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_net: Vec<NetPattern>,
    /// Outbound HTTP allowlist (wasi:http requests), `HOST[:PORT]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_http: Vec<NetPattern>,
    /// Whether the guest inherits the host's stdin, stdout and stderr.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub inherit_stdio: bool,
    /// wasi-nn graphs the guest may load by name: name to model file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nn_graphs: BTreeMap<String, PathBuf>,
    /// A directory whose models (`NAME.onnx`, `NAME/model.onnx`) the guest
    /// may load by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nn_dir: Option<PathBuf>,
}

/// The written form of [`Capabilities`]: directories as tables or strings
/// under `dir`, and the shorthand lists `dirs` (read-write unless `:ro`)
/// and `dirs_ro` (read-only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    dir: Vec<DirGrant>,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    dirs_ro: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    inherit_env: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    allow_net: Vec<NetPattern>,
    #[serde(default)]
    allow_http: Vec<String>,
    #[serde(default = "yes")]
    inherit_stdio: bool,
    #[serde(default)]
    nn_graphs: BTreeMap<String, PathBuf>,
    #[serde(default)]
    nn_dir: Option<PathBuf>,
}

impl TryFrom<RawCapabilities> for Capabilities {
    type Error = String;

    fn try_from(raw: RawCapabilities) -> std::result::Result<Self, String> {
        let mut dirs = raw.dir;
        for (specs, read_only) in [(&raw.dirs, false), (&raw.dirs_ro, true)] {
            for d in specs {
                dirs.push(DirGrant::parse(d, read_only).map_err(|e| e.to_string())?);
            }
        }
        for k in raw.env.keys().chain(&raw.inherit_env) {
            check_env_name(k).map_err(|e| e.to_string())?;
        }
        Ok(Capabilities {
            dirs,
            env: raw.env,
            inherit_env: raw.inherit_env,
            args: raw.args,
            allow_net: raw.allow_net,
            allow_http: raw
                .allow_http
                .iter()
                .map(|p| NetPattern::parse_http(p))
                .collect::<std::result::Result<_, _>>()?,
            inherit_stdio: raw.inherit_stdio,
            nn_graphs: raw.nn_graphs,
            nn_dir: raw.nn_dir,
        })
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            dirs: Vec::new(),
            env: BTreeMap::new(),
            inherit_env: Vec::new(),
            args: Vec::new(),
            allow_net: Vec::new(),
            allow_http: Vec::new(),
            inherit_stdio: true,
            nn_graphs: BTreeMap::new(),
            nn_dir: None,
        }
    }
}

impl Capabilities {
    /// Parses a capability file (TOML). Relative directories are resolved
    /// against the file's own directory.
    pub fn from_toml_file(path: &Path) -> Result<Capabilities> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::usage(format!("{}: capability file not found", path.display()))
            }
            _ => Error::usage(format!("{}: {e}", path.display())),
        })?;
        let mut caps = Self::from_toml_str(&text)
            .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
        caps.rebase_dirs(path.parent().unwrap_or(Path::new(".")));
        Ok(caps)
    }

    /// Parses capabilities from TOML text: `dir` (tables `{host, guest,
    /// read_only}` or `HOST[::GUEST[:ro|:rw]]` strings), `dirs` and
    /// `dirs_ro` (strings), `env`, `inherit_env`, `args`, `allow_net`,
    /// `allow_http` (`HOST[:PORT]`), `inherit_stdio`, `nn_graphs` (a table
    /// of name = model file) and `nn_dir`.
    pub fn from_toml_str(text: &str) -> Result<Capabilities> {
        toml::from_str(text)
            .map_err(|e| Error::usage(format!("invalid capability file: {}", e.message())))
    }

    /// Parses the grant keys of a TOML table (those of
    /// [`Capabilities::from_toml_str`]); any other key is an error.
    pub fn from_toml_table(table: toml::Table) -> std::result::Result<Capabilities, String> {
        Capabilities::deserialize(toml::Value::Table(table)).map_err(|e| e.message().to_string())
    }

    /// Makes relative host directories relative to `base` (the directory of
    /// the file that granted them).
    pub fn rebase_dirs(&mut self, base: &Path) {
        for d in &mut self.dirs {
            if d.host.is_relative() {
                d.host = base.join(&d.host);
            }
        }
        for p in self.nn_graphs.values_mut().chain(self.nn_dir.as_mut()) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Adds everything `other` grants to `self` (a file's grant plus flags).
    pub fn merge(&mut self, other: Capabilities) {
        self.dirs.extend(other.dirs);
        self.env.extend(other.env);
        for k in other.inherit_env {
            if !self.inherit_env.contains(&k) {
                self.inherit_env.push(k);
            }
        }
        self.args.extend(other.args);
        for p in other.allow_net {
            if !self.allow_net.contains(&p) {
                self.allow_net.push(p);
            }
        }
        for p in other.allow_http {
            if !self.allow_http.contains(&p) {
                self.allow_http.push(p);
            }
        }
        self.inherit_stdio &= other.inherit_stdio;
        self.nn_graphs.extend(other.nn_graphs);
        if other.nn_dir.is_some() {
            self.nn_dir = other.nn_dir;
        }
    }

    /// Refuses two directory grants for the same guest path (compared
    /// component by component, so `/data` and `/data/` are the same): which
    /// one the guest would see is not something to leave to order.
    pub fn check_dirs(&self) -> Result<()> {
        for (i, d) in self.dirs.iter().enumerate() {
            let path = Path::new(&d.guest);
            if let Some(first) = self.dirs[..i]
                .iter()
                .find(|e| Path::new(&e.guest).components().eq(path.components()))
            {
                return Err(Error::usage(format!(
                    "guest directory {} is granted twice (from {} and from {}); give each grant its own guest path",
                    d.guest,
                    first.host.display(),
                    d.host.display()
                )));
            }
        }
        Ok(())
    }

    /// Checks the directory grants ([`Capabilities::check_dirs`]), then
    /// makes every host directory absolute and checks it exists, so the
    /// value names exactly what is granted.
    pub fn resolve_dirs(&mut self) -> Result<()> {
        self.check_dirs()?;
        for d in &mut self.dirs {
            let abs = std::fs::canonicalize(&d.host)
                .map_err(|e| Error::usage(format!("directory {}: {e}", d.host.display())))?;
            if !abs.is_dir() {
                return Err(Error::usage(format!(
                    "directory {}: not a directory",
                    d.host.display()
                )));
            }
            d.host = abs;
        }
        Ok(())
    }

    /// Environment the guest sees: explicit pairs plus the inherited names
    /// that are set on the host.
    pub fn resolved_env(&self) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for k in &self.inherit_env {
            if let Ok(v) = std::env::var(k) {
                env.insert(k.clone(), v);
            }
        }
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.into_iter().collect()
    }
}

fn check_env_name(k: &str) -> Result<()> {
    if k.is_empty() || k.contains('=') || k.contains('\0') {
        return Err(Error::usage(format!(
            "invalid environment variable name `{k}`"
        )));
    }
    Ok(())
}

/// Parses `--env K=V` or `--env K` into the capability value.
pub fn parse_env_flag(caps: &mut Capabilities, spec: &str) -> Result<()> {
    match spec.split_once('=') {
        Some((k, v)) => {
            check_env_name(k)?;
            caps.env.insert(k.to_string(), v.to_string());
        }
        None => {
            check_env_name(spec)?;
            if !caps.inherit_env.iter().any(|k| k == spec) {
                caps.inherit_env.push(spec.to_string());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn net_patterns() {
        let p: NetPattern = "127.0.0.1:8080".parse().unwrap();
        assert!(p.matches(&addr("127.0.0.1:8080")));
        assert!(!p.matches(&addr("127.0.0.1:8081")));
        assert!(!p.matches(&addr("127.0.0.2:8080")));
        assert!(p.matches(&addr("[::ffff:127.0.0.1]:8080")));
        let p: NetPattern = "127.0.0.0/8:1000-2000".parse().unwrap();
        assert!(p.matches(&addr("127.1.2.3:1500")));
        assert!(!p.matches(&addr("128.0.0.1:1500")));
        assert!(!p.matches(&addr("127.0.0.1:2001")));
        let p: NetPattern = "[::1]:*".parse().unwrap();
        assert!(p.matches(&addr("[::1]:1")));
        assert_eq!(p.to_string(), "[::1]:*");
        let p: NetPattern = "localhost:80".parse().unwrap();
        assert!(p.needs_name_lookup());
        assert!(p.matches(&addr("127.0.0.1:80")));
        for bad in [
            "",
            "host",
            "1.2.3.4:",
            "1.2.3.4:70000",
            "1.2.3.4/40:1",
            "a b:1",
            "x:9-1",
        ] {
            assert!(bad.parse::<NetPattern>().is_err(), "{bad}");
        }
    }

    /// Found by the `caps` fuzz target: an IPv4-mapped block kept its
    /// IPv6 prefix on the IPv4 address (`10.0.0.0/104`), which printed as
    /// a pattern that does not parse and made matching overflow its mask.
    #[test]
    fn fuzz_regression_ipv4_mapped_cidr() {
        let p: NetPattern = "::ffff:10.0.0.0/104:1-2".parse().unwrap();
        assert_eq!(p, "10.0.0.0/8:1-2".parse().unwrap());
        assert_eq!(p.to_string(), "10.0.0.0/8:1-2");
        assert_eq!(p.to_string().parse::<NetPattern>().unwrap(), p);
        assert!(p.matches(&addr("10.1.2.3:2")));
        assert!(p.matches(&addr("[::ffff:10.1.2.3]:1")));
        assert!(!p.matches(&addr("11.0.0.1:1")));
        assert!(p.matches_authority("10.255.0.1", 1));
        let p: NetPattern = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(p.to_string(), "192.0.2.1:80");
        let p: NetPattern = "::ffff:0.0.0.0/96:*".parse().unwrap();
        assert!(p.matches(&addr("203.0.113.9:443")));
        let e = "::ffff:10.0.0.0/95:1".parse::<NetPattern>().unwrap_err();
        assert!(e.contains("/96 or longer"), "{e}");
        // A block built by hand with a prefix past the address's length
        // matches as the whole address, without overflowing the mask.
        let p = NetPattern {
            host: HostPattern::Cidr("10.0.0.1".parse().unwrap(), 104),
            ports: (0, u16::MAX),
        };
        assert!(p.matches(&addr("10.0.0.1:1")));
        assert!(!p.matches(&addr("10.0.0.2:1")));
    }

    #[test]
    fn dir_specs() {
        let d = DirGrant::parse("/a::/b:ro", false).unwrap();
        assert_eq!(
            (d.host.to_str().unwrap(), d.guest.as_str(), d.read_only),
            ("/a", "/b", true)
        );
        let d = DirGrant::parse("/a", false).unwrap();
        assert_eq!((d.guest.as_str(), d.read_only), ("/a", false));
        assert!(DirGrant::parse("/a", true).unwrap().read_only);
        assert!(DirGrant::parse("::/b", false).is_err());
    }

    #[test]
    fn one_grant_per_guest_path() {
        let mut caps = Capabilities::default();
        caps.dirs.push(DirGrant::parse("/a::/data", false).unwrap());
        caps.dirs.push(DirGrant::parse("/b::/other", true).unwrap());
        assert!(caps.check_dirs().is_ok());
        caps.dirs.push(DirGrant::parse("/c::/data/", true).unwrap());
        let e = caps.check_dirs().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        assert!(e.to_string().contains("/data"), "{e}");
        assert!(caps.resolve_dirs().is_err());
    }

    #[test]
    fn toml_round_trip() {
        let text = r#"
            args = ["x"]
            inherit_env = ["HOME"]
            allow_net = ["127.0.0.1:80"]
            [env]
            A = "1"
            [[dir]]
            host = "/tmp"
            guest = "/t"
            read_only = true
        "#;
        let caps = Capabilities::from_toml_str(text).unwrap();
        assert_eq!(caps.dirs[0].guest, "/t");
        assert!(caps.inherit_stdio);
        let back = Capabilities::from_toml_str(&toml::to_string(&caps).unwrap()).unwrap();
        assert_eq!(back, caps);
        assert!(Capabilities::from_toml_str("bogus = 1").is_err());
        // Directories as strings, in `dir` or the shorthand lists.
        let caps = Capabilities::from_toml_str(
            "dir = [\"/a::/a:ro\"]\ndirs = [\"/b::/b\"]\ndirs_ro = [\"/c::/c\"]\nallow_http = [\"api.example.com\", \"127.0.0.1:80\"]",
        )
        .unwrap();
        let dirs: Vec<_> = caps
            .dirs
            .iter()
            .map(|d| (d.guest.as_str(), d.read_only))
            .collect();
        assert_eq!(dirs, [("/a", true), ("/b", false), ("/c", true)]);
        assert!(caps.allow_http[0].matches_authority("api.example.com", 8443));
        assert!(!caps.allow_http[1].matches_authority("127.0.0.1", 81));
        let back = Capabilities::from_toml_str(&toml::to_string(&caps).unwrap()).unwrap();
        assert_eq!(back, caps);
        assert!(Capabilities::from_toml_str("dir = [1]").is_err());
        assert!(Capabilities::from_toml_str("env = { \"A=B\" = \"x\" }").is_err());
        assert!(Capabilities::from_toml_str("allow_net = [\"nope\"]").is_err());
    }
}
