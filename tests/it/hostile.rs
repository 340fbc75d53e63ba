//! Hostile input over every RPC, generated from the descriptor set (a new RPC is covered
//! without a case of its own): for each field of each request, nested messages included, a
//! request with that field set to a hostile value of its kind (a 100,000-character string, NUL
//! and control characters, numbers at their limits, unknown enum numbers, 10,000-item lists
//! and maps, timestamps outside protobuf's range, masks with unknown paths), sent with a key
//! that may call everything, against the real server. Every answer must be a deliberate one:
//! never INTERNAL, UNKNOWN or DATA_LOSS, always an ErrorInfo reason (and a named field for
//! INVALID_ARGUMENT), always under 8 KB, a refused call appends no event (nothing it was
//! refused for was stored), and no value that no field may hold is accepted. All defects are
//! collected and listed together.

use crate::common::{Backend, TestServer, raw::RawCodec};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};
use std::collections::HashMap;
use std::time::Duration;
use tonic::Code;

/// How deep nested messages are explored (request → policy → steps → actions → fee).
const DEPTH: usize = 5;
/// Items in a hostile list or map.
const MANY: usize = 10_000;

/// A hostile request: which field got which value, and the message.
struct Case {
    what: String,
    /// The field's name and what was put in it (to judge an accepted call).
    field: String,
    value: &'static str,
    message: DynamicMessage,
}

/// A plausible value for a string field, from its name, so that a request gets past its
/// required fields to the hostile one.
fn plausible(name: &str) -> String {
    let text = if name.ends_with("currency_code") {
        "EUR"
    } else if name.ends_with("external_id") || name.ends_with("external_ids") {
        "ext_1"
    } else if name.ends_with("date") {
        "2026-11-01"
    } else if name.contains("amount") || name.ends_with("percent") || name.ends_with("rate") {
        "10.00"
    } else if name.contains("email") {
        "someone@example.com"
    } else if name == "id" || name.ends_with("_id") || name.ends_with("_ids") {
        "01930000-0000-7000-8000-000000000001"
    } else if name.contains("url") {
        "https://hooks.example.com/x"
    } else if name == "timezone" {
        "Europe/Berlin"
    } else if name == "locale" {
        "en"
    } else if name.ends_with("code") {
        "standard"
    } else {
        "plain text"
    };
    text.to_owned()
}

/// `message` with every field given a plausible value (`depth` levels down), the base that
/// one hostile value is put into.
fn seeded(message: &MessageDescriptor, depth: usize) -> DynamicMessage {
    let mut m = DynamicMessage::new(message.clone());
    for field in message.fields() {
        if field.is_map() {
            continue;
        }
        let value = match field.kind() {
            Kind::String => Value::String(plausible(field.name())),
            Kind::Enum(e) => match e.values().find(|v| v.number() != 0) {
                Some(v) => Value::EnumNumber(v.number()),
                None => continue,
            },
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(1),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(1),
            Kind::Message(inner) if inner.full_name() == "google.protobuf.Timestamp" => {
                timestamp(&inner, 1_790_000_000, 0)
            }
            Kind::Message(inner)
                if depth > 0 && !inner.full_name().starts_with("google.protobuf.") =>
            {
                Value::Message(seeded(&inner, depth - 1))
            }
            _ => continue,
        };
        let value = if field.is_list() {
            Value::List(vec![value])
        } else {
            value
        };
        m.set_field(&field, value);
    }
    m
}

/// Where a control character is part of the value (a template's text has line breaks).
fn takes_line_breaks(field: &str) -> bool {
    [
        "body",
        "text",
        "html",
        "template",
        "note",
        "description",
        "comment",
    ]
    .iter()
    .any(|name| field.ends_with(name))
}

/// Why an accepted call is a defect, if it is: a value no field may hold was stored.
fn accepted_wrongly(case: &Case) -> Option<&'static str> {
    let field = case.field.as_str();
    let decimal = field.contains("amount") || field.ends_with("percent") || field.ends_with("rate");
    match case.value {
        "a NUL" => Some("a NUL was accepted"),
        "control characters" if !takes_line_breaks(field) => {
            Some("control characters were accepted")
        }
        "surrounding spaces" | "NaN" | "an exponent" if decimal => {
            Some("a malformed decimal was accepted")
        }
        "unknown enum number 9999" | "negative enum number" => {
            Some("an unknown enum number was accepted")
        }
        // Output-only times in a request are ignored, not stored.
        "a timestamp after year 9999" | "a timestamp before year 1" | "negative nanos"
            if !matches!(field, "create_time" | "update_time") =>
        {
            Some("a timestamp outside protobuf's range was accepted")
        }
        _ => None,
    }
}

