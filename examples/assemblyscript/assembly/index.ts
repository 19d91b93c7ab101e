// transform: reads a file from a granted directory, converts its text as
// $MODE says, writes the result, reports on stdout and stderr and exits with
// the code given as third argument. Same behaviour as the Rust, C, C++ and Go
// examples.
//
// The WASI shim provides argv, env, stdout, stderr and exit; files are opened
// with the preview1 calls directly, resolving paths against the directories
// the host granted (its preopens), as wasi-libc does for C.
import {
  errno,
  errnoToString,
  fd,
  fd_close,
  fd_prestat_dir_name,
  fd_prestat_get,
  fd_read,
  fd_write,
  lookupflags,
  oflags,
  prestat,
  path_open,
  rights,
} from "@assemblyscript/wasi-shim/assembly/bindings/wasi_snapshot_preview1";

const USAGE = "usage: transform INPUT OUTPUT [EXIT_CODE]";

// Scratch space for the calls' out-parameters and the one I/O vector.
const scratch = memory.data(32);

function fail(code: i32, message: string): void {
  process.stderr.write("transform: " + message + "\n");
  process.exit(code);
}

class Resolved {
  constructor(public dir: fd, public relative: string) {}
}

/** Finds the granted directory that holds `path` (the longest match wins). */
function resolve(path: string): Resolved | null {
  let best: Resolved | null = null;
  let bestLen = -1;
  for (let dir: fd = 3; ; dir++) {
    const err = fd_prestat_get(dir, changetype<prestat>(scratch));
    if (err != errno.SUCCESS) break; // BADF: no more preopens
    if (load<u8>(scratch) != 0) continue; // not a directory
    const nameLen = load<u32>(scratch, 4);
    const nameBuf = new ArrayBuffer(<i32>nameLen);
    if (fd_prestat_dir_name(dir, changetype<usize>(nameBuf), nameLen) != errno.SUCCESS) continue;
    let name = String.UTF8.decode(nameBuf);
    while (name.length > 1 && name.endsWith("/")) name = name.substring(0, name.length - 1);
    let rest: string;
    if (path == name) {
      rest = ".";
    } else if (name == "/" && path.startsWith("/")) {
      rest = path.substring(1);
    } else if (path.startsWith(name + "/")) {
      rest = path.substring(name.length + 1);
    } else if (name == "." && !path.startsWith("/")) {
      rest = path;
    } else {
      continue;
    }
    if (name.length > bestLen) {
      bestLen = name.length;
      best = new Resolved(dir, rest.length > 0 ? rest : ".");
    }
  }
  return best;
}

/** Opens `path`; returns the fd, or -(errno) on failure. */
function open(path: string, flags: u16, wanted: u64): i64 {
  const at = resolve(path);
  if (at == null) return -(<i64>errno.NOTCAPABLE);
  const rel = String.UTF8.encode(at.relative);
  const err = path_open(at.dir, lookupflags.SYMLINK_FOLLOW, changetype<usize>(rel), rel.byteLength, flags, wanted, 0, 0, scratch);
  if (err != errno.SUCCESS) return -(<i64>err);
  return <i64>load<u32>(scratch);
}

function errorText(code: i64): string {
  return errnoToString(<u16>(-code));
}

function readAll(path: string): Uint8Array | null {
  const opened = open(path, 0, rights.FD_READ);
  if (opened < 0) {
    fail(1, "cannot read " + path + ": " + errorText(opened));
    return null;
  }
  const file = <fd>opened;
  let data = new Uint8Array(4096);
  let len = 0;
  while (true) {
    if (len == data.length) {
      const bigger = new Uint8Array(data.length * 2);
      bigger.set(data);
      data = bigger;
    }
    store<u32>(scratch, data.dataStart + len, 8);
    store<u32>(scratch, data.length - len, 12);
    const err = fd_read(file, scratch + 8, 1, scratch + 16);
    if (err != errno.SUCCESS) {
      fail(1, "cannot read " + path + ": " + errnoToString(err));
      return null;
    }
    const got = load<u32>(scratch, 16);
    if (got == 0) break;
    len += got;
  }
  fd_close(file);
  return data.subarray(0, len);
}

function writeAll(path: string, data: Uint8Array): void {
  const opened = open(path, oflags.CREAT | oflags.TRUNC, rights.FD_WRITE);
  if (opened < 0) {
    fail(1, "cannot write " + path + ": " + errorText(opened));
    return;
  }
  const file = <fd>opened;
  let done = 0;
  while (done < data.length) {
    store<u32>(scratch, data.dataStart + done, 8);
    store<u32>(scratch, data.length - done, 12);
    const err = fd_write(file, scratch + 8, 1, scratch + 16);
    if (err != errno.SUCCESS) {
      fail(1, "cannot write " + path + ": " + errnoToString(err));
      return;
    }
    done += load<u32>(scratch, 16);
  }
  fd_close(file);
}

function parseExitCode(s: string): i32 {
  if (s.length == 0 || s.length > 3) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n <= 125 ? n : -1;
}

function isSpace(c: u8): bool {
  return c == 32 || c == 9 || c == 10 || c == 13 || c == 11 || c == 12;
}

const args = process.argv;
if (args.length < 3 || args.length > 4) fail(2, USAGE);
const input = args[1];
const output = args[2];
let exitCode = 0;
if (args.length == 4) {
  exitCode = parseExitCode(args[3]);
  if (exitCode < 0) fail(2, 'exit code must be an integer from 0 to 125, got "' + args[3] + '"');
}
let mode = process.env.has("MODE") ? process.env.get("MODE") : "";
if (mode.length == 0) mode = "upper";
if (mode != "upper" && mode != "lower") fail(2, 'unknown MODE "' + mode + '" (expected upper or lower)');
const upper = mode == "upper";

const data = readAll(input)!;
let lines = 0;
let words = 0;
let inWord = false;
for (let i = 0; i < data.length; i++) {
  let c = data[i];
  if (c == 10) lines++;
  const space = isSpace(c);
  if (!space && !inWord) words++;
  inWord = !space;
  if (upper && c >= 97 && c <= 122) c -= 32;
  else if (!upper && c >= 65 && c <= 90) c += 32;
  data[i] = c;
}
writeAll(output, data);

process.stdout.write("transform (assemblyscript)\n");
process.stdout.write("mode: " + mode + "\n");
process.stdout.write(
  "input: " + input + ": " + data.length.toString() + " bytes, " + lines.toString() + " lines, " + words.toString() + " words\n",
);
process.stderr.write("wrote " + data.length.toString() + " bytes to " + output + "\n");
process.exit(exitCode);
