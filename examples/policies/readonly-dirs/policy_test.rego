package wasmlayer.admission_test

import data.wasmlayer.admission

request := {
	"artifact": {"sha256": "00", "size": 1, "kind": "module", "imports": [], "capabilities": []},
	"requested": {
		"dirs": [
			{"host": "/srv/in", "guest": "/in", "read_only": false},
			{"host": "/srv/ref", "guest": "/ref", "read_only": true},
		],
		"env": {}, "allow_net": [], "limits": {"max_memory": null},
	},
	"context": {"command": "run"},
}

test_allowed if admission.allow with input as request

test_every_dir_becomes_read_only if {
	dirs := admission.grant.dirs with input as request
	count(dirs) == 2
	every d in dirs { d.read_only == true }
}
