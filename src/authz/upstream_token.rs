//! The proxy's own credential for the apiserver: a bearer token read from a
//! file (the pod's projected service-account token) and re-read when the
//! file changes, as projected tokens rotate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How often the file's modification time is checked.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Errors reading the token file.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTokenError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: empty, or not a single-line token")]
    Invalid { path: String },
}

/// The current upstream token, shared by every request.
#[derive(Clone)]
pub struct UpstreamToken {
    path: PathBuf,
    state: Arc<RwLock<(Arc<str>, Option<SystemTime>)>>,
}

impl UpstreamToken {
    /// Reads the file once; a missing or empty file is a start-up error.
    pub fn load(path: &Path) -> Result<Self, UpstreamTokenError> {
        let (token, mtime) = read(path)?;
        Ok(UpstreamToken {
            path: path.to_owned(),
            state: Arc::new(RwLock::new((token, mtime))),
        })
    }

    /// The token to send upstream.
    pub fn current(&self) -> Arc<str> {
        match self.state.read() {
            Ok(s) => Arc::clone(&s.0),
            Err(p) => Arc::clone(&p.into_inner().0),
        }
    }

    /// Re-reads the file if its modification time changed. A file that
    /// became unreadable keeps the last good token (and is logged).
    pub fn reload_if_changed(&self) {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let known = match self.state.read() {
            Ok(s) => s.1,
            Err(p) => p.into_inner().1,
        };
        if mtime.is_some() && mtime == known {
            return;
        }
        match read(&self.path) {
            Ok(next) => {
                if let Ok(mut s) = self.state.write() {
                    *s = next;
                }
                tracing::info!(path = %self.path.display(), "upstream token reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "keeping the previous upstream token"),
        }
    }

    /// Reloads on a timer until dropped.
    pub async fn run_reloader(self) {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.reload_if_changed();
        }
    }
}

fn read(path: &Path) -> Result<(Arc<str>, Option<SystemTime>), UpstreamTokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| UpstreamTokenError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty()
        || token
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(UpstreamTokenError::Invalid {
            path: path.display().to_string(),
        });
    }
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((Arc::from(token), mtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_a_rotated_token_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let t = UpstreamToken::load(&path).unwrap();
        assert_eq!(&*t.current(), "first");

        std::fs::write(&path, "second").unwrap();
        // Force a visible change even on coarse mtime filesystems.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        t.reload_if_changed();
        assert_eq!(&*t.current(), "second");

        std::fs::remove_file(&path).unwrap();
        t.reload_if_changed();
        assert_eq!(&*t.current(), "second");

        std::fs::write(&path, "two\nlines").unwrap();
        assert!(UpstreamToken::load(&path).is_err());
    }
}
