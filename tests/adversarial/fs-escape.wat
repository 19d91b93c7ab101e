;; Tries every way out of its first preopened directory (fd 3): `..`,
;; absolute paths, symlinks it creates itself (relative, absolute, to a
;; directory, chained, dangling for a create), a hard link, a rename and a
;; mkdir outside. Prints `<attempt>: escaped` or `<attempt>: denied` for
;; each, echoes whatever it manages to read, and exits with the number of
;; attempts that got out (0 when the sandbox holds; 100 when the granted
;; `inside.txt` itself cannot be read, so the run proves nothing).
;;
;; The host directory of the preopen is expected to hold `inside.txt`; its
;; parent holds `secret.txt` and a directory `outside/`.
(module $fs_escape
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename" (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $path_create_directory (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  ;; 0..16: iovec; 16: result slots; 4096..: read buffer
  (data (i32.const 1024) "inside.txt")
  (data (i32.const 1040) "read ../secret.txt")
  (data (i32.const 1072) "../secret.txt")
  (data (i32.const 1088) "read /etc/passwd")
  (data (i32.const 1120) "/etc/passwd")
  (data (i32.const 1136) "symlink l-rel -> ../secret.txt, read it")
  (data (i32.const 1184) "l-rel")
  (data (i32.const 1200) "symlink l-abs -> /etc/passwd, read it")
  (data (i32.const 1248) "l-abs")
  (data (i32.const 1264) "symlink l-up -> .., read l-up/secret.txt")
  (data (i32.const 1312) "..")
  (data (i32.const 1328) "l-up")
  (data (i32.const 1344) "l-up/secret.txt")
  (data (i32.const 1360) "symlink l-chain -> l-rel, read it")
  (data (i32.const 1408) "l-chain")
  (data (i32.const 1424) "hard link hard -> ../secret.txt")
  (data (i32.const 1456) "hard")
  (data (i32.const 1472) "create ../created.txt")
  (data (i32.const 1504) "../created.txt")
  (data (i32.const 1520) "symlink l-new -> ../created2.txt, create through it")
  (data (i32.const 1584) "../created2.txt")
  (data (i32.const 1600) "l-new")
  (data (i32.const 1616) "symlink l-dir -> ../outside, create l-dir/planted.txt")
  (data (i32.const 1680) "../outside")
  (data (i32.const 1696) "l-dir")
  (data (i32.const 1712) "l-dir/planted.txt")
  (data (i32.const 1744) "rename inside.txt -> ../moved.txt")
  (data (i32.const 1792) "../moved.txt")
  (data (i32.const 1808) "mkdir ../newdir")
  (data (i32.const 1824) "../newdir")
  (data (i32.const 1840) ": escaped\n")
  (data (i32.const 1856) ": denied\n")
  (global $escapes (mut i32) (i32.const 0))

  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))

  (func $report (param $ptr i32) (param $len i32) (param $escaped i32)
    (call $write (local.get $ptr) (local.get $len))
    (if (local.get $escaped)
      (then
        (global.set $escapes (i32.add (global.get $escapes) (i32.const 1)))
        (call $write (i32.const 1840) (i32.const 10)))
      (else (call $write (i32.const 1856) (i32.const 9)))))

  ;; Opens PATH under fd 3 (following symlinks) and echoes up to 4 KiB of it:
  ;; 1 when anything was read.
  (func $try_read (param $ptr i32) (param $len i32) (result i32)
    (local $fd i32) (local $n i32)
    (if (call $path_open (i32.const 3) (i32.const 1) (local.get $ptr) (local.get $len)
          (i32.const 0) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 20))
      (then (return (i32.const 0))))
    (local.set $fd (i32.load (i32.const 20)))
    (i32.store (i32.const 8) (i32.const 4096))
    (i32.store (i32.const 12) (i32.const 4096))
    (if (call $fd_read (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 24))
      (then (drop (call $fd_close (local.get $fd))) (return (i32.const 0))))
    (local.set $n (i32.load (i32.const 24)))
    (drop (call $fd_close (local.get $fd)))
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (call $write (i32.const 4096) (local.get $n))
    (i32.const 1))

  ;; Creates PATH under fd 3 (O_CREAT|O_EXCL, following symlinks): 1 on success.
  (func $try_create (param $ptr i32) (param $len i32) (result i32)
    (if (call $path_open (i32.const 3) (i32.const 1) (local.get $ptr) (local.get $len)
          (i32.const 5) (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 20))
      (then (return (i32.const 0))))
    (drop (call $fd_close (i32.load (i32.const 20))))
    (i32.const 1))

  (func $symlink_then_read (param $t i32) (param $tl i32) (param $l i32) (param $ll i32) (param $p i32) (param $pl i32) (result i32)
    (drop (call $path_symlink (local.get $t) (local.get $tl) (i32.const 3) (local.get $l) (local.get $ll)))
    (call $try_read (local.get $p) (local.get $pl)))

  (func $symlink_then_create (param $t i32) (param $tl i32) (param $l i32) (param $ll i32) (param $p i32) (param $pl i32) (result i32)
    (drop (call $path_symlink (local.get $t) (local.get $tl) (i32.const 3) (local.get $l) (local.get $ll)))
    (call $try_create (local.get $p) (local.get $pl)))

  (func $try_link (param $old i32) (param $ol i32) (param $new i32) (param $nl i32) (result i32)
    (i32.eqz (call $path_link (i32.const 3) (i32.const 1) (local.get $old) (local.get $ol)
      (i32.const 3) (local.get $new) (local.get $nl))))

  (func $try_rename (param $old i32) (param $ol i32) (param $new i32) (param $nl i32) (result i32)
    (i32.eqz (call $path_rename (i32.const 3) (local.get $old) (local.get $ol)
      (i32.const 3) (local.get $new) (local.get $nl))))

  (func $try_mkdir (param $p i32) (param $pl i32) (result i32)
    (i32.eqz (call $path_create_directory (i32.const 3) (local.get $p) (local.get $pl))))

  (func (export "_start")
    ;; Control: the granted file is readable (exit 100 if not: the sandbox
    ;; was not set up as expected, and nothing below would mean anything).
    (if (i32.eqz (call $try_read (i32.const 1024) (i32.const 10))) (then (call $proc_exit (i32.const 100))))
    ;; read ../secret.txt
    (call $report (i32.const 1040) (i32.const 18) (call $try_read (i32.const 1072) (i32.const 13)))
    ;; read /etc/passwd
    (call $report (i32.const 1088) (i32.const 16) (call $try_read (i32.const 1120) (i32.const 11)))
    ;; symlink l-rel -> ../secret.txt, read it
    (call $report (i32.const 1136) (i32.const 39) (call $symlink_then_read (i32.const 1072) (i32.const 13) (i32.const 1184) (i32.const 5) (i32.const 1184) (i32.const 5)))
    ;; symlink l-abs -> /etc/passwd, read it
    (call $report (i32.const 1200) (i32.const 37) (call $symlink_then_read (i32.const 1120) (i32.const 11) (i32.const 1248) (i32.const 5) (i32.const 1248) (i32.const 5)))
    ;; symlink l-up -> .., read l-up/secret.txt
    (call $report (i32.const 1264) (i32.const 40) (call $symlink_then_read (i32.const 1312) (i32.const 2) (i32.const 1328) (i32.const 4) (i32.const 1344) (i32.const 15)))
    ;; symlink l-chain -> l-rel, read it
    (call $report (i32.const 1360) (i32.const 33) (call $symlink_then_read (i32.const 1184) (i32.const 5) (i32.const 1408) (i32.const 7) (i32.const 1408) (i32.const 7)))
    ;; hard link hard -> ../secret.txt
    (call $report (i32.const 1424) (i32.const 31) (call $try_link (i32.const 1072) (i32.const 13) (i32.const 1456) (i32.const 4)))
    ;; create ../created.txt
    (call $report (i32.const 1472) (i32.const 21) (call $try_create (i32.const 1504) (i32.const 14)))
    ;; symlink l-new -> ../created2.txt, create through it
    (call $report (i32.const 1520) (i32.const 51) (call $symlink_then_create (i32.const 1584) (i32.const 15) (i32.const 1600) (i32.const 5) (i32.const 1600) (i32.const 5)))
    ;; symlink l-dir -> ../outside, create l-dir/planted.txt
    (call $report (i32.const 1616) (i32.const 53) (call $symlink_then_create (i32.const 1680) (i32.const 10) (i32.const 1696) (i32.const 5) (i32.const 1712) (i32.const 17)))
    ;; rename inside.txt -> ../moved.txt
    (call $report (i32.const 1744) (i32.const 33) (call $try_rename (i32.const 1024) (i32.const 10) (i32.const 1792) (i32.const 12)))
    ;; mkdir ../newdir
    (call $report (i32.const 1808) (i32.const 15) (call $try_mkdir (i32.const 1824) (i32.const 9)))
    (call $proc_exit (global.get $escapes))))
