# Every requested directory is granted, read-only: a guest may read its
# inputs but never create, change or delete a file on the host.
package wasmlayer.admission

default allow := true

grant := {"dirs": [{"guest": d.guest, "read_only": true} | some d in input.requested.dirs]}
