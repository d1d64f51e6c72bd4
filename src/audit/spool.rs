//! The optional on-disk spool (`--audit-spool-dir`): events still
//! undelivered when the shutdown grace period ends are written there, one
//! JSON event per line, and loaded back into the buffer at the next start,
//! so a restart during a CSE outage loses nothing.
//!
//! Files are written under a temporary name, synced, then renamed, so a
//! file with the final name is always complete. A file is removed only
//! after its events are back in the buffer. The spool covers orderly
//! restarts (SIGTERM); a process killed outright loses what it held.

use std::io::Write;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".jsonl";

/// Spool errors; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `events` (serialized JSON, one per line) to a new spool file.
pub fn write(dir: &Path, events: &[Box<str>]) -> Result<Option<PathBuf>, SpoolError> {
    if events.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let name = format!("audit-{millis:016}-{}", uuid::Uuid::new_v4().simple());
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(format!("{name}{SUFFIX}"));
    {
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = std::io::BufWriter::new(file);
        for e in events {
            w.write_all(e.as_bytes()).map_err(io_err(&tmp))?;
            w.write_all(b"\n").map_err(io_err(&tmp))?;
        }
        let file = w.into_inner().map_err(|e| SpoolError::Io {
            path: tmp.display().to_string(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(Some(path))
}

/// The spool files in `dir`, oldest first.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(SUFFIX))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Reads one spool file. Lines that are not JSON objects (a damaged file)
/// are skipped and counted in the second value.
pub fn read(path: &Path) -> Result<(Vec<Box<str>>, usize), SpoolError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut events = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => events.push(line.into()),
            _ => bad += 1,
        }
    }
    Ok((events, bad))
}

/// Removes a spool file whose events are back in the buffer.
pub fn remove(path: &Path) -> Result<(), SpoolError> {
    std::fs::remove_file(path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_order_and_skips_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), &[]).unwrap().is_none());
        let a = write(dir.path(), &["{\"n\":1}".into(), "{\"n\":2}".into()])
            .unwrap()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = write(dir.path(), &["{\"n\":3}".into()]).unwrap().unwrap();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        assert_eq!(files(dir.path()).unwrap(), vec![a.clone(), b]);
        std::fs::write(&a, "{\"n\":1}\nnot json\n{\"n\":2}\n").unwrap();
        let (events, bad) = read(&a).unwrap();
        assert_eq!(events, vec![Box::from("{\"n\":1}"), Box::from("{\"n\":2}")]);
        assert_eq!(bad, 1);
        remove(&a).unwrap();
        assert_eq!(files(dir.path()).unwrap().len(), 1);
        assert!(files(&dir.path().join("missing")).unwrap().is_empty());
    }
}
