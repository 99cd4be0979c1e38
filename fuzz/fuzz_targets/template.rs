//! Templates and conditions (minijinja): the real compile checks
//! (`check_expression`, `check_tree`) and, when they pass, the real
//! evaluation (`evaluate`, `render_str`) against a fixed event, variables
//! and rule name. Nothing may panic.
//!
//! Input: the template text. A condition is tried with the same text.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use switchboard_runtime::rules::template::{
    Scope, check_expression, check_tree, environment, evaluate, render_str,
};

static EVENT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "id": "0190a0a0-0000-7000-8000-00000000000a",
        "type": "twitch.chat.message",
        "connection_id": "0190a0a0-0000-7000-8000-000000000002",
        "at": 1_767_225_600_000i64,
        "payload": {
            "user_login": "viewer", "display_name": "Viewer", "text": "!so streamer",
            "bits": 100, "badges": [{"set": "subscriber", "version": "12"}],
            "reply": null, "is_mod": false, "amount": 5.5,
        },
    })
});
static VARS: LazyLock<Value> =
    LazyLock::new(|| json!({"count": 3, "last": "viewer", "list": [1, 2, 3]}));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = environment();
    let scope = Scope {
        event: &EVENT,
        vars: &VARS,
        rule: "fuzz",
    };
    if check_expression(&env, text).is_ok() {
        let _ = evaluate(&env, text, &scope);
    }
    if check_tree(&env, &Value::String(text.to_owned()), "params.text").is_empty() {
        let _ = render_str(&env, text, &scope);
    }
});
