package kubernetes.admission_test

import data.kubernetes.admission

privileged := {"privileged": true}

test_privileged_container_is_denied if {
	spec := {"containers": [{"name": "web", "image": "nginx:1.27", "securityContext": privileged}]}
	admission.deny == {"pod web: privileged container \"web\" is not allowed (containers)"} with input as review(pod_with(labels, spec))
}

test_privileged_init_container_is_denied if {
	spec := {
		"initContainers": [{"name": "setup", "image": "busybox", "securityContext": privileged}],
		"containers": [{"name": "web", "image": "nginx:1.27"}],
	}
	admission.deny == {"pod web: privileged container \"setup\" is not allowed (initContainers)"} with input as review(pod_with(labels, spec))
}

test_privileged_false_is_allowed if {
	spec := {"containers": [{"name": "web", "image": "nginx:1.27", "securityContext": {"privileged": false}}]}
	count(admission.deny) == 0 with input as review(pod_with(labels, spec))
}
