//! `trusted-device rules test`: evaluates a rules config against a sample request without a
//! store, and explains the outcome rule by rule. The decision is `shared::domain::policy`'s,
//! the same code track runs.
//!
//! The sample request gives the data points as track would compute them, store-backed ones
//! (`device.isNew`, `action.countLastHour`, ...) included as plain values, either nested
//! (`{"device": {"isNew": true}}`) or with dotted keys (`{"device.isNew": true}`).

use serde_json::{Map, Value};
use shared::domain::policy::{self, ActionConfig, ConfigKey, EffectiveConfig, Reason, RuleResult};
use shared::http::error::Describe as _;
use std::fmt::Write as _;
use std::path::Path;

/// Reads a JSON or YAML document (`.json` is read as JSON; anything else as YAML, which also
/// reads JSON).
pub fn read_document(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
    } else {
        serde_norway::from_str(&text)
            .map_err(|e| format!("{} is not valid YAML or JSON: {e}", path.display()))
    }
}

/// The configs of a document: one config, or an array of them (an action's and the tenant
/// default `*`), each validated as when it is saved.
pub fn parse_configs(document: Value) -> Result<Vec<ActionConfig>, String> {
    let items = match document {
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| ActionConfig::parse(item, None).map_err(|e| e.description().into_owned()))
        .collect()
}

/// Turns dotted keys into nested objects: `{"device.isNew": true}` → `{"device": {"isNew": true}}`.
fn nest(request: Value) -> Result<Value, String> {
    let Value::Object(map) = request else {
        return Err("the sample request must be an object of data points".into());
    };
    let mut root = Map::new();
    for (key, value) in map {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut node = &mut root;
        for part in parts {
            match node
                .entry(part.to_owned())
                .or_insert_with(|| Value::Object(Map::new()))
            {
                Value::Object(next) => node = next,
                _ => return Err(format!("\"{key}\" conflicts with another data point")),
            }
        }
        match (node.get_mut(last), value) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (_, value) => {
                node.insert(last.to_owned(), value);
            }
        }
    }
    Ok(Value::Object(root))
}

/// Evaluates `configs` against `request` and returns the explanation to print.
pub fn explain(configs: Vec<ActionConfig>, request: Value) -> Result<String, String> {
    let mut data = nest(request)?;
    let codes: Vec<String> = configs
        .iter()
        .map(|c| c.action_code.clone())
        .filter(|c| c != policy::TENANT_DEFAULT_KEY)
        .collect();
    let code = match data.pointer("/action/code").and_then(Value::as_str) {
        Some(code) => code.to_owned(),
        None => match codes.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(
                    "the sample request must give action.code (the configs name no single action)"
                        .into(),
                );
            }
        },
    };
    ConfigKey::parse(&code).map_err(|e| e.description().into_owned())?;
    let mut out = String::new();
    // Fill in what track always knows, so the rules see the same shape.
    if data.pointer("/action/code").is_none() {
        data["action"]["code"] = Value::String(code.clone());
    }
    let is_enrolled = match data.pointer("/user/isEnrolled") {
        Some(Value::Bool(enrolled)) => *enrolled,
        Some(other) => {
            return Err(format!(
                "user.isEnrolled must be true or false, not {other}"
            ));
        }
        None => {
            let _ = writeln!(out, "note: user.isEnrolled is not given; assuming true");
            true
        }
    };

    let (mut own, mut tenant_default) = (None, None);
    for config in configs {
        if config.action_code == code {
            own = Some(config);
        } else if config.action_code == policy::TENANT_DEFAULT_KEY {
            tenant_default = Some(config);
        }
    }
    let config = EffectiveConfig::new(own, tenant_default);
    match &config.source {
        Some(key) => {
            let _ = writeln!(
                out,
                "action {code}: {} rule(s) from the config \"{key}\", in evaluation order",
                config.rules.len()
            );
        }
        None => {
            let _ = writeln!(out, "action {code}: no config applies");
        }
    }
    for name in config.data_points() {
        let pointer = format!("/{}", name.replace('.', "/"));
        if data.pointer(&pointer).is_none_or(Value::is_null) {
            let _ = writeln!(out, "note: {name} is not in the sample request (null)");
        }
    }

    let decision = policy::decide(&config, &data, is_enrolled, true);
    for (rule, trace) in config.rules.iter().zip(&decision.trace) {
        let result = match &trace.result {
            RuleResult::Inactive => "inactive, skipped".to_owned(),
            RuleResult::NotReached => "not reached".to_owned(),
            // The dry run decides as a track does, where every data point is vouched for.
            RuleResult::Unvouched {
                data_points,
                assumed_match,
            } => format!(
                "reads {} that no backend vouched for -> {}",
                data_points.join(", "),
                if *assumed_match {
                    "MATCH (fails closed)"
                } else {
                    "no match (fails closed)"
                }
            ),
            RuleResult::Evaluated { value, matched } => {
                format!(
                    "conditions = {value} -> {}",
                    if *matched { "MATCH" } else { "no match" }
                )
            }
        };
        let _ = writeln!(
            out,
            "  [priority {}] {} \"{}\" ({}): {result}",
            rule.priority,
            rule.rule_id,
            rule.name,
            rule.outcome.as_str()
        );
    }
    let why = match &decision.reason {
        Reason::Rule(rule) => format!("rule {} \"{}\" matched first", rule.rule_id, rule.name),
        Reason::ActionDefault => "no rule matched: the action's defaultOutcome".into(),
        Reason::TenantDefault => "no rule matched: the tenant default's defaultOutcome".into(),
        Reason::BuiltInDefault => "no rule matched and no default is set: CHALLENGE".into(),
    };
    let _ = writeln!(out, "decided by: {why}");
    if decision.outcome != decision.configured_outcome {
        let _ = writeln!(
            out,
            "the user has no credential, so CHALLENGE becomes ALLOW (spec 2.3)"
        );
    }
    let _ = writeln!(
        out,
        "outcome: {} (track state {})",
        decision.outcome.as_str(),
        decision.outcome.state().as_str()
    );
    Ok(out)
}
