//! Every operator, JSON-Logic truthiness, the validator's refusals and the limits.

use super::*;
use serde_json::json;

fn eval_json(expression: Value, data: Value) -> Value {
    evaluate(&expression, &data)
}

fn is(expression: Value, data: Value) -> bool {
    truthy(&eval_json(expression, data))
}

fn any_var(_: &str) -> bool {
    true
}

fn known(name: &str) -> bool {
    matches!(name, "a" | "b" | "ip" | "user.name") || name.starts_with("custom.")
}

#[test]
fn truthiness_is_json_logics() {
    for falsy in [
        json!(false),
        json!(null),
        json!(0),
        json!(0.0),
        json!(""),
        json!([]),
    ] {
        assert!(!truthy(&falsy), "{falsy}");
    }
    for true_value in [
        json!(true),
        json!(1),
        json!(-1),
        json!("0"),
        json!("a"),
        json!([0]),
        json!({}),
    ] {
        assert!(truthy(&true_value), "{true_value}");
    }
}

#[test]
fn var_reads_dotted_paths_array_indexes_and_defaults() {
    let data = json!({"user": {"name": "ann", "tags": ["x", "y"]}, "n": null});
    assert_eq!(
        eval_json(json!({"var": "user.name"}), data.clone()),
        json!("ann")
    );
    assert_eq!(
        eval_json(json!({"var": ["user.name"]}), data.clone()),
        json!("ann")
    );
    assert_eq!(
        eval_json(json!({"var": "user.tags.1"}), data.clone()),
        json!("y")
    );
    assert_eq!(
        eval_json(json!({"var": "user.nope"}), data.clone()),
        json!(null)
    );
    assert_eq!(
        eval_json(json!({"var": ["user.nope", 7]}), data.clone()),
        json!(7)
    );
    assert_eq!(
        eval_json(json!({"var": ["n", "dflt"]}), data.clone()),
        json!("dflt")
    );
    assert_eq!(
        eval_json(json!({"var": "user.name.deeper"}), data),
        json!(null)
    );
}

#[test]
fn loose_equality_follows_javascript() {
    for (a, b, expected) in [
        (json!(1), json!(1), true),
        (json!(1), json!("1"), true),
        (json!(1), json!(1.0), true),
        (json!(0), json!(false), true),
        (json!(1), json!(true), true),
        (json!("true"), json!(true), false),
        (json!(null), json!(null), true),
        (json!(null), json!(0), false),
        (json!(null), json!(false), false),
        (json!("a"), json!("a"), true),
        (json!("a"), json!("b"), false),
        (json!(""), json!(0), true),
        (json!("abc"), json!(0), false),
        (json!([1, 2]), json!("1,2"), true),
        (json!({}), json!({}), false),
    ] {
        assert_eq!(is(json!({"==": [a, b]}), json!({})), expected, "{a} == {b}");
        assert_eq!(
            is(json!({"!=": [a, b]}), json!({})),
            !expected,
            "{a} != {b}"
        );
    }
}

#[test]
fn strict_equality_needs_the_same_type() {
    for (a, b, expected) in [
        (json!(1), json!(1), true),
        (json!(1), json!(1.0), true),
        (json!(1), json!("1"), false),
        (json!(0), json!(false), false),
        (json!(null), json!(null), true),
        (json!("x"), json!("x"), true),
        (json!(true), json!(true), true),
    ] {
        assert_eq!(
            is(json!({"===": [a, b]}), json!({})),
            expected,
            "{a} === {b}"
        );
        assert_eq!(
            is(json!({"!==": [a, b]}), json!({})),
            !expected,
            "{a} !== {b}"
        );
    }
}

#[test]
fn comparisons_numbers_strings_and_between() {
    let t = |e: Value| is(e, json!({}));
    assert!(t(json!({"<": [1, 2]})));
    assert!(!t(json!({"<": [2, 2]})));
    assert!(t(json!({"<=": [2, 2]})));
    assert!(t(json!({">": [3, 2]})));
    assert!(!t(json!({">": [2, 2]})));
    assert!(t(json!({">=": [2, 2]})));
    assert!(
        t(json!({">": ["10", 9]})),
        "numeric string compares as a number"
    );
    assert!(t(json!({"<": ["a", "b"]})), "two strings compare as text");
    assert!(!t(json!({"<": ["abc", 1]})), "NaN compares false");
    assert!(!t(json!({">=": ["abc", 1]})));
    assert!(t(json!({"<": [1, 2, 3]})), "between, exclusive");
    assert!(!t(json!({"<": [1, 1, 3]})));
    assert!(t(json!({"<=": [1, 1, 3]})), "between, inclusive");
    assert!(!t(json!({"<=": [1, 4, 3]})));
    assert!(t(json!({"<": [null, 1]})), "null is 0");
}

