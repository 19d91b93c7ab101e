# Shared helpers of the admission policies in this directory.
#
# The input is the AdmissionReview the API server sent, with its request
# also under `review`: `input.request.object` and `input.review.object`
# are the same pod.
package kubernetes.admission

# The request under review. The webhook puts it under `review`; a raw
# AdmissionReview (`wasmlayer policy eval -i review.json`) has only `request`.
review := object.get(input, "review", input.request)

# The pod under review; undefined for other kinds and for DELETE (no object).
pod := review.object if {
	review.kind.kind == "Pod"
	is_object(review.object)
}

# Its name, for messages: a pod created from a template has only a generateName.
pod_name := name if {
	name := pod.metadata.name
} else := sprintf("%s*", [pod.metadata.generateName]) if {
	pod.metadata.generateName
} else := "(unnamed)"

# Every container of the pod, with what kind it is.
pod_containers contains {"kind": kind, "container": c} if {
	some kind in ["containers", "initContainers", "ephemeralContainers"]
	some c in object.get(pod.spec, kind, [])
}

# Settings from data (data.json beside this file), with defaults.
settings := object.get(data, ["wasmlayer", "k8s"], {})

required_labels := object.get(settings, "required_labels", ["app", "owner"])

wasm_runtime_class := object.get(settings, "wasm_runtime_class", "wasmlayer")
