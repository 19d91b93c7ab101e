;; Opens `sub/x.txt` under its first preopened directory (fd 3) N times
;; (N: the first argument, default 20000), following symlinks, and echoes
;; what each open reads. Meant to run while something on the host swaps
;; `sub` between a directory inside the grant and a symlink to one outside:
;; every read must come from inside. Exits 0; failed opens are skipped.
(module $symlink_race
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; 0: iovec, 8: read iovec, 16/20/24: results, 32/36: arg sizes,
  ;; 1024: paths, 4096: read buffer, 8192: argv, 12288: arg bytes.
  (memory (export "memory") 1)
  (data (i32.const 1024) "sub/x.txt")
  (data (i32.const 1040) "sub/./x.txt")

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

  (func $read_echo (param $ptr i32) (param $len i32)
    (local $fd i32)
    (if (call $path_open (i32.const 3) (i32.const 1) (local.get $ptr) (local.get $len)
          (i32.const 0) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 20))
      (then (return)))
    (local.set $fd (i32.load (i32.const 20)))
    (i32.store (i32.const 8) (i32.const 4096))
    (i32.store (i32.const 12) (i32.const 256))
    (if (i32.eqz (call $fd_read (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 24)))
      (then
        (i32.store (i32.const 0) (i32.const 4096))
        (i32.store (i32.const 4) (i32.load (i32.const 24)))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))))
    (drop (call $fd_close (local.get $fd))))

  (func (export "_start")
    (local $left i32)
    (local.set $left (call $arg1))
    (if (i32.eqz (local.get $left)) (then (local.set $left (i32.const 20000))))
    (loop $l
      (call $read_echo (i32.const 1024) (i32.const 9))
      (call $read_echo (i32.const 1040) (i32.const 11))
      (local.set $left (i32.sub (local.get $left) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $left) (i32.const 0))))
    (call $proc_exit (i32.const 0))))
