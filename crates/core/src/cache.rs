//! The content-addressed compile cache.
//!
//! Layout under the cache root:
//!
//! ```text
//! v1/<engine-id>/objects/<sha256 of the source>.cwasm   compiled code + integrity trailer
//! v1/<engine-id>/index/<stat key>                       "<sha256> <kind>" for a file seen before
//! ```
//!
//! `engine-id` hashes the Wasmtime version and every engine setting that
//! changes generated code, so entries from another engine are never tried.
//! Each object is Wasmtime's serialised code followed by a trailer (BLAKE3
//! of the code, then a magic tag; Wasmtime's loader ignores bytes past the
//! ELF image). An entry whose trailer does not match is treated as a miss
//! and rewritten; an intact one is mapped straight from the file.
//! The stat key (device, inode, size, mtime, ctime) lets a warm start skip
//! reading and hashing the source entirely. Writes go to a temporary file and
//! are renamed into place, so concurrent runs never see a partial entry.
//!
//! Entries are opened without blocking and used only if the opened file is a
//! regular file, so a FIFO or device put in the cache's place is a miss, not
//! a hang. Every directory of the cache that is read (the root, `v1/`, the
//! engine's directory, `objects/` and `index/`) must belong to the user and
//! must not be writable by group or others.
//!
//! `.cwasm` files written by `wasmlayer compile` carry the same trailer
//! ([`append_trailer`], [`strip_trailer`]).

use crate::artifact::{ArtifactKind, Format};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const TRAILER_MAGIC: &[u8; 8] = b"WLCACHE1";
/// Bytes of the integrity trailer: BLAKE3 of what precedes it, then a magic tag.
pub const TRAILER_LEN: usize = 32 + TRAILER_MAGIC.len();
/// An index entry is one short line; anything longer is not ours.
const MAX_INDEX_ENTRY: u64 = 512;

/// Appends the integrity trailer (BLAKE3 of `code`, then the magic tag).
pub fn append_trailer(code: &mut Vec<u8>) {
    let sum = blake3::hash(code);
    code.extend_from_slice(sum.as_bytes());
    code.extend_from_slice(TRAILER_MAGIC);
}

/// Why bytes were refused by [`strip_trailer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerError {
    /// Too short, or no magic tag at the end: not written with a trailer, or truncated.
    Missing,
    /// The checksum does not match the bytes: corrupted.
    Mismatch,
}

/// Checks the integrity trailer and returns the bytes before it.
pub fn strip_trailer(bytes: &[u8]) -> Result<&[u8], TrailerError> {
    if bytes.len() < TRAILER_LEN || &bytes[bytes.len() - TRAILER_MAGIC.len()..] != TRAILER_MAGIC {
        return Err(TrailerError::Missing);
    }
    let (code, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    if blake3::hash(code).as_bytes() != &trailer[..32] {
        return Err(TrailerError::Mismatch);
    }
    Ok(code)
}

/// Why a file was refused by [`verify_file`].
#[derive(Debug)]
pub enum FileCheckError {
    /// It could not be opened or read, or is not a regular file.
    Io(std::io::Error),
    /// Its trailer is missing or does not match.
    Trailer(TrailerError),
}

/// Checks the integrity trailer of the file at `path` the way
/// [`strip_trailer`] checks bytes, by streaming it: nothing but a small
/// buffer is held in memory, and the caller then maps the file.
pub fn verify_file(path: &Path) -> Result<(), FileCheckError> {
    use std::io::{Read, Seek, SeekFrom};
    let (mut f, meta) = open_regular(path).map_err(FileCheckError::Io)?;
    let len = meta.len();
    let mut trailer = [0u8; TRAILER_LEN];
    let intact = len >= TRAILER_LEN as u64
        && f.seek(SeekFrom::Start(len - TRAILER_LEN as u64)).is_ok()
        && f.read_exact(&mut trailer).is_ok()
        && &trailer[32..] == TRAILER_MAGIC;
    if !intact {
        return Err(FileCheckError::Trailer(TrailerError::Missing));
    }
    let mut hasher = blake3::Hasher::new();
    f.seek(SeekFrom::Start(0)).map_err(FileCheckError::Io)?;
    hasher
        .update_reader((&mut f).take(len - TRAILER_LEN as u64))
        .map_err(FileCheckError::Io)?;
    match hasher.finalize().as_bytes() == &trailer[..32] {
        true => Ok(()),
        false => Err(FileCheckError::Trailer(TrailerError::Mismatch)),
    }
}

/// Opens `path` for reading without blocking (a FIFO would otherwise wait
/// for a writer) and returns it only if the opened file is a regular file.
fn open_regular(path: &Path) -> std::io::Result<(fs::File, fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((f, meta))
}

/// A cache for one engine configuration.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// An index entry: what the file at a stat key was last time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub sha256: String,
    pub kind: ArtifactKind,
    pub format: Format,
}