#[test]
fn negation_and_double_negation() {
    assert!(is(json!({"!": [false]}), json!({})));
    assert!(is(json!({"!": false}), json!({})), "unary sugar");
    assert!(is(json!({"!": [[]]}), json!({})), "an empty array is falsy");
    assert!(!is(json!({"!": ["0"]}), json!({})));
    assert_eq!(eval_json(json!({"!!": ["0"]}), json!({})), json!(true));
    assert_eq!(eval_json(json!({"!!": [0]}), json!({})), json!(false));
}

#[test]
fn and_or_return_the_deciding_value() {
    assert_eq!(eval_json(json!({"and": [true, 3]}), json!({})), json!(3));
    assert_eq!(eval_json(json!({"and": [true, 0, 3]}), json!({})), json!(0));
    assert_eq!(
        eval_json(json!({"or": [false, "", "x"]}), json!({})),
        json!("x")
    );
    assert_eq!(eval_json(json!({"or": [false, 0]}), json!({})), json!(0));
    // Short-circuit: the second operand is not needed.
    assert_eq!(
        eval_json(json!({"or": [true, {"var": "nope"}]}), json!({})),
        json!(true)
    );
}

#[test]
fn if_picks_the_first_true_branch_or_the_else() {
    let rule =
        json!({"if": [{"<": [{"var": "a"}, 0]}, "neg", {"==": [{"var": "a"}, 0]}, "zero", "pos"]});
    assert_eq!(eval_json(rule.clone(), json!({"a": -1})), json!("neg"));
    assert_eq!(eval_json(rule.clone(), json!({"a": 0})), json!("zero"));
    assert_eq!(eval_json(rule, json!({"a": 5})), json!("pos"));
    assert_eq!(eval_json(json!({"if": [false, 1]}), json!({})), json!(null));
    assert_eq!(eval_json(json!({"if": [true]}), json!({})), json!(true));
}

#[test]
fn in_is_substring_or_strict_membership() {
    let t = |e: Value| is(e, json!({"ua": "curl/8.0", "n": 2}));
    assert!(t(json!({"in": ["curl", {"var": "ua"}]})));
    assert!(!t(json!({"in": ["wget", {"var": "ua"}]})));
    assert!(t(json!({"in": [{"var": "n"}, [1, 2, 3]]})));
    assert!(!t(json!({"in": ["2", [1, 2, 3]]})), "membership is strict");
    assert!(!t(json!({"in": ["x", {"var": "nope"}]})), "null haystack");
}

#[test]
fn missing_lists_null_absent_and_empty_names() {
    let data = json!({"a": 1, "b": "", "c": null, "d": false});
    assert_eq!(
        eval_json(json!({"missing": ["a", "b", "c", "d", "e"]}), data.clone()),
        json!(["b", "c", "e"])
    );
    assert_eq!(
        eval_json(json!({"missing": [["a", "e"]]}), data.clone()),
        json!(["e"])
    );
    assert!(
        !is(json!({"missing": ["a"]}), data),
        "nothing missing is falsy"
    );
}

