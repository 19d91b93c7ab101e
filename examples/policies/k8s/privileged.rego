# No privileged containers: containers, initContainers and
# ephemeralContainers may not set securityContext.privileged: true.
#
# OPA kube-mgmt style: a `deny` set of strings over `input.request`.
package kubernetes.admission

deny contains msg if {
	input.request.kind.kind == "Pod"
	some kind in ["containers", "initContainers", "ephemeralContainers"]
	some c in object.get(input.request.object.spec, kind, [])
	c.securityContext.privileged == true
	msg := sprintf("pod %s: privileged container \"%s\" is not allowed (%s)", [pod_name, c.name, kind])
}
