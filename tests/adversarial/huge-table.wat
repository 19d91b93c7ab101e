;; A table of 100,000,000 elements (800 MB as the memory limit counts it)
;; at instantiation.
(module $huge_table
  (table 100000000 funcref)
  (func (export "_start")))