#[test]
fn ip_in_cidr_ipv4_ipv6_lists_and_bad_input() {
    let t = |ip: &str, cidr: Value| is(json!({"ip_in_cidr": [ip, cidr]}), json!({}));
    assert!(t("10.1.2.3", json!("10.0.0.0/8")));
    assert!(!t("11.1.2.3", json!("10.0.0.0/8")));
    assert!(
        t("192.168.1.7", json!("192.168.1.7")),
        "a bare address is /32"
    );
    assert!(t("203.0.113.9", json!("0.0.0.0/0")));
    assert!(t("2001:db8::1", json!("2001:db8::/32")));
    assert!(!t("2001:db9::1", json!("2001:db8::/32")));
    assert!(
        t("::ffff:10.0.0.1", json!("10.0.0.0/8")),
        "IPv4-mapped IPv6"
    );
    assert!(!t("10.0.0.1", json!("2001:db8::/32")), "family mismatch");
    assert!(t("10.0.0.1", json!(["2001:db8::/32", "10.0.0.0/24"])));
    assert!(!t("not an ip", json!("10.0.0.0/8")));
    assert!(!t("10.0.0.1", json!("10.0.0.0/33")));
    assert!(!is(json!({"ip_in_cidr": [null, "10.0.0.0/8"]}), json!({})));
    assert_eq!(Cidr::parse("10.0.0.0/"), None);
    assert_eq!(Cidr::parse("10.0.0.0/+8"), None);
    assert_eq!(Cidr::parse("::/129"), None);
}

#[test]
fn validation_collects_the_data_points_read() {
    let vars = validate(
        &json!({"and": [
            {"==": [{"var": "b"}, 1]},
            {"in": ["x", {"var": ["custom.tags", []]}]},
            {"!": {"missing": ["a", "b"]}}
        ]}),
        &known,
    )
    .unwrap();
    assert_eq!(vars, vec!["a", "b", "custom.tags"]);
    assert_eq!(
        validate(&json!(true), &known).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn validation_names_the_problem_and_where() {
    let refused = |e: Value| validate(&e, &known).unwrap_err().to_string();
    assert_eq!(
        refused(json!({"and": [true, {"regex": ["a", "b"]}]})),
        format!(
            "at and[1]: unknown operator \"regex\"; supported: {}",
            OPERATORS.join(", ")
        )
    );
    assert_eq!(
        refused(json!({"==": [1]})),
        "at ==: operator \"==\" takes 2 argument(s), found 1"
    );
    assert_eq!(
        refused(json!({"<": [1, 2, 3, 4]})),
        "at <: operator \"<\" takes 2 to 3 argument(s), found 4"
    );
    assert_eq!(
        refused(json!({">": [1, 2, 3]})),
        "at >: operator \">\" takes 2 argument(s), found 3"
    );
    assert_eq!(
        refused(json!({"and": []})),
        "at and: operator \"and\" takes at least 1 argument(s), found 0"
    );
    assert_eq!(
        refused(json!({"or": [{"var": "nope"}]})),
        "at or[0].var: unknown data point \"nope\""
    );
    assert_eq!(
        refused(json!({"missing": ["a", "zzz"]})),
        "at missing: unknown data point \"zzz\""
    );
    assert!(refused(json!({"var": {"var": "a"}})).contains("literal string"));
    assert!(refused(json!({"==": [1, 2], "!=": [1, 2]})).contains("exactly one key"));
    assert!(
        refused(json!({"ip_in_cidr": [{"var": "ip"}, ["10.0.0.0/8", "10.0.0/8"]]}))
            .contains("\"10.0.0/8\" is not a CIDR block")
    );
}

#[test]
fn validation_bounds_depth_and_size() {
    let mut deep = json!(true);
    for _ in 0..=MAX_DEPTH {
        deep = json!({"!": [deep]});
    }
    assert!(
        validate(&deep, &any_var)
            .unwrap_err()
            .message
            .contains("nested deeper")
    );
    let wide = json!({"and": vec![json!(true); MAX_NODES]});
    assert!(
        validate(&wide, &any_var)
            .unwrap_err()
            .message
            .contains("more than")
    );
}

#[test]
fn evaluation_of_unvalidated_nonsense_never_panics() {
    let mut deep = json!(true);
    for _ in 0..200 {
        deep = json!({"!!": [deep]});
    }
    // Past the depth limit evaluation gives up with null, which `!!` turns into false.
    assert_eq!(evaluate(&deep, &json!({})), json!(false));
    for nonsense in [
        json!({"unknown": [1]}),
        json!({"a": 1, "b": 2}),
        json!({"var": {"x": 1}}),
        json!({"<": []}),
        json!({"in": [1]}),
        json!({"ip_in_cidr": []}),
        json!({"missing": {"var": "x"}}),
        json!({"if": []}),
    ] {
        let _ = evaluate(&nonsense, &json!({"x": [1, {"y": 2}]}));
    }
}