/// The default cache root: `$XDG_CACHE_HOME/wasmlayer` or `~/.cache/wasmlayer`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("wasmlayer"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("wasmlayer"))
}

impl Cache {
    /// Opens (creating if needed) the cache for `engine_id` under `root`.
    /// Refuses a directory that another user owns or others can write to:
    /// compiled code is trusted when loaded, so its directory must be ours.
    pub fn open(root: &Path, engine_id: &str) -> Result<Cache, String> {
        let dir = root.join("v1").join(engine_id);
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        // Each level is checked before anything is made inside it, so that
        // nothing is written into a directory that is not ours (only the
        // root's missing parents are made all at once).
        for (i, p) in [
            root.to_path_buf(),
            root.join("v1"),
            dir.clone(),
            dir.join("objects"),
            dir.join("index"),
        ]
        .into_iter()
        .enumerate()
        {
            match fs::DirBuilder::new()
                .recursive(i == 0)
                .mode(0o700)
                .create(&p)
            {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(format!("cache {}: {e}", p.display()));
                }
                _ => {}
            }
            let m = fs::metadata(&p).map_err(|e| format!("cache {}: {e}", p.display()))?;
            if m.uid() != uid || m.permissions().mode() & 0o022 != 0 {
                return Err(format!(
                    "cache directory {} is not private to this user (owner uid {}, mode {:o}); not using it",
                    p.display(),
                    m.uid(),
                    m.permissions().mode() & 0o777
                ));
            }
        }
        Ok(Cache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stat key of a file: changes whenever the file is replaced or
    /// written (ctime cannot be set back by a user).
    pub fn stat_key(meta: &fs::Metadata) -> String {
        let mut h = blake3::Hasher::new();
        for v in [
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime() as u64,
            meta.mtime_nsec() as u64,
            meta.ctime() as u64,
            meta.ctime_nsec() as u64,
        ] {
            h.update(&v.to_le_bytes());
        }
        h.finalize().to_hex()[..32].to_string()
    }

    pub fn lookup_index(&self, stat_key: &str) -> Option<IndexEntry> {
        use std::io::Read;
        let path = self.dir.join("index").join(stat_key);
        let (f, _) = match open_regular(&path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cache index entry {} ignored: {e}", path.display());
                }
                return None;
            }
        };
        let mut text = String::new();
        f.take(MAX_INDEX_ENTRY).read_to_string(&mut text).ok()?;
        let mut parts = text.trim_end().split(' ');
        let (sha, kind, format) = (parts.next()?, parts.next()?, parts.next()?);
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || parts.next().is_some()
        {
            return None;
        }
        let format = match format {
            "wasm" => Format::Wasm,
            "wat" => Format::Wat,
            _ => return None,
        };
        Some(IndexEntry {
            sha256: sha.to_string(),
            kind: ArtifactKind::parse(kind)?,
            format,
        })
    }

    pub fn write_index(&self, stat_key: &str, entry: &IndexEntry) {
        let format = if entry.format == Format::Wat {
            "wat"
        } else {
            "wasm"
        };
        let body = format!("{} {} {format}\n", entry.sha256, entry.kind);
        if let Err(e) =
            self.write_atomic(&self.dir.join("index").join(stat_key), &[body.as_bytes()])
        {
            tracing::warn!("could not write cache index entry: {e}");
        }
    }

    fn object_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("objects").join(format!("{sha256}.cwasm"))
    }

    /// Returns the path of the compiled code for `sha256` if present, a
    /// regular file and intact. The checksum is computed by streaming the
    /// file, so nothing but a small buffer is held in memory; the caller then
    /// maps the file.
    pub fn verified_object(&self, sha256: &str) -> Option<PathBuf> {
        let path = self.object_path(sha256);
        match verify_file(&path) {
            Ok(()) => return Some(path),
            Err(FileCheckError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(FileCheckError::Io(e)) => {
                tracing::warn!("cache entry {} ignored ({e}); recompiling", path.display())
            }
            Err(FileCheckError::Trailer(TrailerError::Missing)) => tracing::warn!(
                "cache entry {} has no valid trailer; recompiling",
                path.display()
            ),
            Err(FileCheckError::Trailer(TrailerError::Mismatch)) => tracing::warn!(
                "cache entry {} is corrupted (checksum mismatch); recompiling",
                path.display()
            ),
        }
        None
    }

    /// Stores compiled code for `sha256`.
    pub fn store_object(&self, sha256: &str, code: &[u8]) {
        let sum = blake3::hash(code);
        if let Err(e) = self.write_atomic(
            &self.object_path(sha256),
            &[code, sum.as_bytes(), TRAILER_MAGIC],
        ) {
            tracing::warn!("could not write cache entry: {e}");
        }
    }

    /// Removes a bad entry so the next run does not try it again.
    pub fn evict_object(&self, sha256: &str) {
        let _ = fs::remove_file(self.object_path(sha256));
    }

    fn write_atomic(&self, dest: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
        let tmp = dest.with_extension(format!(
            "tmp.{}.{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode_0600()
                .open(&tmp)?;
            for p in parts {
                f.write_all(p)?;
            }
            drop(f);
            fs::rename(&tmp, dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Writes `bytes` to `path` whole or not at all: into a temporary file
/// beside it, then renamed over it (for outputs: `.cwasm`, components,
/// pulled artifacts).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, bytes)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            crate::Error::host(format!("cannot write {}: {e}", path.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wl-cache-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn round_trip_and_corruption() {
        let root = tmpdir("rt");
        let c = Cache::open(&root, "e1").unwrap();
        let sha = "a".repeat(64);
        assert!(c.verified_object(&sha).is_none());
        c.store_object(&sha, b"compiled code");
        let p = c.verified_object(&sha).unwrap();
        assert!(fs::read(&p).unwrap().starts_with(b"compiled code"));
        // Flip one byte of the code: the entry must be refused.
        let mut raw = fs::read(&p).unwrap();
        raw[3] ^= 0xff;
        fs::write(&p, &raw).unwrap();
        assert!(c.verified_object(&sha).is_none());
        // Truncated entries too.
        fs::write(&p, b"short").unwrap();
        assert!(c.verified_object(&sha).is_none());
        let e = IndexEntry {
            sha256: sha.clone(),
            kind: ArtifactKind::Component,
            format: Format::Wat,
        };
        c.write_index("k", &e);
        assert_eq!(c.lookup_index("k").unwrap(), e);
        fs::write(c.dir.join("index/k"), "garbage").unwrap();
        assert!(c.lookup_index("k").is_none());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_world_writable_dir() {
        let root = tmpdir("perm");
        Cache::open(&root, "e").unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(Cache::open(&root, "e").unwrap_err().contains("not private"));
        // Nothing is made inside a directory that is refused.
        fs::remove_dir_all(root.join("v1")).unwrap();
        assert!(Cache::open(&root, "e").unwrap_err().contains("not private"));
        assert!(!root.join("v1").exists(), "made v1 in a refused directory");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        Cache::open(&root, "e").unwrap();
        // Every directory below the root is checked too.
        for sub in ["v1", "v1/e", "v1/e/objects", "v1/e/index"] {
            let d = root.join(sub);
            fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
            let e = Cache::open(&root, "e").unwrap_err();
            assert!(e.contains("not private") && e.contains(sub), "{sub}: {e}");
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        }
        Cache::open(&root, "e").unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn fifos_in_place_of_entries_are_misses() {
        let root = tmpdir("fifo");
        let c = Cache::open(&root, "e").unwrap();
        let sha = "b".repeat(64);
        let mkfifo = |p: &Path| {
            let path = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        };
        mkfifo(&c.object_path(&sha));
        assert!(c.verified_object(&sha).is_none());
        // Storing replaces it with a regular file.
        c.store_object(&sha, b"code");
        assert!(c.verified_object(&sha).is_some());
        mkfifo(&c.dir.join("index/k"));
        assert!(c.lookup_index("k").is_none());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn trailers() {
        let mut code = b"some code".to_vec();
        append_trailer(&mut code);
        assert_eq!(code.len(), 9 + TRAILER_LEN);
        assert_eq!(strip_trailer(&code), Ok(&b"some code"[..]));
        for i in 0..code.len() {
            let mut bad = code.clone();
            bad[i] ^= 0x20;
            assert!(strip_trailer(&bad).is_err(), "byte {i}");
        }
        assert_eq!(strip_trailer(b"short"), Err(TrailerError::Missing));
        assert_eq!(
            strip_trailer(&code[..code.len() - 1]),
            Err(TrailerError::Missing)
        );
    }
}
