//! A small JSON-Logic evaluator for rule conditions (spec 7: `conditions` is a JSON-Logic
//! expression over data points).
//!
//! Why our own: the maintained crate (`datalogic-rs`) is a general engine with its own value
//! types, an arena and dozens of operators; a rule config still needs a validator of our own
//! (name the unknown data point, the wrong arity, the bad CIDR, bound the size), and the
//! operators a risk rule needs are few. The older crates (`jsonlogic-rs`, `jsonlogic`) have had
//! no release for years. So: [`validate`] checks an expression once, when a config is saved,
//! and [`evaluate`] runs a validated expression; evaluation never panics and is bounded by the
//! limits validation enforces ([`MAX_DEPTH`], [`MAX_NODES`]).
//!
//! Operators (JSON-Logic semantics, <https://jsonlogic.com/operations.html>):
//! `var` (dotted path, optional default), `==`, `!=` (loose, JavaScript-like), `===`, `!==`
//! (strict), `<`, `<=` (also 3 arguments: "between"), `>`, `>=`, `!`, `!!`, `and`, `or` (return
//! the deciding value, as in JSON-Logic), `if` (`[cond, then, cond, then, ..., else]`), `in`
//! (substring of a string, or member of an array, strict equality), `missing` (the names whose
//! value is null, absent or `""`). Ours, not JSON-Logic's: `ip_in_cidr` `[ip, cidr]` or
//! `[ip, [cidr, ...]]`, true when the IPv4 or IPv6 address is inside one of the CIDR blocks.
//!
//! Truthiness is JSON-Logic's: `false`, `null`, `0`, `""` and `[]` are falsy; everything else
//! (including `"0"` and `{}`) is truthy.
//!
//! JSON-Logic's own test vectors run against this (`vectors.rs`, `jsonlogic-tests.json`): those
//! of our operators must pass, the others must be refused by [`validate`]; the few forms of our
//! operators that [`validate`] refuses on purpose are listed there and in docs/api.md.

use serde_json::{Map, Value};
use std::net::IpAddr;

/// Deepest nesting of operations an expression may have.
pub const MAX_DEPTH: usize = 32;
/// Most nodes (operations, arguments and literals) an expression may have.
pub const MAX_NODES: usize = 500;

/// Every operator [`evaluate`] knows.
pub const OPERATORS: &[&str] = &[
    "var",
    "==",
    "!=",
    "===",
    "!==",
    "<",
    "<=",
    ">",
    ">=",
    "!",
    "!!",
    "and",
    "or",
    "if",
    "in",
    "missing",
    "ip_in_cidr",
];

/// Why an expression was refused: where (a path such as `and[1].==[0]`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicError {
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for LogicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.at, self.message)
        }
    }
}

/// Checks an expression: known operators, their arity, literal data-point names that
/// `is_known_var` accepts, valid CIDR literals, and the size limits. Returns the data-point
/// names the expression reads (`var` and `missing`), sorted, without duplicates.
pub fn validate(
    expression: &Value,
    is_known_var: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, LogicError> {
    let mut checker = Checker {
        is_known_var,
        vars: Vec::new(),
        nodes: 0,
    };
    checker.check(expression, "", 0)?;
    let mut vars = checker.vars;
    vars.sort();
    vars.dedup();
    Ok(vars)
}

struct Checker<'a> {
    is_known_var: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    nodes: usize,
}

fn error(at: &str, message: impl Into<String>) -> LogicError {
    LogicError {
        at: at.to_owned(),
        message: message.into(),
    }
}

fn child(at: &str, segment: &str) -> String {
    if at.is_empty() {
        segment.to_owned()
    } else {
        format!("{at}.{segment}")
    }
}

/// The arguments of an operation: an array, or a single value standing for a one-element
/// array (JSON-Logic's `{"var": "x"}` sugar).
fn arguments(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    }
}

/// The single operator of an object, if it is an operation.
fn operation(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((op, args)), None) => Some((op.as_str(), args)),
        _ => None,
    }
}

