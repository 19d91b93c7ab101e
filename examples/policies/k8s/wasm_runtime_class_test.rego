package kubernetes.admission_test

import data.kubernetes.admission

wasm_spec(image) := {"containers": [{"name": "app", "image": image}]}

test_wasm_images if {
	admission.wasm_image("ghcr.io/acme/hello.wasm")
	admission.wasm_image("ghcr.io/acme/hello.wasm:1.0")
	admission.wasm_image("ghcr.io/acme/hello.wasm@sha256:0123")
	admission.wasm_image("registry.local:5000/wasm/hello:1.0")
	admission.wasm_image("registry.local/hello:1.0.wasm")
	not admission.wasm_image("nginx:1.27")
	not admission.wasm_image("registry.local:5000/nginx:wasm")
	not admission.wasm_image("ghcr.io/acme/wasmtime:1.0")
	not admission.wasm_image("ghcr.io/wasm.example/app:1.0")
}

test_wasm_pod_without_runtime_class_is_denied if {
	pod := pod_with(labels, wasm_spec("ghcr.io/acme/hello.wasm:1.0"))
	admission.deny == {"pod web must set runtimeClassName: wasmlayer because its image ghcr.io/acme/hello.wasm:1.0 is a Wasm artifact"} with input as review(pod)
}

test_wasm_pod_with_another_runtime_class_is_denied if {
	spec := object.union(wasm_spec("registry.local/wasm/hello:1.0"), {"runtimeClassName": "runc"})
	count(admission.deny) == 1 with input as review(pod_with(labels, spec))
}

test_wasm_pod_with_runtime_class_is_allowed if {
	spec := object.union(wasm_spec("ghcr.io/acme/hello.wasm:1.0"), {"runtimeClassName": "wasmlayer"})
	count(admission.deny) == 0 with input as review(pod_with(labels, spec))
}

test_annotated_pod_is_wasm if {
	pod := json.patch(good_pod, [{"op": "add", "path": "/metadata/annotations", "value": {"module.wasm.image/variant": "compat"}}])
	some msg in admission.deny with input as review(pod)
	endswith(msg, "because it is annotated module.wasm.image/variant: compat")
}

test_ordinary_pod_needs_no_runtime_class if {
	count(admission.deny) == 0 with input as review(good_pod)
}

test_runtime_class_comes_from_data if {
	spec := object.union(wasm_spec("ghcr.io/acme/hello.wasm:1.0"), {"runtimeClassName": "wasmtime"})
	count(admission.deny) == 0 with input as review(pod_with(labels, spec)) with data.wasmlayer.k8s.wasm_runtime_class as "wasmtime"
}
