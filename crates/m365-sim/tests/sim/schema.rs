//! Validates simulator responses against the Graph v1.0 JSON Schema extracted from Microsoft's
//! CSDL (`fixtures/chat-schemas.json`) with the `jsonschema` crate. Like the fixture INDEX's check,
//! it applies the named definition and then, for every object carrying `@odata.type`, the
//! definition of that derived type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

fn root() -> &'static Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| {
        let text = include_str!("../fixtures/chat-schemas.json");
        serde_json::from_str(text).expect("chat-schemas.json is valid JSON")
    })
}

fn validator(definition: &str) -> Option<Arc<jsonschema::Validator>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap().get(definition) {
        return Some(found.clone());
    }
    root().get("$defs")?.get(definition)?;
    let mut schema = root().clone();
    schema["$ref"] = Value::String(format!("#/$defs/{definition}"));
    let compiled = Arc::new(jsonschema::validator_for(&schema).expect("schema compiles"));
    cache
        .lock()
        .unwrap()
        .insert(definition.to_owned(), compiled.clone());
    Some(compiled)
}

fn errors_for(definition: &str, instance: &Value) -> Vec<String> {
    let Some(validator) = validator(definition) else {
        return vec![format!("schema has no definition {definition}")];
    };
    validator
        .iter_errors(instance)
        .map(|e| format!("{definition} at {}: {e}", e.instance_path))
        .collect()
}

fn walk_typed(value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if let Some(kind) = object.get("@odata.type").and_then(Value::as_str) {
                let definition = kind.trim_start_matches('#');
                if validator(definition).is_some() {
                    problems.extend(errors_for(definition, value));
                }
            }
            object.values().for_each(|v| walk_typed(v, problems));
        }
        Value::Array(items) => items.iter().for_each(|v| walk_typed(v, problems)),
        _ => {}
    }
}

/// Panics with every violation if `instance` does not validate as `definition`.
pub fn assert_valid(definition: &str, instance: &Value) {
    let mut problems = errors_for(definition, instance);
    walk_typed(instance, &mut problems);
    assert!(
        problems.is_empty(),
        "response does not match {definition}:\n{}\n{instance:#}",
        problems.join("\n")
    );
}

/// Graph error bodies: the OData envelope. Real Graph writes `innerError.date` without a zone
/// (every recorded error does, see fixtures 56–62), which the CSDL-derived pattern rejects; we
/// check that exact real format ourselves and validate the rest of the body against the schema.
pub fn assert_valid_odata_error(body: &Value) {
    let date = body
        .pointer("/error/innerError/date")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let bytes = date.as_bytes();
    let real_format =
        date.len() == 19 && bytes[4] == b'-' && bytes[10] == b'T' && bytes[13] == b':';
    assert!(
        real_format,
        "innerError.date {date:?} is not in Graph's recorded format"
    );
    let mut checked = body.clone();
    checked["error"]["innerError"]["date"] = Value::String(format!("{date}Z"));
    assert_valid("microsoft.graph.ODataErrors.ODataError", &checked);
    for key in ["request-id", "client-request-id"] {
        assert!(
            body["error"]["innerError"][key]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "innerError.{key} missing: {body}"
        );
    }
}

#[test]
fn schema_rejects_a_message_whose_body_is_not_an_item_body() {
    let bad = serde_json::json!({"id": "1", "messageType": "message", "body": "plain string"});
    assert!(!errors_for("microsoft.graph.chatMessage", &bad).is_empty());
}
