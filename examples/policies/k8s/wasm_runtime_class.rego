# Pods that run WebAssembly must use the RuntimeClass that runs it
# (data.wasmlayer.k8s.wasm_runtime_class, `wasmlayer` by default).
#
# A pod runs WebAssembly when
#   - one of its images is a Wasm artifact: the reference (without its
#     @digest) ends in ".wasm", the image name (without :tag and @digest)
#     ends in ".wasm", or a path segment of the name is exactly "wasm"
#     (ghcr.io/acme/hello.wasm:1.0, registry.local/wasm/hello:1.0,
#     registry.local/hello:1.0.wasm), or
#   - the pod has the annotation `module.wasm.image/variant: compat`.
package kubernetes.admission

# The image name: the reference without @digest and without :tag (a colon
# before the last slash belongs to a registry port and stays).
image_name(ref) := name if {
	no_digest := split(ref, "@")[0]
	parts := split(no_digest, "/")
	n := count(parts)
	last := split(parts[n - 1], ":")[0]
	name := concat("/", array.concat(array.slice(parts, 0, n - 1), [last]))
}

wasm_image(ref) if endswith(split(ref, "@")[0], ".wasm")

wasm_image(ref) if endswith(image_name(ref), ".wasm")

wasm_image(ref) if "wasm" in split(image_name(ref), "/")

wasm_images contains c.container.image if {
	some c in pod_containers
	wasm_image(c.container.image)
}

wasm_annotated if pod.metadata.annotations["module.wasm.image/variant"] == "compat"

runs_wasm if count(wasm_images) > 0

runs_wasm if wasm_annotated

why_wasm := sprintf("its image %s is a Wasm artifact", [concat(", ", sort(wasm_images))]) if {
	count(wasm_images) > 0
} else := "it is annotated module.wasm.image/variant: compat"

deny contains msg if {
	runs_wasm
	object.get(pod.spec, "runtimeClassName", "") != wasm_runtime_class
	msg := sprintf(
		"pod %s must set runtimeClassName: %s because %s",
		[pod_name, wasm_runtime_class, why_wasm],
	)
}
