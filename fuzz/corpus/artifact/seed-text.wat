  ;; a comment
(module (func (export "f")))