fn hostile_strings() -> Vec<(&'static str, String)> {
    vec![
        ("100,000 characters", "x".repeat(100_000)),
        ("a NUL", "a\0b".into()),
        (
            "control characters",
            "a\r\nBcc: victim@example.com\u{7}".into(),
        ),
        ("surrounding spaces", " 12.50 ".into()),
        ("NaN", "NaN".into()),
        ("an exponent", "1e5".into()),
    ]
}

/// The hostile values of a field's kind (one element, for lists and maps).
fn hostile_values(field: &FieldDescriptor) -> Vec<(&'static str, Value)> {
    match field.kind() {
        Kind::String => hostile_strings()
            .into_iter()
            .map(|(what, s)| (what, Value::String(s)))
            .collect(),
        Kind::Bytes => vec![("garbage bytes", Value::Bytes(vec![0xff; 64].into()))],
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => vec![
            ("i32::MAX", Value::I32(i32::MAX)),
            ("i32::MIN", Value::I32(i32::MIN)),
            ("-1", Value::I32(-1)),
        ],
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => vec![
            ("i64::MAX", Value::I64(i64::MAX)),
            ("i64::MIN", Value::I64(i64::MIN)),
            ("-1", Value::I64(-1)),
        ],
        Kind::Uint32 | Kind::Fixed32 => vec![("u32::MAX", Value::U32(u32::MAX))],
        Kind::Uint64 | Kind::Fixed64 => vec![("u64::MAX", Value::U64(u64::MAX))],
        Kind::Double => vec![("NaN", Value::F64(f64::NAN))],
        Kind::Float => vec![("NaN", Value::F32(f32::NAN))],
        Kind::Bool => vec![("true", Value::Bool(true))],
        Kind::Enum(_) => vec![
            ("unknown enum number 9999", Value::EnumNumber(9999)),
            ("negative enum number", Value::EnumNumber(-7)),
        ],
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => vec![
                (
                    "a timestamp after year 9999",
                    timestamp(&m, 253_402_300_800, 0),
                ),
                (
                    "a timestamp before year 1",
                    timestamp(&m, -62_135_596_801, 0),
                ),
                ("negative nanos", timestamp(&m, 0, -1)),
            ],
            "google.protobuf.FieldMask" => {
                let mut mask = DynamicMessage::new(m.clone());
                mask.set_field_by_name(
                    "paths",
                    Value::List(
                        ["no_such_field", "a.b.c", "id", "create_time", ""]
                            .into_iter()
                            .map(|p| Value::String(p.into()))
                            .collect(),
                    ),
                );
                vec![(
                    "unknown, nested and output-only mask paths",
                    Value::Message(mask),
                )]
            }
            _ => Vec::new(),
        },
    }
}

fn timestamp(m: &MessageDescriptor, seconds: i64, nanos: i32) -> Value {
    let mut t = DynamicMessage::new(m.clone());
    t.set_field_by_name("seconds", Value::I64(seconds));
    t.set_field_by_name("nanos", Value::I32(nanos));
    Value::Message(t)
}

/// Every hostile case of `message` (fields explored `depth` levels down), each built by
/// `wrap` into the whole request.
fn cases_of(
    message: &MessageDescriptor,
    path: &str,
    depth: usize,
    seed: bool,
    wrap: &dyn Fn(DynamicMessage) -> DynamicMessage,
    out: &mut Vec<Case>,
) {
    let base = || {
        if seed {
            seeded(message, depth)
        } else {
            DynamicMessage::new(message.clone())
        }
    };
    for field in message.fields() {
        let name = format!("{path}{}", field.name());
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            let key = entry.map_entry_key_field();
            let value = entry.map_entry_value_field();
            if key.kind() == Kind::String && value.kind() == Kind::String {
                let many: HashMap<MapKey, Value> = (0..MANY)
                    .map(|i| {
                        (
                            MapKey::String(format!("k\0{i}")),
                            Value::String("v\0".into()),
                        )
                    })
                    .collect();
                let one_nul =
                    HashMap::from([(MapKey::String("key".into()), Value::String("a\0b".into()))]);
                let one_control = HashMap::from([(
                    MapKey::String("key\r\n".into()),
                    Value::String("value".into()),
                )]);
                for (what, value, map) in [
                    ("entries with NUL", "a NUL", many),
                    ("a value with a NUL", "a NUL", one_nul),
                    (
                        "a key with control characters",
                        "control characters",
                        one_control,
                    ),
                ] {
                    let mut m = base();
                    m.set_field(&field, Value::Map(map));
                    out.push(Case {
                        what: format!("{name}: {what}"),
                        field: field.name().to_owned(),
                        value,
                        message: wrap(m),
                    });
                }
            }
            continue;
        }
        for (what, value) in hostile_values(&field) {
            let value = if field.is_list() {
                // Many small items; a huge one alone (10,000 of them would only test the
                // request size limit).
                let small = match &value {
                    Value::String(s) => s.len() < 100,
                    Value::Message(_) => false,
                    _ => true,
                };
                Value::List(vec![value; if small { MANY } else { 1 }])
            } else {
                value
            };
            let mut m = base();
            m.set_field(&field, value);
            let list = if field.is_list() { " (a list)" } else { "" };
            out.push(Case {
                what: format!("{name}{list}: {what}"),
                field: field.name().to_owned(),
                value: what,
                message: wrap(m),
            });
        }
        if let Kind::Message(inner) = field.kind()
            && depth > 0
            && !inner.full_name().starts_with("google.protobuf.")
        {
            let field = field.clone();
            let parent = message.clone();
            let nested = move |child: DynamicMessage| {
                let mut m = if seed {
                    seeded(&parent, depth)
                } else {
                    DynamicMessage::new(parent.clone())
                };
                let value = Value::Message(child);
                m.set_field(
                    &field,
                    if field.is_list() {
                        Value::List(vec![value])
                    } else {
                        value
                    },
                );
                wrap(m)
            };
            cases_of(&inner, &format!("{name}."), depth - 1, seed, &nested, out);
        }
    }
}

