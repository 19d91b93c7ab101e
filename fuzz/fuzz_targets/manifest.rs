//! The serve app manifest (`wasmlayer.toml`): `Manifest::from_str`.
//!
//! Invariants: nothing panics; an accepted manifest has at least one
//! route, its routes are sorted longest prefix first and distinct, each
//! serves its own path, its limits are within the server's and in range,
//! and no route inherits the server's stdio.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::time::Duration;
use wasmlayer_core::limits::check_timeout;
use wasmlayer_http::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative directories resolve against a directory that exists.
    let base = Path::new("/");
    let Ok(m) = Manifest::from_str(text, base) else {
        return;
    };
    let s = &m.server;
    assert!(s.pool_size >= 1);
    for t in [s.header_timeout, s.body_timeout] {
        assert!((Duration::from_millis(1)..=Duration::from_secs(86_400)).contains(&t));
    }
    assert!(!m.routes.is_empty(), "{text:?}: no routes");
    let len = |p: &str| p.trim_end_matches('/').len();
    for w in m.routes.windows(2) {
        assert!(len(&w[0].path) >= len(&w[1].path), "{text:?}: routes out of order");
    }
    for (i, r) in m.routes.iter().enumerate() {
        assert!(r.path.starts_with('/'), "{text:?}: {}", r.path);
        assert!(r.matches(&r.path), "{text:?}: {} does not serve itself", r.path);
        assert!(
            m.routes[..i]
                .iter()
                .all(|o| o.path.trim_end_matches('/') != r.path.trim_end_matches('/')),
            "{text:?}: {} twice",
            r.path
        );
        assert!(r.component.starts_with(base) || r.component.is_absolute());
        assert!(!r.caps.inherit_stdio, "{text:?}: route {} inherits stdio", r.path);
        assert!(r.caps.check_dirs().is_ok());
        assert!(r.caps.dirs.iter().all(|d| d.host.is_absolute()));
        if let Some(mem) = r.limits.max_memory {
            assert!(mem <= s.max_instance_memory, "{text:?}: {mem} above the server's");
        }
        if let Some(t) = r.limits.timeout {
            assert!(check_timeout(t).is_ok(), "{text:?}: timeout {t:?}");
        }
        assert!(r.reuse >= 1 && r.concurrent_reuse >= 1);
    }
});
