package kubernetes.admission_test

import data.kubernetes.admission

test_pod_with_the_labels_is_allowed if {
	count(admission.violation) == 0 with input as review(good_pod)
	count(admission.deny) == 0 with input as review(good_pod)
}

test_missing_owner_is_a_violation if {
	some v in admission.violation with input as review(pod_with({"app": "web"}, nginx))
	v.msg == "pod web is missing required label(s): owner"
	v.details.missing_labels == ["owner"]
}

test_no_labels_names_both if {
	pod := json.remove(good_pod, ["metadata/labels"])
	some v in admission.violation with input as review(pod)
	v.details.missing_labels == ["app", "owner"]
}

test_the_list_comes_from_data if {
	pod := pod_with({"app": "web", "owner": "a"}, nginx)
	some v in admission.violation with input as review(pod) with data.wasmlayer.k8s.required_labels as ["team"]
	v.details.missing_labels == ["team"]
}

test_generated_name_in_message if {
	pod := json.patch(pod_with({}, nginx), [
		{"op": "remove", "path": "/metadata/name"},
		{"op": "add", "path": "/metadata/generateName", "value": "web-7d9f-"},
	])
	some v in admission.violation with input as review(pod)
	startswith(v.msg, "pod web-7d9f-* is missing")
}

test_other_kinds_are_not_checked if {
	cm := object.union(request({"metadata": {"name": "cm"}}), {"kind": {"group": "", "version": "v1", "kind": "ConfigMap"}})
	count(admission.violation) == 0 with input as {"request": cm, "review": cm}
}

test_delete_has_no_object if {
	req := object.union(request(null), {"operation": "DELETE"})
	count(admission.violation) == 0 with input as {"request": req, "review": req}
	count(admission.deny) == 0 with input as {"request": req, "review": req}
}

test_a_raw_admission_review_works_too if {
	raw := json.remove(review(pod_with({"app": "web"}, nginx)), ["review"])
	some v in admission.violation with input as raw
	v.details.missing_labels == ["owner"]
}
