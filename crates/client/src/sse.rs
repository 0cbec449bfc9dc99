//! A small, bounded parser of server-sent events (the subset the node sends).

/// One event as sent: its name (`message` when unnamed) and its data lines joined by `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub event: String,
    pub data: String,
}

/// Why the event stream could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event is over the {0}-byte limit")]
    TooLarge(usize),
    #[error("event stream is not UTF-8")]
    NotUtf8,
}

/// Accumulates bytes and yields complete events. Holds at most `max_event_bytes` of an
/// unfinished event.
#[derive(Debug)]
pub struct SseParser {
    buffer: Vec<u8>,
    max_event_bytes: usize,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buffer: Vec::new(),
            max_event_bytes,
        }
    }

    /// Adds bytes from the stream; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<RawEvent>, SseError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, separator_len)) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + separator_len).take(end).collect();
            let text = std::str::from_utf8(&block).map_err(|_| SseError::NotUtf8)?;
            if let Some(event) = parse_block(text) {
                events.push(event);
            }
        }
        if self.buffer.len() > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        Ok(events)
    }
}

/// The first blank line: the end of the event before it and the separator's length.
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_block(text: &str) -> Option<RawEvent> {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    // An event without data (a keep-alive comment, an id alone) is not dispatched.
    Some(RawEvent {
        event: event.unwrap_or_else(|| "message".to_string()),
        data: data?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = SseParser::new(1024);
        assert!(parser.push(b"event: block\nid: 3\nda").unwrap().is_empty());
        let events = parser.push(b"ta: {\"a\":1}\n\n:keep-alive\n\n").unwrap();
        assert_eq!(
            events,
            vec![RawEvent {
                event: "block".into(),
                data: "{\"a\":1}".into()
            }]
        );
        let events = parser.push(b"data: x\r\ndata: y\r\n\r\n").unwrap();
        assert_eq!(
            events,
            vec![RawEvent {
                event: "message".into(),
                data: "x\ny".into()
            }]
        );
    }

    #[test]
    fn bounds_an_unfinished_event() {
        let mut parser = SseParser::new(16);
        assert_eq!(parser.push(&[b'a'; 17]), Err(SseError::TooLarge(16)));
    }
}
