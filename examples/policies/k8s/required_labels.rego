# Every pod carries the labels listed in data.wasmlayer.k8s.required_labels
# (data.json: `app` and `owner`).
#
# Gatekeeper style: a `violation` set of {"msg", "details"} objects over
# `input.review` (see `review` and `pod` in lib.rego).
package kubernetes.admission

violation contains {"msg": msg, "details": {"missing_labels": missing}} if {
	pod
	provided := object.get(pod.metadata, "labels", {})
	missing := [label | some label in required_labels; not provided[label]]
	count(missing) > 0
	msg := sprintf("pod %s is missing required label(s): %s", [pod_name, concat(", ", missing)])
}