impl Checker<'_> {
    fn check(&mut self, value: &Value, at: &str, depth: usize) -> Result<(), LogicError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(error(
                at,
                format!("the expression has more than {MAX_NODES} nodes"),
            ));
        }
        if depth > MAX_DEPTH {
            return Err(error(
                at,
                format!("the expression is nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(item, &format!("{at}[{i}]"), depth + 1)?;
                }
                Ok(())
            }
            Value::Object(map) => {
                let Some((op, raw_args)) = operation(map) else {
                    return Err(error(
                        at,
                        format!(
                            "an operation is an object with exactly one key (the operator), found {} keys",
                            map.len()
                        ),
                    ));
                };
                let here = child(at, op);
                let args = arguments(raw_args);
                let arity = |min: usize, max: usize| -> Result<(), LogicError> {
                    if args.len() < min || args.len() > max {
                        let expected = match (min, max) {
                            (a, b) if a == b => format!("{a}"),
                            (a, usize::MAX) => format!("at least {a}"),
                            (a, b) => format!("{a} to {b}"),
                        };
                        Err(error(
                            &here,
                            format!(
                                "operator \"{op}\" takes {expected} argument(s), found {}",
                                args.len()
                            ),
                        ))
                    } else {
                        Ok(())
                    }
                };
                match op {
                    "var" => {
                        arity(1, 2)?;
                        let Value::String(name) = &args[0] else {
                            return Err(error(
                                &here,
                                "\"var\" takes a data-point name as a literal string",
                            ));
                        };
                        self.known(name, &here)?;
                        if let Some(default) = args.get(1) {
                            self.check(default, &format!("{here}[1]"), depth + 1)?;
                        }
                        return Ok(());
                    }
                    "missing" => {
                        arity(1, usize::MAX)?;
                        let names = match args {
                            [Value::Array(names)] => names.as_slice(),
                            names => names,
                        };
                        for name in names {
                            let Value::String(name) = name else {
                                return Err(error(
                                    &here,
                                    "\"missing\" takes data-point names as literal strings",
                                ));
                            };
                            self.known(name, &here)?;
                        }
                        return Ok(());
                    }
                    "==" | "!=" | "===" | "!==" | ">" | ">=" | "in" => arity(2, 2)?,
                    "<" | "<=" => arity(2, 3)?,
                    "!" | "!!" => arity(1, 1)?,
                    "and" | "or" | "if" => arity(1, usize::MAX)?,
                    "ip_in_cidr" => {
                        arity(2, 2)?;
                        check_cidr_literals(&args[1], &format!("{here}[1]"))?;
                    }
                    unknown => {
                        return Err(error(
                            at,
                            format!(
                                "unknown operator \"{unknown}\"; supported: {}",
                                OPERATORS.join(", ")
                            ),
                        ));
                    }
                }
                for (i, arg) in args.iter().enumerate() {
                    self.check(arg, &format!("{here}[{i}]"), depth + 1)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn known(&mut self, name: &str, at: &str) -> Result<(), LogicError> {
        if (self.is_known_var)(name) {
            self.vars.push(name.to_owned());
            Ok(())
        } else {
            Err(error(at, format!("unknown data point \"{name}\"")))
        }
    }
}

/// CIDR blocks given as literals are parsed when the config is saved, so a typo is an error
/// then rather than a rule that never matches.
fn check_cidr_literals(value: &Value, at: &str) -> Result<(), LogicError> {
    let blocks: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for block in blocks {
        if let Value::String(text) = block
            && Cidr::parse(text).is_none()
        {
            return Err(error(
                at,
                format!("\"{text}\" is not a CIDR block such as 10.0.0.0/8 or 2001:db8::/32"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- evaluation

/// Evaluates `expression` against `data`. Anything evaluation cannot make sense of (a
/// non-validated shape, a wrong type) gives `null` or `false`, never a panic; recursion stops
/// at [`MAX_DEPTH`] even for an expression that was not validated.
pub fn evaluate(expression: &Value, data: &Value) -> Value {
    eval(expression, data, 0)
}

/// JSON-Logic truthiness.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(_) => true,
    }
}

fn eval(expression: &Value, data: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let next = depth + 1;
    match expression {
        Value::Array(items) => Value::Array(items.iter().map(|i| eval(i, data, next)).collect()),
        Value::Object(map) => {
            // Not an operation: a literal object, as in JSON-Logic.
            let Some((op, raw_args)) = operation(map) else {
                return expression.clone();
            };
            let args = arguments(raw_args);
            let arg = |i: usize| args.get(i).map_or(Value::Null, |a| eval(a, data, next));
            match op {
                "var" => {
                    let name = arg(0);
                    let found = match &name {
                        Value::String(path) => lookup(data, path),
                        Value::Number(n) => lookup(data, &n.to_string()),
                        _ => None,
                    };
                    match found {
                        Some(value) if !value.is_null() => value.clone(),
                        _ => arg(1),
                    }
                }
                "missing" => {
                    let names = match args {
                        [single] => match eval(single, data, next) {
                            Value::Array(names) => names,
                            other => vec![other],
                        },
                        many => many.iter().map(|a| eval(a, data, next)).collect(),
                    };
                    Value::Array(
                        names
                            .into_iter()
                            .filter(|name| {
                                let value = name.as_str().and_then(|path| lookup(data, path));
                                matches!(value, None | Some(Value::Null))
                                    || value.is_some_and(|v| v.as_str() == Some(""))
                            })
                            .collect(),
                    )
                }
                "==" => Value::Bool(loose_equal(&arg(0), &arg(1))),
                "!=" => Value::Bool(!loose_equal(&arg(0), &arg(1))),
                "===" => Value::Bool(strict_equal(&arg(0), &arg(1))),
                "!==" => Value::Bool(!strict_equal(&arg(0), &arg(1))),
                "<" | "<=" | ">" | ">=" => {
                    let values: Vec<Value> = (0..args.len()).map(arg).collect();
                    Value::Bool(compare_chain(op, &values))
                }
                "!" => Value::Bool(!truthy(&arg(0))),
                "!!" => Value::Bool(truthy(&arg(0))),
                "and" => {
                    let mut last = Value::Null;
                    for a in args {
                        last = eval(a, data, next);
                        if !truthy(&last) {
                            return last;
                        }
                    }
                    last
                }
                "or" => {
                    let mut last = Value::Null;
                    for a in args {
                        last = eval(a, data, next);
                        if truthy(&last) {
                            return last;
                        }
                    }
                    last
                }
                "if" => {
                    let mut i = 0;
                    while i + 1 < args.len() {
                        if truthy(&eval(&args[i], data, next)) {
                            return eval(&args[i + 1], data, next);
                        }
                        i += 2;
                    }
                    if i < args.len() {
                        eval(&args[i], data, next)
                    } else {
                        Value::Null
                    }
                }
                "in" => {
                    let needle = arg(0);
                    Value::Bool(match arg(1) {
                        Value::String(haystack) => match &needle {
                            Value::String(n) => haystack.contains(n.as_str()),
                            Value::Number(n) => haystack.contains(&n.to_string()),
                            _ => false,
                        },
                        Value::Array(items) => items.iter().any(|i| strict_equal(i, &needle)),
                        _ => false,
                    })
                }
                "ip_in_cidr" => {
                    let ip = arg(0);
                    let Some(ip) = ip.as_str().and_then(|s| s.trim().parse::<IpAddr>().ok()) else {
                        return Value::Bool(false);
                    };
                    let blocks = match arg(1) {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    Value::Bool(blocks.iter().any(|b| {
                        b.as_str()
                            .and_then(Cidr::parse)
                            .is_some_and(|cidr| cidr.contains(ip))
                    }))
                }
                _ => Value::Null,
            }
        }
        literal => literal.clone(),
    }
}

/// A dotted path into the data: `device.isNew`, `custom.amount`, `list.0`.
fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(data);
    }
    let mut current = data;
    for segment in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// JavaScript's `ToNumber` for the values JSON has; `None` is NaN.
fn to_number(value: &Value) -> Option<f64> {
    match value {
        Value::Null => Some(0.0),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Some(0.0)
            } else {
                t.parse::<f64>().ok().filter(|f| f.is_finite())
            }
        }
        Value::Array(items) => match items.as_slice() {
            [] => Some(0.0),
            [single] => to_number(single),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

/// JavaScript's `ToString` for arrays compared with primitives (`[1,2] == "1,2"`).
fn array_to_string(items: &[Value]) -> String {
    items
        .iter()
        .map(|item| match item {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(inner) => array_to_string(inner),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// JavaScript's `==` (abstract equality) on JSON values.
fn loose_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(_), Value::Number(_)) => strict_equal(a, b),
        // Objects and arrays are equal only to themselves in JavaScript (by reference).
        (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)) => false,
        (Value::Array(items), Value::String(s)) | (Value::String(s), Value::Array(items)) => {
            array_to_string(items) == *s
        }
        (Value::Object(_), _) | (_, Value::Object(_)) => false,
        _ => match (to_number(a), to_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// JavaScript's `===`: same type and value (numbers by value, `1 === 1.0`).
fn strict_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => false,
        _ => a == b,
    }
}

/// JavaScript's relational comparison: two strings compare as text, anything else as numbers
/// (NaN compares false).
fn compare(op: &str, a: &Value, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => match (to_number(a), to_number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    match (op, ordering) {
        (_, None) => false,
        ("<", Some(o)) => o == Ordering::Less,
        ("<=", Some(o)) => o != Ordering::Greater,
        (">", Some(o)) => o == Ordering::Greater,
        (">=", Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

/// `<` and `<=` with three arguments test "between": `a < b < c`.
fn compare_chain(op: &str, values: &[Value]) -> bool {
    values.len() >= 2
        && values
            .windows(2)
            .all(|pair| compare(op, &pair[0], &pair[1]))
}

/// An IPv4 or IPv6 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`; a bare address is a block of one.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address (::ffff:1.2.3.4) is its IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
