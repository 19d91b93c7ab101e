;; Prints what the guest was given: its arguments, then a line
;; `--environ--`, then its environment, each entry ended by NUL as WASI
;; hands them over. Nothing more reaches a guest through these two calls.
(module $args_env
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; 0: iovec, 16: nwritten, 32/36: counts, 48: separator,
  ;; 65536: pointers (64 KiB), 131072: strings (up to 1 MiB).
  (memory (export "memory") 19)
  (data (i32.const 48) "--environ--\n")

  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))

  ;; Exits 99 when what was given does not fit the buffers above.
  (func $check (param $count i32) (param $bytes i32)
    (if (i32.or (i32.gt_u (local.get $count) (i32.const 16384))
                (i32.gt_u (local.get $bytes) (i32.const 1048576)))
      (then (call $proc_exit (i32.const 99)))))

  (func (export "_start")
    (drop (call $args_sizes_get (i32.const 32) (i32.const 36)))
    (call $check (i32.load (i32.const 32)) (i32.load (i32.const 36)))
    (drop (call $args_get (i32.const 65536) (i32.const 131072)))
    (call $write (i32.const 131072) (i32.load (i32.const 36)))
    (call $write (i32.const 48) (i32.const 12))
    (drop (call $environ_sizes_get (i32.const 32) (i32.const 36)))
    (call $check (i32.load (i32.const 32)) (i32.load (i32.const 36)))
    (drop (call $environ_get (i32.const 65536) (i32.const 131072)))
    (call $write (i32.const 131072) (i32.load (i32.const 36)))
    (call $proc_exit (i32.const 0))))
