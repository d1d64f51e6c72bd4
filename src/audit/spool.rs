//! The optional on-disk spool (`--audit-spool-dir`): events still
//! undelivered when the shutdown grace period ends are written there, one
//! JSON event per line, and loaded back into the buffer at the next start,
//! so a restart during a CSE outage loses nothing.
//!
//! Files are written under a temporary name, synced, then renamed, so a
//! file with the final name is always complete. A file is removed only
//! after all its events are back in the buffer; reloading stops at the
//! first event that does not fit, the file it came from is rewritten with
//! what is left, and it and the later files wait for the next start. The
//! spool covers orderly restarts (SIGTERM); a process killed outright
//! loses what it held.
//!
//! The forwarder calls two functions: [`reload`] before it starts
//! receiving, and [`keep_leftover`] with whatever the drain could not
//! deliver; the file format stays private to this module.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::buffer::{Buffer, Item};
use super::metrics::{DropReason, Metrics, Source};

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

// === the lifecycle: reload at start, keep what is left at shutdown ===

/// What became of the events still undelivered when the grace period ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Written to the spool for the next start.
    pub spooled: u64,
    /// Lost (no spool, or the spool could not be written), and counted.
    pub dropped: u64,
}

/// Loads spooled events back into the buffer, oldest first, as many as
/// fit; the rest stay in the spool.
pub async fn reload(dir: &Path, buffer: &Buffer, max_wait: Duration) {
    // Spooled events already waited before the restart: send them first
    // thing rather than after another full batch wait.
    let arrived = Instant::now()
        .checked_sub(max_wait)
        .unwrap_or_else(Instant::now);
    let files = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || files(&dir)).await
    };
    let files = match files {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot list the audit spool");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list the audit spool");
            return;
        }
    };
    for path in files {
        let p = path.clone();
        let read = tokio::task::spawn_blocking(move || read(&p)).await;
        let (events, bad) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read an audit spool file, leaving it in place");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read an audit spool file, leaving it in place");
                continue;
            }
        };
        if bad > 0 {
            tracing::error!(file = %path.display(), lines = bad, "damaged lines in an audit spool file skipped");
        }
        let loaded = buffer.push_leading(Source::Spool, &events, arrived);
        if loaded < events.len() {
            tracing::warn!(
                file = %path.display(),
                loaded,
                left = events.len() - loaded,
                "audit buffer full while reloading the spool; the rest stays for the next start"
            );
            if loaded > 0 {
                let rest = events[loaded..].to_vec();
                let p = path.clone();
                match tokio::task::spawn_blocking(move || replace(&p, &rest)).await {
                    Ok(Ok(())) => {}
                    // The file still holds the reloaded events too: sent
                    // twice rather than lost.
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot rewrite a partly reloaded audit spool file")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot rewrite a partly reloaded audit spool file")
                    }
                }
            }
            return;
        }
        tracing::info!(file = %path.display(), loaded, "audit spool file reloaded");
        let p = path.clone();
        match tokio::task::spawn_blocking(move || remove(&p)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot remove a reloaded audit spool file"),
            Err(e) => tracing::error!(error = %e, "cannot remove a reloaded audit spool file"),
        }
    }
}

/// Events still undelivered at the end of the grace period go to the spool;
/// without one (or if writing fails) they are counted as dropped.
pub async fn keep_leftover(
    dir: Option<&Path>,
    leftover: Vec<Item>,
    metrics: &Metrics,
) -> DrainReport {
    if leftover.is_empty() {
        return DrainReport::default();
    }
    let n = leftover.len() as u64;
    if let Some(dir) = dir {
        let dir = dir.to_path_buf();
        let events: Vec<Box<str>> = leftover.into_iter().map(|i| i.json).collect();
        match tokio::task::spawn_blocking(move || write(&dir, &events)).await {
            Ok(Ok(path)) => {
                tracing::info!(
                    events = n,
                    file = %path.map(|p| p.display().to_string()).unwrap_or_default(),
                    "undelivered audit events spooled for the next start"
                );
                return DrainReport {
                    spooled: n,
                    dropped: 0,
                };
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot spool undelivered audit events"),
            Err(e) => tracing::error!(error = %e, "cannot spool undelivered audit events"),
        }
    }
    metrics.dropped(DropReason::Shutdown, n);
    tracing::error!(
        events = n,
        "audit events undelivered at the end of the shutdown grace period were dropped"
    );
    DrainReport {
        spooled: 0,
        dropped: n,
    }
}

// === files ===

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `events` (serialized JSON, one per line) to a new spool file.
fn write(dir: &Path, events: &[Box<str>]) -> Result<Option<PathBuf>, SpoolError> {
    if events.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let name = format!("audit-{millis:016}-{}", uuid::Uuid::new_v4().simple());
    let path = dir.join(format!("{name}{SUFFIX}"));
    replace(&path, events)?;
    Ok(Some(path))
}

/// Writes `events` to a temporary file beside `path`, syncs it, and renames
/// it to `path`, so `path` is at every moment either the old file or the
/// complete new one.
fn replace(path: &Path, events: &[Box<str>]) -> Result<(), SpoolError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
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
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

/// The spool files in `dir`, oldest first.
fn files(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
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
fn read(path: &Path) -> Result<(Vec<Box<str>>, usize), SpoolError> {
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
fn remove(path: &Path) -> Result<(), SpoolError> {
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

    #[tokio::test]
    async fn reload_removes_only_what_went_back_into_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Box<str>> = (0..15).map(|n| format!("{{\"n\":{n}}}").into()).collect();
        for chunk in events.chunks(5) {
            write(dir.path(), chunk).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let metrics = std::sync::Arc::new(Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let buffer = Buffer::new(7, 1 << 20, metrics.clone());
        reload(dir.path(), &buffer, Duration::from_secs(1)).await;

        let loaded: Vec<_> = buffer.take_all().into_iter().map(|i| i.json).collect();
        assert_eq!(loaded, events[..7]);
        assert_eq!(metrics.dropped_count(DropReason::BufferFull), 0);
        let left = files(dir.path()).unwrap();
        assert_eq!(left.len(), 2, "the partly loaded file and the next one");
        let mut kept = read(&left[0]).unwrap().0;
        kept.extend(read(&left[1]).unwrap().0);
        assert_eq!(kept, events[7..], "nothing lost, nothing twice");

        reload(dir.path(), &buffer, Duration::from_secs(1)).await;
        let loaded: Vec<_> = buffer.take_all().into_iter().map(|i| i.json).collect();
        assert_eq!(loaded, events[7..14]);
        assert_eq!(
            read(&files(dir.path()).unwrap()[0]).unwrap().0,
            events[14..]
        );
    }
}
