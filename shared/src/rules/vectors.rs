//! JSON-Logic's shared test vectors (`jsonlogic-tests.json`; where it comes from and its
//! licence: `jsonlogic-tests.md`), run against our evaluator.
//!
//! A vector is `[rule, data, expected]`; a string is a comment. Which vectors apply is derived
//! from [`OPERATORS`], the evaluator's own list: a vector whose every operation is one of ours
//! must, once our validator accepts it, evaluate to `expected`; a vector with any other
//! operator must be refused by the validator (so a config can never hold something the
//! evaluator would silently get wrong). The few vectors of known operators that the validator
//! refuses on purpose are listed in [`DELIBERATELY_REFUSED`] with the reason, as in
//! docs/api.md ("JSON-Logic").

use super::*;

const VECTORS: &str = include_str!("jsonlogic-tests.json");

/// Vectors whose operators we support but whose form our validator refuses on purpose, with
/// why. The rule is written as compact JSON.
const DELIBERATELY_REFUSED: &[(&str, &str)] = &[
    (
        r#"{"if":[]}"#,
        "an operation without arguments is a mistake in a rule, not a way to write null",
    ),
    (
        r#"{"missing":[]}"#,
        "an operation without arguments is a mistake in a rule, not a way to write []",
    ),
    (
        r#"{"var":[]}"#,
        "`var` names a data point; the whole data (JSON-Logic's empty name) is no data point",
    ),
    (
        r#"{"var":null}"#,
        "`var` takes a data-point name as a literal string, so that a saved config names \
         every data point it reads and an unknown one is refused",
    ),
    (
        r#"{"var":1}"#,
        "`var` takes a literal string: the data is always an object of data points, never an \
         array to index at its root",
    ),
];

/// Every operator an expression uses: the key of every one-key object, as the evaluator reads
/// it (an object with several keys is a literal).
fn operators_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|i| operators_in(i, found)),
        Value::Object(map) => {
            if let Some((op, args)) = operation(map) {
                found.push(op.to_owned());
                operators_in(args, found);
            } else {
                map.values().for_each(|v| operators_in(v, found));
            }
        }
        _ => {}
    }
}

/// JSON equality with numbers compared by value (`2` is `2.0`, as in JavaScript).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn the_official_vectors_pass_or_are_refused() {
    let document: Value = serde_json::from_str(VECTORS).expect("the vectors are JSON");
    let Value::Array(entries) = document else {
        panic!("the vectors are an array");
    };
    let any_var = |_: &str| true;
    let (mut passed, mut refused_unsupported, mut refused_deliberately) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut unsupported_ops = std::collections::BTreeSet::new();
    for entry in &entries {
        let Value::Array(parts) = entry else {
            continue; // a comment
        };
        let [rule, data, expected] = parts.as_slice() else {
            panic!("a vector has three parts: {entry}");
        };
        let mut ops = Vec::new();
        operators_in(rule, &mut ops);
        let unsupported: Vec<&String> = ops
            .iter()
            .filter(|op| !OPERATORS.contains(&op.as_str()))
            .collect();
        let verdict = validate(rule, &any_var);
        if !unsupported.is_empty() {
            unsupported_ops.extend(unsupported.into_iter().cloned());
            match verdict {
                Err(_) => refused_unsupported += 1,
                Ok(_) => failures.push(format!("{rule}: accepted with an unsupported operator")),
            }
            continue;
        }
        let compact = rule.to_string();
        let listed = DELIBERATELY_REFUSED
            .iter()
            .find(|(text, _)| *text == compact);
        match (verdict, listed) {
            (Ok(_), None) => {
                let got = evaluate(rule, data);
                if same(&got, expected) {
                    passed += 1;
                } else {
                    failures.push(format!("{rule} on {data}: expected {expected}, got {got}"));
                }
            }
            (Err(_), Some(_)) => refused_deliberately += 1,
            (Err(e), None) => failures.push(format!("{rule}: refused ({e}) but not listed")),
            (Ok(_), Some(_)) => failures.push(format!("{rule}: listed as refused but accepted")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        refused_deliberately,
        DELIBERATELY_REFUSED.len(),
        "every listed vector is in the file"
    );
    eprintln!(
        "JSON-Logic vectors: {passed} passed, {refused_deliberately} refused on purpose, \
         {refused_unsupported} refused for unsupported operators {unsupported_ops:?}"
    );
    // The file has vectors for most of our operators: a change to the file that drops them
    // should not pass unnoticed.
    assert!(passed >= 150, "only {passed} vectors ran");
}
