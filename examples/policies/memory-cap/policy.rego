# Linear memory is capped at 128 MiB: a request for more, or for no limit,
# is granted with the cap.
package wasmlayer.admission

default allow := true

cap := 134217728

grant := {"max_memory": cap}
