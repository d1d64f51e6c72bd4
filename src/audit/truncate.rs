//! Serializing an event for the buffer, truncating it the way the
//! apiserver's truncate backend does: an event over the maximum size loses
//! its request and response objects and gains the annotation
//! `audit.k8s.io/truncated: "true"`; if it is still too large it is dropped.

use super::event::Event;

/// The annotation the apiserver sets on truncated events.
pub const TRUNCATED_ANNOTATION: &str = "audit.k8s.io/truncated";

/// Why an event could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("event of {size} bytes exceeds the maximum of {max} bytes even without its objects")]
    TooLarge { size: usize, max: usize },
    #[error("event cannot be serialized: {0}")]
    Serialize(String),
}

/// An event ready for the buffer.
#[derive(Debug)]
pub struct Encoded {
    pub json: Box<str>,
    pub truncated: bool,
}

/// The size and truncation policy.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Truncate (and, failing that, drop) events over `max_event_bytes`.
    pub enabled: bool,
    pub max_event_bytes: usize,
}

/// Serializes `event`, truncating it if `limits` say so.
pub fn encode(mut event: Event, limits: Limits) -> Result<Encoded, EncodeError> {
    let json = to_json(&event)?;
    if !limits.enabled || json.len() <= limits.max_event_bytes {
        return Ok(Encoded {
            json,
            truncated: false,
        });
    }
    event.request_object = None;
    event.response_object = None;
    event
        .annotations
        .insert(TRUNCATED_ANNOTATION.to_owned(), "true".to_owned());
    let json = to_json(&event)?;
    if json.len() > limits.max_event_bytes {
        return Err(EncodeError::TooLarge {
            size: json.len(),
            max: limits.max_event_bytes,
        });
    }
    Ok(Encoded {
        json,
        truncated: true,
    })
}

fn to_json(event: &Event) -> Result<Box<str>, EncodeError> {
    serde_json::to_string(event)
        .map(String::into_boxed_str)
        .map_err(|e| EncodeError::Serialize(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(object_bytes: usize, annotation_bytes: usize) -> Event {
        let mut ev: Event = serde_json::from_str(
            r#"{"level":"RequestResponse","auditID":"x","stage":"ResponseComplete","stageTimestamp":"t"}"#,
        )
        .unwrap();
        ev.request_object = Some(serde_json::json!({"data": "r".repeat(object_bytes)}));
        ev.response_object = Some(serde_json::json!({"data": "s".repeat(object_bytes)}));
        if annotation_bytes > 0 {
            ev.annotations
                .insert("big".into(), "a".repeat(annotation_bytes));
        }
        ev
    }

    const ON: Limits = Limits {
        enabled: true,
        max_event_bytes: 1000,
    };

    #[test]
    fn small_events_are_untouched() {
        let e = encode(event(10, 0), ON).unwrap();
        assert!(!e.truncated);
        assert!(e.json.contains("requestObject"));
    }

    #[test]
    fn large_objects_are_removed_and_marked() {
        let e = encode(event(2000, 0), ON).unwrap();
        assert!(e.truncated);
        assert!(!e.json.contains("requestObject"));
        assert!(!e.json.contains("responseObject"));
        assert!(e.json.contains(r#""audit.k8s.io/truncated":"true""#));
        assert!(e.json.len() <= 1000);
    }

    #[test]
    fn still_too_large_is_an_error_and_disabled_keeps_everything() {
        assert!(matches!(
            encode(event(10, 2000), ON),
            Err(EncodeError::TooLarge { max: 1000, .. })
        ));
        let off = Limits {
            enabled: false,
            max_event_bytes: 1000,
        };
        let e = encode(event(2000, 2000), off).unwrap();
        assert!(!e.truncated);
        assert!(e.json.len() > 4000);
    }
}
