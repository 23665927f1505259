use super::*;
use crate::{EventMetadata, StreamId};

fn event(event_type: &str, content_type: &str, metadata: EventMetadata) -> RecordedEvent {
    RecordedEvent {
        id: uuid::Uuid::now_v7(),
        stream: StreamId::new(
            "bank".parse().unwrap(),
            "account".parse().unwrap(),
            "a-1".parse().unwrap(),
        ),
        version: 4_321,
        position: 9,
        event_type: event_type.into(),
        content_type: content_type.into(),
        data: b"{}".to_vec(),
        metadata,
        timestamp_ms: 1_764_806_400_123,
    }
}

fn all_metadata(text: &str) -> EventMetadata {
    EventMetadata {
        command_id: Some(format!("cmd {text}")),
        correlation_id: Some(format!("{text}-corr")),
        causation_id: Some(text.into()),
        component_digest: Some(format!("sha256:{text}")),
    }
}

/// The envelope `headers` hold, as owned fields: (version, id, timestamp,
/// type, content type, command, correlation, causation, digest).
type Owned = [Option<String>; 9];

fn read(headers: &HeaderMap) -> Result<(Owned, u8), String> {
    let e = Envelope::of(headers)?;
    let cow = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_owned);
    Ok((
        [
            cow(&e.version),
            cow(&e.id),
            cow(&e.timestamp),
            cow(&e.event_type),
            cow(&e.content_type),
            cow(&e.command),
            cow(&e.correlation),
            cow(&e.causation),
            cow(&e.digest),
        ],
        e.layout,
    ))
}

fn expected(event: &RecordedEvent) -> Owned {
    let m = &event.metadata;
    [
        Some(event.version.to_string()),
        Some(event.id.to_string()),
        Some(event.timestamp_ms.to_string()),
        Some(event.event_type.clone()),
        Some(event.content_type.clone()),
        m.command_id.clone(),
        m.correlation_id.clone(),
        m.causation_id.clone(),
        m.component_digest.clone(),
    ]
}

/// The texts a field may hold that need care: the separator, the escape,
/// line ends, characters a header parser trims, and the rest of Unicode.
const AWKWARD: [&str; 10] = [
    "",
    "plain",
    "with space",
    "100% sure %41",
    "a=b=c",
    "line\r\nbreak\ttab\0nul\x7f",
    " leading and trailing ",
    "\u{3000}ideographic space\u{a0}",
    "ünïcödé 口座 🦀",
    "%",
];

#[test]
fn every_field_reads_back_as_it_was_written() {
    for text in AWKWARD {
        for metadata in [EventMetadata::default(), all_metadata(text)] {
            let event = event(&format!("type {text}"), text, metadata);
            let headers = headers(&event);
            let (fields, layout) = read(&headers).unwrap();
            assert_eq!(layout, 2);
            assert_eq!(fields, expected(&event), "{text:?}");
        }
    }
}

#[test]
fn the_header_is_one_line_with_no_space_at_its_ends() {
    for text in AWKWARD {
        let event = event(text, text, all_metadata(text));
        let headers = headers(&event);
        assert_eq!(headers.iter().count(), 1);
        let value = headers.get(EVENT).unwrap().as_str();
        assert!(!value.chars().any(char::is_control), "{value:?}");
        assert_eq!(value, value.trim(), "{value:?}");
        // Six named fields, each one token.
        assert_eq!(value.split(' ').count(), 3 + 6, "{value:?}");
    }
}

#[test]
fn a_plain_event_is_written_as_it_reads() {
    let mut event = event("deposited", "application/json", EventMetadata::default());
    event.id = "01a24252-70ac-72fd-9534-3f1850b2f1ca".parse().unwrap();
    event.metadata.command_id = Some("c-1".into());
    let headers = headers(&event);
    assert_eq!(
        headers.get(EVENT).unwrap().as_str(),
        "4321 01a24252-70ac-72fd-9534-3f1850b2f1ca 1764806400123 t=deposited m=application/json c=c-1"
    );
}

#[test]
fn layout_1_headers_are_still_read() {
    let event = event("deposited", "text/plain; charset=utf-8", all_metadata("x"));
    let m = &event.metadata;
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (VERSION, Some(event.version.to_string())),
        (EVENT_ID, Some(event.id.to_string())),
        (EVENT_TYPE, Some(event.event_type.clone())),
        (CONTENT_TYPE, Some(event.content_type.clone())),
        (TIMESTAMP, Some(event.timestamp_ms.to_string())),
        (COMMAND, m.command_id.clone()),
        (CORRELATION, m.correlation_id.clone()),
        (CAUSATION, m.causation_id.clone()),
        (DIGEST, m.component_digest.clone()),
        ("Nats-Batch-Id", Some("b".into())),
    ] {
        headers.insert(name, value.unwrap().as_str());
    }
    let (fields, layout) = read(&headers).unwrap();
    assert_eq!(layout, 1);
    assert_eq!(fields, expected(&event));

    // Only the three every event has; the rest absent.
    let mut headers = HeaderMap::new();
    headers.insert(VERSION, "7");
    headers.insert(EVENT_ID, event.id.to_string().as_str());
    headers.insert(EVENT_TYPE, "opened");
    let (fields, _) = read(&headers).unwrap();
    assert_eq!(fields[0].as_deref(), Some("7"));
    assert_eq!(fields[3].as_deref(), Some("opened"));
    assert!(fields[4..].iter().all(Option::is_none));
}

#[test]
fn a_damaged_header_names_what_is_wrong() {
    let id = uuid::Uuid::now_v7();
    for (value, wrong) in [
        (String::new(), "fewer than three fields"),
        ("1 2".into(), "fewer than three fields"),
        (format!("1 {id} 5 t=x"), "no content type"),
        (format!("1 {id} 5 t=x m=y q=z"), "unknown field \"q\""),
        (format!("1 {id} 5 t=x m=y t=x"), "field \"t\" twice"),
        (format!("1 {id} 5 t=x m=y loose"), "without a name"),
        (format!("1 {id} 5 t=x%4 m=y"), "bad escape"),
        (format!("1 {id} 5 t=x%G1 m=y"), "bad escape"),
        (format!("1 {id} 5 t=x%FF m=y"), "bad escape"),
        (format!("1 {id} 5 t=x m=%"), "bad escape"),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(EVENT, value.as_str());
        match Envelope::of(&headers) {
            Err(what) => assert!(what.contains(wrong), "{value:?}: {what}"),
            Ok(_) => panic!("{value:?} was read"),
        }
    }
}

#[test]
fn a_missing_field_is_named_in_the_layout_it_was_read_in() {
    let mut headers = HeaderMap::new();
    headers.insert(EVENT, "x y 5 m=a");
    let envelope = Envelope::of(&headers).unwrap();
    assert_eq!(
        envelope.missing(Required::Type),
        "no valid type (t=) in the Aether-Event header"
    );
    let headers = HeaderMap::new();
    let envelope = Envelope::of(&headers).unwrap();
    assert_eq!(
        envelope.missing(Required::Version),
        "no valid Aether-Version header"
    );
}
