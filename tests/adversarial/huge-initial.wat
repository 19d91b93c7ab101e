;; Asks for 2^40 pages (64 PiB) of 64-bit memory and a table of 2^32 - 1
;; elements before any code runs.
(module $huge_initial
  (memory i64 1099511627776)
  (table 4294967295 funcref)
  (func (export "_start")))
