//! The versioned, checksummed file container every jukicore state file uses.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"JUKICORE"
//! 8       8     kind   ASCII, space padded (for example b"CODEREG ")
//! 16      4     format version, u32 LE
//! 20      4     section count, u32 LE
//! 24      8*n   section lengths, u64 LE
//! ...           the sections, back to back
//! end-32  32    SHA-256 of every byte before it
//! ```
//!
//! Files are written to a temporary name beside the target, flushed, synced
//! and renamed, so a crash leaves either the old file or the new one.
//! Reading checks size, magic, kind, version and checksum before any section
//! is parsed: truncation and corruption are detected, never half-loaded.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

const SHA256_OUTPUT_LEN: usize = 32;

use crate::error::{CoreError, IoContext, Result};

const MAGIC: &[u8; 8] = b"JUKICORE";
const FIXED: usize = 24;

/// The 8-byte tag of a container kind: 1 to 8 printable ASCII characters
/// without spaces, padded with spaces (`"CODEBLK"` is `b"CODEBLK "`). A space
/// inside the name would let two names share a tag, so it is refused.
pub fn kind_tag(kind: &str) -> Result<[u8; 8]> {
    let b = kind.as_bytes();
    if b.is_empty() || b.len() > 8 || !b.iter().all(|c| c.is_ascii_graphic()) {
        return Err(CoreError::Invalid(format!(
            "a container kind is 1 to 8 printable ASCII characters without spaces, got {kind:?}"
        )));
    }
    let mut tag = [b' '; 8];
    tag[..b.len()].copy_from_slice(b);
    Ok(tag)
}

/// Writes a section's bytes into the sink.
pub type SectionWriter<'a> = Box<dyn Fn(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// A section: its length, and a writer that must write exactly that many bytes.
pub struct Section<'a> {
    pub len: u64,
    pub write: SectionWriter<'a>,
}

