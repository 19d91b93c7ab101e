package wasmlayer.admission_test

import data.wasmlayer.admission

request(sha, nets) := {
	"artifact": {"sha256": sha, "size": 1, "kind": "component", "imports": [], "capabilities": ["network"]},
	"requested": {"dirs": [], "env": {}, "allow_net": nets, "limits": {"max_memory": null}},
	"context": {"command": "run"},
}

trusted := "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

test_no_network_needs_no_trust if admission.allow with input as request("ff", [])

test_untrusted_artifact_is_denied if {
	not admission.allow with input as request("ff", ["10.0.0.1:443"])
	some msg in admission.reasons with input as request("ff", ["10.0.0.1:443"])
	contains(msg, "10.0.0.1:443")
}

test_trusted_artifact_may_connect if {
	admission.allow with input as request(trusted, ["10.0.0.1:443"])
		with data.wasmlayer.network_allowlist as [trusted]
}

test_outbound_http_of_a_route_counts if {
	http := object.union(request("ff", []), {"requested": {"allow_http": ["api.example.com:443"]}, "context": {"command": "serve", "route": "/api"}})
	not admission.allow with input as http
	some msg in admission.reasons with input as http
	contains(msg, "api.example.com:443")
}