/// The sequence of the newest event after `known` (`known` when none was appended since).
async fn last_sequence_after(s: &TestServer, known: i64) -> i64 {
    let mut last = known;
    loop {
        let page = s
            .dunning()
            .list_events(dunning::proto::ListEventsRequest {
                after_sequence: last,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        match page.events.last() {
            Some(e) => last = e.sequence,
            None => return last,
        }
    }
}

async fn every_rpc_answers_hostile_input_deliberately(backend: Backend) {
    let s = TestServer::start(backend).await;
    let pool = DescriptorPool::decode(dunning::grpc::FILE_DESCRIPTOR_SET).unwrap();
    let mut defects = Vec::new();
    let mut calls = 0;
    let mut known = last_sequence_after(&s, 0).await;
    for service in pool.services() {
        if !service.full_name().starts_with("dunning.v1.") {
            continue;
        }
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            // Hostile values in empty requests, and in requests whose other fields are
            // plausible (so that the value gets past the required fields).
            let mut cases = Vec::new();
            for seed in [false, true] {
                cases_of(&method.input(), "", DEPTH, seed, &|m| m, &mut cases);
            }
            for case in cases {
                calls += 1;
                let mut request = tonic::Request::new(case.message.encode_to_vec());
                request.metadata_mut().insert(
                    "authorization",
                    format!("Bearer {}", s.key).parse().unwrap(),
                );
                request.set_timeout(Duration::from_secs(10));
                let mut grpc = tonic::client::Grpc::new(s.channel.clone());
                grpc.ready().await.unwrap();
                let answer = if method.is_server_streaming() {
                    match grpc
                        .server_streaming(request, path.parse().unwrap(), RawCodec)
                        .await
                    {
                        // The stream started: the request was accepted.
                        Ok(_) => Ok(()),
                        Err(status) => Err(status),
                    }
                } else {
                    grpc.unary(request, path.parse().unwrap(), RawCodec)
                        .await
                        .map(|_| ())
                };
                let before = known;
                known = last_sequence_after(&s, known).await;
                let Err(status) = answer else {
                    if let Some(defect) = accepted_wrongly(&case) {
                        defects.push(format!("{path} {}: {defect}", case.what));
                    }
                    continue;
                };
                let where_ = format!("{path} {}", case.what);
                if matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::DataLoss
                ) {
                    defects.push(format!(
                        "{where_}: {:?} {}",
                        status.code(),
                        status.message()
                    ));
                }
                // A deliberate refusal says why: an ErrorInfo reason, and the bad field when
                // the input is at fault.
                let details = tonic_types::StatusExt::get_error_details(&status);
                if details
                    .error_info()
                    .is_none_or(|info| info.reason.is_empty())
                {
                    defects.push(format!(
                        "{where_}: {:?} without an ErrorInfo reason",
                        status.code()
                    ));
                }
                if status.code() == Code::InvalidArgument
                    && details
                        .bad_request()
                        .is_none_or(|b| b.field_violations.is_empty())
                {
                    defects.push(format!("{where_}: INVALID_ARGUMENT naming no field"));
                }
                let size = status.message().len() + status.details().len();
                if size >= 8_000 {
                    defects.push(format!("{where_}: an answer of {size} bytes"));
                }
                if known != before {
                    defects.push(format!(
                        "{where_}: refused ({:?}) but appended events",
                        status.code()
                    ));
                }
            }
        }
    }
    assert!(calls > 1_000, "{calls} hostile calls only");
    assert!(
        defects.is_empty(),
        "{} of {calls} hostile calls answered badly:\n{}",
        defects.len(),
        defects.join("\n")
    );
    s.stop().await;
}

on_each_backend!(every_rpc_answers_hostile_input_deliberately);