struct HashingWriter<W: Write> {
    inner: W,
    ctx: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write a container atomically (see [`write_atomic`]).
pub fn write(path: &Path, kind: &[u8; 8], version: u32, sections: &[Section<'_>]) -> Result<()> {
    write_atomic(path, |file| {
        let mut w = HashingWriter {
            inner: file,
            ctx: Sha256::new(),
            written: 0,
        };
        let lens: Vec<u64> = sections.iter().map(|s| s.len).collect();
        w.write_all(&header(kind, version, &lens))
            .at("write", path)?;
        for s in sections {
            let before = w.written;
            (s.write)(&mut w).at("write", path)?;
            if w.written - before != s.len {
                return Err(CoreError::Invalid(
                    "section length mismatch while writing".into(),
                ));
            }
        }
        let digest = w.ctx.finalize();
        w.inner.write_all(&digest).at("write", path)
    })
}

/// Write a file atomically: `body` writes it into a temporary beside `path`
/// (mode 0600 from its creation), which is synced and renamed over `path`, and
/// the directory synced; on any error the temporary goes and `path` is as it was.
/// Every state file of the core is written so (containers, the lookup index).
pub fn write_atomic(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| CoreError::Invalid(format!("not a file path: {}", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        // Mode 0600 from its creation (never readable by others, not even for a moment;
        // the umask can only narrow it): the temporary becomes the file by a rename.
        // A temporary of a dead process that had our pid goes first.
        let _ = fs::remove_file(&tmp);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&tmp).at("write", path)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        body(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .at("write", path)?;
        file.sync_all().at("write", path)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            if let Err(e) = fs::rename(&tmp, path) {
                let _ = fs::remove_file(&tmp);
                return Err(e).at("write", path);
            }
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn header(kind: &[u8; 8], version: u32, lens: &[u64]) -> Vec<u8> {
    let mut h = Vec::with_capacity(FIXED + 8 * lens.len());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(kind);
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&(lens.len() as u32).to_le_bytes());
    for l in lens {
        h.extend_from_slice(&l.to_le_bytes());
    }
    h
}

/// The container as bytes in memory (same layout as [`write`]), for small
/// payloads that travel rather than sit in a file.
pub fn pack(kind: &[u8; 8], version: u32, sections: &[&[u8]]) -> Vec<u8> {
    let lens: Vec<u64> = sections.iter().map(|s| s.len() as u64).collect();
    let mut out = header(kind, version, &lens);
    for s in sections {
        out.extend_from_slice(s);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// A container read back and verified: its version and sections.
pub struct Loaded {
    pub version: u32,
    bytes: Vec<u8>,
    bounds: Vec<(usize, usize)>,
}

impl Loaded {
    pub fn sections(&self) -> usize {
        self.bounds.len()
    }
    pub fn section(&self, i: usize) -> &[u8] {
        let (a, b) = self.bounds[i];
        &self.bytes[a..b]
    }
}

/// Read and verify a container of the given kind; `versions` lists the
/// format versions this build understands.
pub fn read(path: &Path, kind: &[u8; 8], versions: &[u32]) -> Result<Loaded> {
    let bytes = read_regular(path).at("read", path)?;
    parse(bytes, kind, versions).map_err(|e| match e {
        CoreError::Corrupt(m) => CoreError::Corrupt(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// The bytes of the regular file at `path`. A directory, FIFO, device or socket is
/// refused without blocking (a FIFO with no writer would otherwise hang the read).
fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(0o4000); // O_NONBLOCK: opening a FIFO never waits for a writer
    }
    let mut file = opts.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Verify container bytes (see [`read`]).
pub fn parse(bytes: Vec<u8>, kind: &[u8; 8], versions: &[u32]) -> Result<Loaded> {
    let corrupt = |m: &str| Err(CoreError::Corrupt(m.to_string()));
    if bytes.len() < FIXED + SHA256_OUTPUT_LEN {
        return corrupt("file is truncated (shorter than a header)");
    }
    if &bytes[..8] != MAGIC {
        return corrupt("not a jukicore file (bad magic)");
    }
    if &bytes[8..16] != kind {
        return corrupt(&format!(
            "file holds {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[8..16]).trim_end(),
            String::from_utf8_lossy(kind).trim_end()
        ));
    }
    let body_end = bytes.len() - SHA256_OUTPUT_LEN;
    let digest = Sha256::digest(&bytes[..body_end]);
    let version = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
    let count = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
    let table_end = FIXED.checked_add(count.saturating_mul(8));
    let Some(table_end) = table_end.filter(|e| *e <= body_end) else {
        return corrupt("file is truncated or corrupted (section table)");
    };
    let mut bounds = Vec::with_capacity(count);
    let mut at = table_end;
    for i in 0..count {
        let len = u64::from_le_bytes(bytes[FIXED + 8 * i..FIXED + 8 * i + 8].try_into().unwrap());
        let end = (at as u64)
            .checked_add(len)
            .filter(|e| *e <= body_end as u64);
        let Some(end) = end else {
            return corrupt("file is truncated or corrupted (section length)");
        };
        bounds.push((at, end as usize));
        at = end as usize;
    }
    if at != body_end {
        return corrupt("file is truncated or corrupted (size does not match its sections)");
    }
    if digest[..] != bytes[body_end..] {
        return corrupt("checksum mismatch: the file is corrupted");
    }
    if !versions.contains(&version) {
        return corrupt(&format!(
            "format version {version} is not supported (this build reads {versions:?})"
        ));
    }
    Ok(Loaded {
        version,
        bytes,
        bounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("x.bin");
        let a = b"hello".to_vec();
        let b = vec![7u8; 1000];
        write(
            &p,
            b"TESTKIND",
            3,
            &[
                Section {
                    len: 5,
                    write: Box::new(move |w| w.write_all(&a)),
                },
                Section {
                    len: 1000,
                    write: Box::new(move |w| w.write_all(&b)),
                },
            ],
        )
        .unwrap();
        p
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("jkc-test-{tag}-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip() {
        let d = tmpdir("rt");
        let p = sample(&d);
        let l = read(&p, b"TESTKIND", &[3]).unwrap();
        assert_eq!(l.version, 3);
        assert_eq!(l.sections(), 2);
        assert_eq!(l.section(0), b"hello");
        assert_eq!(l.section(1), &[7u8; 1000][..]);
    }

    #[cfg(unix)]
    #[test]
    fn a_written_file_is_private_and_a_stale_temporary_is_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("mode");
        // a temporary left by a dead process with our pid, readable by everyone
        let stale = d.join(format!(".x.bin.tmp-{}", std::process::id()));
        fs::write(&stale, b"old").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
        let p = sample(&d);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!stale.exists());
        assert_eq!(read(&p, b"TESTKIND", &[3]).unwrap().section(0), b"hello");
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_detected() {
        let d = tmpdir("flip");
        let p = sample(&d);
        let good = fs::read(&p).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(parse(bad, b"TESTKIND", &[3]).is_err(), "flip at {i}");
        }
        for n in 0..good.len() {
            assert!(
                parse(good[..n].to_vec(), b"TESTKIND", &[3]).is_err(),
                "truncated to {n}"
            );
        }
    }

    #[test]
    fn pack_matches_the_file_layout() {
        let d = tmpdir("pack");
        let p = sample(&d);
        let packed = pack(b"TESTKIND", 3, &[b"hello", &[7u8; 1000]]);
        assert_eq!(packed, fs::read(&p).unwrap());
        let l = parse(packed, b"TESTKIND", &[3]).unwrap();
        assert_eq!(l.section(0), b"hello");
    }

    #[test]
    fn wrong_kind_and_unknown_version_are_refused() {
        let d = tmpdir("kind");
        let p = sample(&d);
        assert!(matches!(
            read(&p, b"OTHERKND", &[3]),
            Err(CoreError::Corrupt(_))
        ));
        assert!(matches!(
            read(&p, b"TESTKIND", &[1, 2]),
            Err(CoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_directory_or_a_fifo_is_refused_without_blocking() {
        let d = tmpdir("odd");
        let err = read(&d, b"TESTKIND", &[3]).err().expect("refused");
        assert!(
            matches!(err, CoreError::File { action: "read", .. }),
            "{err:?}"
        );
        assert!(err.to_string().ends_with(": not a regular file"), "{err}");
        let fifo = d.join("fifo");
        let _ = fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if matches!(made, Ok(s) if s.success()) {
            // Without O_NONBLOCK this open would wait forever for a writer.
            assert!(matches!(
                read(&fifo, b"TESTKIND", &[3]),
                Err(CoreError::File { .. })
            ));
        }
    }

    #[test]
    fn io_errors_name_the_path_and_keep_the_errno_and_leave_no_temp() {
        let d = tmpdir("io");
        let target = d.join("no-such-dir").join("f.bin");
        let err = write(&target, b"TESTKIND", 1, &[]).unwrap_err();
        match &err {
            CoreError::File {
                action,
                path,
                source,
            } => {
                assert_eq!((*action, path), ("write", &target));
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            other => panic!("{other:?}"),
        }
        let err = read(&target, b"TESTKIND", &[1]).err().expect("refused");
        assert_eq!(err.os_errno(), Some(libc::ENOENT));
        assert!(err.to_string().starts_with("cannot read "), "{err}");
        // A directory as the target: the rename fails, the temporary file goes.
        let err = write(&d, b"TESTKIND", 1, &[]).unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::File {
                    action: "write",
                    ..
                }
            ),
            "{err:?}"
        );
        let parent = d.parent().unwrap();
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        let left: Vec<_> = fs::read_dir(parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".{name}.tmp-"))
            })
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn kind_tags_are_padded_and_odd_kinds_refused() {
        assert_eq!(kind_tag("CODEBLK").unwrap(), *b"CODEBLK ");
        assert_eq!(kind_tag("A").unwrap(), *b"A       ");
        assert_eq!(kind_tag("TESTKIND").unwrap(), *b"TESTKIND");
        for bad in [
            "",
            "NINECHARS",
            "CODE BLK",
            "CODEBLK ",
            " A",
            "コード",
            "A\0",
            "A\t",
            "\x7f",
        ] {
            assert!(
                matches!(kind_tag(bad), Err(CoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
