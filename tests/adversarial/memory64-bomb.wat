;; A 64-bit memory grown by 4 GiB at a time for ever; a failed grow is
;; retried, so only the host can end it.
(module $memory64_bomb
  (memory i64 1)
  (func (export "_start")
    (loop $l
      (drop (memory.grow (i64.const 65536)))
      (br $l))))
