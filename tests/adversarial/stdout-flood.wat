;; Writes N MiB of `x` to standard output in 1 MiB writes, N being its first
;; argument (0 or none: without end). Exits 3 as soon as a write fails (a
;; closed pipe), 0 once N MiB are written.
(module $stdout_flood
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; 0: iovec, 16: nwritten, 32: arg sizes, 8192: argv, 12288: arg bytes,
  ;; 65536: the 1 MiB buffer.
  (memory (export "memory") 17)

  ;; argv[1] as a decimal number; 0 when absent or too long to hold here.
  (func $arg1 (result i32)
    (local $p i32) (local $n i32) (local $c i32)
    (drop (call $args_sizes_get (i32.const 32) (i32.const 36)))
    (if (i32.lt_u (i32.load (i32.const 32)) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.gt_u (i32.load (i32.const 32)) (i32.const 1024)) (then (return (i32.const 0))))
    (if (i32.gt_u (i32.load (i32.const 36)) (i32.const 4096)) (then (return (i32.const 0))))
    (drop (call $args_get (i32.const 8192) (i32.const 12288)))
    (local.set $p (i32.load (i32.const 8196)))
    (block $done
      (loop $digits
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.lt_u (local.get $c) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 57)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10))
                               (i32.sub (local.get $c) (i32.const 48))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $digits)))
    (local.get $n))

  (func (export "_start")
    (local $left i32) (local $forever i32)
    (local.set $left (call $arg1))
    (local.set $forever (i32.eqz (local.get $left)))
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 1048576))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 1048576))
    (loop $l
      (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))
        (then (call $proc_exit (i32.const 3))))
      (local.set $left (i32.sub (local.get $left) (i32.const 1)))
      (br_if $l (i32.or (local.get $forever) (i32.gt_s (local.get $left) (i32.const 0)))))
    (call $proc_exit (i32.const 0))))
