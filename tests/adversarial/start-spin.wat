;; Spins for ever in its start function, which runs while the module is
;; being instantiated, before `_start` is ever called.
(module $start_spin
  (func $spin
    (loop $l (br $l)))
  (start $spin)
  (func (export "_start")))
