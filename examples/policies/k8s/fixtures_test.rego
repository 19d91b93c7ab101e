# Fixtures for the tests: AdmissionReviews of pods, in the shape the API
# server sends them.
package kubernetes.admission_test

review(pod) := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"request": request(pod),
	"review": request(pod),
}

request(pod) := {
	"uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"namespace": "default",
	"operation": "CREATE",
	"userInfo": {"username": "alice"},
	"object": pod,
}

labels := {"app": "web", "owner": "team-a"}

pod_with(labels, spec) := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "web", "namespace": "default", "labels": labels},
	"spec": spec,
}

nginx := {"containers": [{"name": "web", "image": "nginx:1.27"}]}

good_pod := pod_with(labels, nginx)
