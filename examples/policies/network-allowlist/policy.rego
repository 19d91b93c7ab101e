# Network access only for artifacts whose SHA-256 is on an allowlist kept
# in data (data.wasmlayer.network_allowlist): any other artifact that asks
# for outbound connections (`run --allow-net`) or outbound HTTP (a served
# route's `allow_http`, or `allow_http` in a capability file) is denied, with the reason.
package wasmlayer.admission

default allow := false

allow if count(reasons) == 0

requested_network contains target if some target in input.requested.allow_net

requested_network contains target if some target in object.get(input.requested, "allow_http", [])

trusted if input.artifact.sha256 in object.get(data, ["wasmlayer", "network_allowlist"], [])

reasons contains msg if {
	count(requested_network) > 0
	not trusted
	msg := sprintf(
		"artifact %s is not on the network allowlist, so it may not reach %s",
		[substring(input.artifact.sha256, 0, 16), concat(", ", sort(requested_network))],
	)
}
