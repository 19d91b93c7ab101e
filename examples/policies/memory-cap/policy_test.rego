package wasmlayer.admission_test

import data.wasmlayer.admission

test_cap_is_128_mib if {
	g := admission.grant with input as {"requested": {"limits": {"max_memory": null}}}
	g.max_memory == 128 * 1024 * 1024
}
