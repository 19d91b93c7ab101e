//! Capability grants: the capability file (`run --caps`,
//! `Capabilities::from_toml_str`) and the flag parsers (`--dir`/`--dir-ro`,
//! `--allow-net`, `--allow-http`, `--env`), all on the same text.
//!
//! Invariants: nothing panics; a parsed capability file written back as
//! TOML parses to the same value; a parsed network pattern prints as text
//! that parses to the same pattern, and matches its own address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};
use wasmlayer_core::caps::{parse_env_flag, HostPattern};
use wasmlayer_core::{Capabilities, DirGrant, NetPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    capability_file(text);
    for read_only in [false, true] {
        dir_flag(text, read_only);
    }
    if let Ok(p) = text.parse::<NetPattern>() {
        net_pattern(text, &p);
        let back = NetPattern::parse_http(&p.to_string())
            .unwrap_or_else(|e| panic!("{text:?}: printed as {p} which --allow-http refuses: {e}"));
        assert_eq!(back, p, "{text:?}: --allow-http reads {p} differently");
    }
    if let Ok(p) = NetPattern::parse_http(text) {
        net_pattern(text, &p);
    }
    env_flag(text);
});

fn capability_file(text: &str) {
    let Ok(caps) = Capabilities::from_toml_str(text) else {
        return;
    };
    let written = toml::to_string(&caps)
        .unwrap_or_else(|e| panic!("{text:?}: parsed capabilities do not serialise: {e}"));
    let back = Capabilities::from_toml_str(&written).unwrap_or_else(|e| {
        panic!("{text:?}: capabilities written as {written:?} do not parse back: {e}")
    });
    assert_eq!(back, caps, "{text:?}: round trip through {written:?}");
    // A grant merged with itself grants the same.
    let mut twice = caps.clone();
    twice.merge(caps.clone());
    assert_eq!(twice.allow_net, caps.allow_net);
    assert_eq!(twice.env, caps.env);
    let _ = caps.check_dirs();
}

fn dir_flag(text: &str, read_only: bool) {
    let Ok(d) = DirGrant::parse(text, read_only) else {
        return;
    };
    assert!(!d.host.as_os_str().is_empty(), "{text:?}: empty host");
    assert!(!d.guest.is_empty(), "{text:?}: empty guest");
    if read_only {
        assert!(d.read_only, "{text:?}: --dir-ro granted read-write");
        return;
    }
    // A grant from a flag survives a capability file.
    let caps = Capabilities {
        dirs: vec![d.clone()],
        ..Capabilities::default()
    };
    let written = toml::to_string(&caps).expect("serialise");
    let back = Capabilities::from_toml_str(&written)
        .unwrap_or_else(|e| panic!("{text:?}: {written:?} does not parse back: {e}"));
    assert_eq!(back.dirs, [d], "{text:?}: round trip through {written:?}");
}

fn net_pattern(text: &str, p: &NetPattern) {
    let shown = p.to_string();
    let back: NetPattern = shown
        .parse()
        .unwrap_or_else(|e| panic!("{text:?}: printed as {shown:?}, which does not parse: {e}"));
    assert_eq!(&back, p, "{text:?}: printed as {shown:?}");
    let (lo, hi) = p.ports;
    assert!(lo <= hi, "{text:?}: empty port range {lo}-{hi}");
    match &p.host {
        HostPattern::Cidr(net, bits) => {
            let max = if net.is_ipv4() { 32 } else { 128 };
            assert!(*bits <= max, "{text:?}: /{bits} on {net}");
            // A network contains its own address, on every port it names.
            for port in [lo, hi] {
                let addr = SocketAddr::new(*net, port);
                assert!(p.matches(&addr), "{text:?}: {shown} does not match {addr}");
                let host = match net {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("[{v6}]"),
                };
                assert!(
                    p.matches_authority(&host, port),
                    "{text:?}: {shown} does not match {host}:{port}"
                );
            }
            if hi < u16::MAX {
                assert!(!p.matches(&SocketAddr::new(*net, hi + 1)));
            }
        }
        HostPattern::Name(name) => {
            // Names are compared as written: no lookup here.
            assert!(p.matches_authority(name, lo), "{text:?}: {shown} vs {name}");
            assert!(p.matches_authority(&name.to_ascii_uppercase(), hi));
        }
        HostPattern::Any => {
            assert!(p.matches_authority("example.com", lo));
            assert!(p.matches(&SocketAddr::from(([192, 0, 2, 1], hi))));
        }
    }
}

fn env_flag(text: &str) {
    let mut caps = Capabilities::default();
    if parse_env_flag(&mut caps, text).is_err() {
        return;
    }
    match text.split_once('=') {
        Some((k, v)) => assert_eq!(caps.env.get(k).map(String::as_str), Some(v), "{text:?}"),
        None => assert_eq!(caps.inherit_env, [text], "{text:?}"),
    }
    // Whatever the flag accepts, a capability file accepts too.
    let written = toml::to_string(&caps).expect("serialise");
    let back = Capabilities::from_toml_str(&written)
        .unwrap_or_else(|e| panic!("--env {text:?} as {written:?} does not parse back: {e}"));
    assert_eq!(back, caps, "--env {text:?} through {written:?}");
}
