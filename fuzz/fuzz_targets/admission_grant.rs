//! A capability policy's `grant` (package `wasmlayer.admission`) applied
//! to a request: `admission::narrow`. The grant is whatever the policy
//! computed, so any JSON.
//!
//! Invariant: nothing panics, and a grant only narrows: every directory,
//! variable, address, graph and limit granted was requested, no directory
//! becomes writable, and no limit goes above the one requested.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use std::time::Duration;
use wasmlayer_core::{Capabilities, DirGrant, Limits, NetPattern};
use wasmlayer_policy::admission::narrow;

fn request() -> Capabilities {
    let mut caps = Capabilities::default();
    for (host, guest, read_only) in [("/srv/a", "/a", false), ("/srv/b", "/b", true), ("/srv/c", "/a/c", false)] {
        caps.dirs.push(DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only,
        });
    }
    for (k, v) in [("A", "1"), ("B", "2"), ("PATH", "/bin")] {
        caps.env.insert(k.into(), v.into());
    }
    caps.inherit_env = vec!["HOME".into(), "TERM".into()];
    caps.args = vec!["--verbose".into(), "x".into()];
    for p in ["127.0.0.1:80", "10.0.0.0/8:*", "[::1]:8000-9000", "example.com:443"] {
        caps.allow_net.push(p.parse::<NetPattern>().unwrap());
    }
    for p in ["api.example.com", "127.0.0.1:9000"] {
        caps.allow_http.push(NetPattern::parse_http(p).unwrap());
    }
    caps.nn_graphs.insert("det".into(), "/m/det.onnx".into());
    caps.nn_graphs.insert("rec".into(), "/m/rec.onnx".into());
    caps.nn_dir = Some("/m".into());
    caps
}

fuzz_target!(|data: &[u8]| {
    let Ok(grant) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let caps = request();
    for limits in [
        Limits::default(),
        Limits {
            max_memory: Some(64 << 20),
            fuel: Some(1_000_000),
            timeout: Some(Duration::from_secs(2)),
        },
    ] {
        let Ok(g) = narrow(&caps, &limits, &grant) else {
            continue;
        };
        let got = &g.capabilities;
        for d in &got.dirs {
            let req = caps
                .dirs
                .iter()
                .find(|r| r.guest == d.guest)
                .unwrap_or_else(|| panic!("{grant}: granted unrequested {d:?}"));
            assert_eq!(d.host, req.host, "{grant}");
            assert!(d.read_only || !req.read_only, "{grant}: {} made writable", d.guest);
        }
        for (k, v) in &got.env {
            assert_eq!(caps.env.get(k), Some(v), "{grant}: env {k}");
        }
        assert!(got.inherit_env.iter().all(|k| caps.inherit_env.contains(k)), "{grant}");
        assert!(got.allow_net.iter().all(|p| caps.allow_net.contains(p)), "{grant}");
        assert!(got.allow_http.iter().all(|p| caps.allow_http.contains(p)), "{grant}");
        assert!(got.args == caps.args || got.args.is_empty(), "{grant}");
        assert!(!got.inherit_stdio || caps.inherit_stdio, "{grant}");
        for (k, v) in &got.nn_graphs {
            assert_eq!(caps.nn_graphs.get(k), Some(v), "{grant}: graph {k}");
        }
        assert!(got.nn_dir.is_none() || got.nn_dir == caps.nn_dir, "{grant}");
        let l = &g.limits;
        if let Some(r) = limits.max_memory {
            assert!(l.max_memory.is_some_and(|m| m <= r), "{grant}: {l:?}");
        }
        if let Some(r) = limits.fuel {
            assert!(l.fuel.is_some_and(|f| f <= r), "{grant}: {l:?}");
        }
        if let Some(r) = limits.timeout {
            assert!(l.timeout.is_some_and(|t| t <= r), "{grant}: {l:?}");
        }
    }
});
