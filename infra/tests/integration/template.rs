//! `template.yaml` against the code: each function's HttpApi events are exactly its router's
//! routes, the table is the shared schema, and each function is built and run as the issue
//! requires (provided.al2023, arm64, cargo-lambda) with a least-privilege table policy.

use serde_norway::Value;
use shared::store::dynamodb::schema;
use std::collections::BTreeSet;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]
}

/// `(method, path)` of every HttpApi event of a function resource.
fn events(function: &Value) -> BTreeSet<(String, String)> {
    function["Properties"]["Events"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|event| {
            assert_eq!(event["Type"].as_str(), Some("HttpApi"));
            let properties = &event["Properties"];
            (
                properties["Method"].as_str().unwrap().to_owned(),
                properties["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn routes(routes: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

const FUNCTIONS: [(&str, &str); 4] = [
    ("TrackFunction", "track"),
    ("AddAuthenticatorFunction", "add-authenticator"),
    ("ChallengeFunction", "challenge"),
    ("ValidateFunction", "validate"),
];

fn routes_of(binary: &str) -> BTreeSet<(String, String)> {
    routes(match binary {
        "track" => track::ROUTES,
        "add-authenticator" => add_authenticator::ROUTES,
        "challenge" => challenge::ROUTES,
        "validate" => validate::ROUTES,
        other => panic!("unknown function {other}"),
    })
}

#[test]
fn each_functions_events_equal_its_routers_routes() {
    let template = template();
    let mut all = BTreeSet::new();
    for (resource_name, binary) in FUNCTIONS {
        let function = resource(&template, resource_name);
        assert_eq!(events(function), routes_of(binary), "{resource_name}");
        all.extend(events(function));
    }
    // And together they are every route the local server serves: nothing is left out.
    assert_eq!(all, routes(&trusted_device::all_routes()));
}

#[test]
fn functions_are_built_by_cargo_lambda_for_arm64_on_provided_al2023() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    assert_eq!(globals["Handler"].as_str(), Some("bootstrap"));
    for (resource_name, binary) in FUNCTIONS {
        let function = resource(&template, resource_name);
        assert_eq!(function["Type"].as_str(), Some("AWS::Serverless::Function"));
        assert_eq!(
            function["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
        assert_eq!(
            function["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(binary)
        );
        // Logs: JSON, in a log group of the template's with a retention.
        let log_group_ref = function["Properties"]["LoggingConfig"]["LogGroup"].clone();
        let Value::Tagged(tagged) = log_group_ref else {
            panic!("{resource_name}: LogGroup is not a !Ref")
        };
        let log_group = resource(&template, tagged.value.as_str().unwrap());
        assert_eq!(log_group["Type"].as_str(), Some("AWS::Logs::LogGroup"));
        assert!(!log_group["Properties"]["RetentionInDays"].is_null());
    }
}

#[test]
fn each_function_may_call_only_the_table_and_only_named_actions() {
    let template = template();
    for (resource_name, _) in FUNCTIONS {
        let policies = resource(&template, resource_name)["Properties"]["Policies"]
            .as_sequence()
            .unwrap();
        assert_eq!(policies.len(), 1, "{resource_name}");
        for statement in policies[0]["Statement"].as_sequence().unwrap() {
            // The one other statement a function may have: PostToConnection on the QR-code
            // WebSocket API's connections, checked in template_websocket.rs.
            if statement["Action"].as_sequence().unwrap()
                == &[Value::from("execute-api:ManageConnections")]
            {
                assert_eq!(resource_name, "ChallengeFunction");
                continue;
            }
            for action in statement["Action"].as_sequence().unwrap() {
                let action = action.as_str().unwrap();
                assert!(
                    action.starts_with("dynamodb:") && !action.contains('*'),
                    "{resource_name}: {action}"
                );
            }
            let Value::Tagged(resource) = &statement["Resource"] else {
                panic!("{resource_name}: Resource")
            };
            assert_eq!(
                resource.value.as_str(),
                Some("Table.Arn"),
                "{resource_name}"
            );
        }
    }
    // validate only reads.
    let validate = &resource(&template, "ValidateFunction")["Properties"]["Policies"][0]["Statement"]
        [0]["Action"];
    assert_eq!(validate.as_sequence().unwrap().len(), 1);
    assert_eq!(validate[0].as_str(), Some("dynamodb:GetItem"));
}

#[test]
fn the_table_is_the_shared_schema() {
    let template = template();
    let table = &resource(&template, "Table")["Properties"];
    let keys: Vec<(&str, &str)> = table["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap(),
                k["KeyType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![(schema::PARTITION_KEY, "HASH"), (schema::SORT_KEY, "RANGE")]
    );
    let attributes: Vec<(&str, &str)> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap(),
                a["AttributeType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attributes,
        vec![(schema::PARTITION_KEY, "S"), (schema::SORT_KEY, "S")]
    );
    assert_eq!(table["BillingMode"].as_str(), Some(schema::BILLING_MODE));
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some(schema::TTL_ATTRIBUTE)
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        table["GlobalSecondaryIndexes"]
            .as_sequence()
            .map_or(0, |i| i.len()),
        schema::GLOBAL_SECONDARY_INDEXES.len()
    );
    assert!(table["LocalSecondaryIndexes"].is_null());
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        table["SSESpecification"]["SSEEnabled"].as_bool(),
        Some(true)
    );
}

#[test]
fn outputs_give_the_sdk_base_url_and_the_table() {
    let template = template();
    let Value::Tagged(url) = &template["Outputs"]["ApiUrl"]["Value"] else {
        panic!("ApiUrl")
    };
    assert!(url.value.as_str().unwrap().ends_with("/v1"));
    assert!(!template["Outputs"]["TableName"].is_null());
    for parameter in [
        "Stage",
        "MemorySize",
        "LogLevel",
        "TokenLifetimeSeconds",
        "LogRetentionDays",
    ] {
        assert!(!template["Parameters"][parameter].is_null(), "{parameter}");
    }
}

/// The rate limits (DESIGN 6) are deployment settings: each is a parameter that reaches every
/// function's environment under the name `Settings::from_env` reads.
#[test]
fn rate_limits_are_parameters_passed_to_the_functions() {
    let template = template();
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    for (parameter, variable) in [
        (
            "AnonymousQrStartsPerSource",
            "TRUSTED_DEVICE_ANONYMOUS_QR_STARTS_PER_SOURCE",
        ),
        ("AnonymousQrLiveCap", "TRUSTED_DEVICE_ANONYMOUS_QR_LIVE_CAP"),
        (
            "AnonymousPasskeyOptionsPerSource",
            "TRUSTED_DEVICE_ANONYMOUS_PASSKEY_OPTIONS_PER_SOURCE",
        ),
        (
            "AnonymousPasskeyLiveCap",
            "TRUSTED_DEVICE_ANONYMOUS_PASSKEY_LIVE_CAP",
        ),
        (
            "FailedSignaturesPerSource",
            "TRUSTED_DEVICE_FAILED_SIGNATURES_PER_SOURCE",
        ),
        (
            "FailedSignaturesPerTenant",
            "TRUSTED_DEVICE_FAILED_SIGNATURES_PER_TENANT",
        ),
        (
            "MaxFailedSignaturesPerChallenge",
            "TRUSTED_DEVICE_MAX_FAILED_SIGNATURES_PER_CHALLENGE",
        ),
        (
            "DeviceActionsPerCredentialPerHour",
            "TRUSTED_DEVICE_DEVICE_ACTIONS_PER_CREDENTIAL_PER_HOUR",
        ),
        (
            "RateLimitWindowSeconds",
            "TRUSTED_DEVICE_RATE_LIMIT_WINDOW_SECONDS",
        ),
        ("RateLimitShards", "TRUSTED_DEVICE_RATE_LIMIT_SHARDS"),
        // Not a limit, passed the same way: track's `url` (issue #16).
        ("PublicUrl", "TRUSTED_DEVICE_PUBLIC_URL"),
    ] {
        assert!(!template["Parameters"][parameter].is_null(), "{parameter}");
        let Value::Tagged(reference) = &variables[variable] else {
            panic!("{variable} is not set from a parameter")
        };
        assert_eq!(reference.value.as_str(), Some(parameter), "{variable}");
    }
}

/// CORS has one implementation, the functions' (`shared::http::cors`): every route path has an
/// `OPTIONS` route to its function, so API Gateway hands preflights to the same code the local
/// server runs, and API Gateway's own CORS (`CorsConfiguration`), which would answer preflights
/// itself and add headers of its own, is off.
#[test]
fn preflights_reach_the_functions_and_api_gateway_cors_is_off() {
    let template = template();
    for (resource_name, binary) in FUNCTIONS {
        let routes = routes_of(binary);
        let paths: BTreeSet<&String> = routes.iter().map(|(_, path)| path).collect();
        for path in paths {
            assert!(
                routes.contains(&("OPTIONS".to_owned(), path.clone())),
                "{resource_name}: no OPTIONS route for {path}"
            );
        }
    }
    let api = &resource(&template, "Api")["Properties"];
    assert!(api.get("CorsConfiguration").is_none(), "{api:?}");
    assert!(template["Globals"].get("HttpApi").is_none());
}

/// Issue #19 (DESIGN 10): the table's stream, new and old images, into the events function,
/// at least once: failures reported per record, retried until the stream's retention, then
/// the dead-letter queue; the function may read the stream, the table's items and write the
/// queue, nothing else.
#[test]
fn the_events_function_reads_the_stream_with_retries_and_a_dead_letter_queue() {
    let template = template();
    let table = &resource(&template, "Table")["Properties"];
    assert_eq!(
        table["StreamSpecification"]["StreamViewType"].as_str(),
        Some("NEW_AND_OLD_IMAGES")
    );
    let function = resource(&template, "EventsFunction");
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("events")
    );
    assert!(
        function["Properties"]["Events"].is_null(),
        "no SAM event: it would attach a managed policy on every stream"
    );
    let mapping = &resource(&template, "EventsStreamMapping")["Properties"];
    let tagged = |value: &Value| match value {
        Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_owned(),
        other => panic!("not a tag: {other:?}"),
    };
    assert_eq!(tagged(&mapping["EventSourceArn"]), "Table.StreamArn");
    assert_eq!(tagged(&mapping["FunctionName"]), "EventsFunction");
    assert_eq!(
        mapping["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(mapping["BisectBatchOnFunctionError"].as_bool(), Some(true));
    let max_age = mapping["MaximumRecordAgeInSeconds"].as_i64().unwrap();
    assert!(max_age >= 3600, "a receiver down for an hour loses nothing");
    assert_eq!(mapping["MaximumRetryAttempts"].as_i64(), Some(-1));
    assert_eq!(
        tagged(&mapping["DestinationConfig"]["OnFailure"]["Destination"]),
        "EventsDeadLetterQueue.Arn"
    );
    assert_eq!(
        resource(&template, "EventsDeadLetterQueue")["Type"].as_str(),
        Some("AWS::SQS::Queue")
    );
    let statements = function["Properties"]["Policies"][0]["Statement"]
        .as_sequence()
        .unwrap();
    let granted: BTreeSet<(String, String)> = statements
        .iter()
        .flat_map(|statement| {
            let resource = match &statement["Resource"] {
                Value::Tagged(tagged) => tagged.value.as_str().unwrap().to_owned(),
                other => panic!("{other:?}"),
            };
            statement["Action"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(move |action| (action.as_str().unwrap().to_owned(), resource.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("dynamodb:GetItem", "Table.Arn"),
        ("dynamodb:DescribeStream", "Table.StreamArn"),
        ("dynamodb:GetRecords", "Table.StreamArn"),
        ("dynamodb:GetShardIterator", "Table.StreamArn"),
        ("dynamodb:ListStreams", "${Table.Arn}/stream/*"),
        ("sqs:SendMessage", "EventsDeadLetterQueue.Arn"),
    ]
    .into_iter()
    .map(|(a, r)| (a.to_owned(), r.to_owned()))
    .collect();
    assert_eq!(granted, expected);
}

/// The alarms on the service's own metrics (DESIGN 11) watch names the functions emit
/// (`shared::metric::name`), in the namespace the functions are given, with exactly the
/// dimensions those metrics are recorded with; every alarm notifies the optional SNS topic.
#[test]
fn alarms_watch_the_metrics_the_functions_emit_and_notify_the_optional_topic() {
    use shared::metric::name;
    let template = template();
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    let Value::Tagged(namespace) = &variables[shared::metric::NAMESPACE_ENV] else {
        panic!("the functions are not given a metrics namespace")
    };
    let namespace = namespace.value.as_str().unwrap();
    assert_eq!(namespace, "TrustedDevice/${Stage}");
    assert_eq!(
        template["Parameters"]["AlarmTopicArn"]["Default"].as_str(),
        Some("")
    );
    // The labels each alarmed metric is recorded with (shared::metric).
    let recorded: [(&str, &[&str]); 3] = [
        (name::ERROR_RESPONSES, &["code"]),
        (name::HTTP_SERVER_ERRORS, &[]),
        (name::STORE_ERRORS, &["kind", "store"]),
    ];
    let mut own = BTreeSet::new();
    let mut alarms = 0;
    for (resource_name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm") {
            continue;
        }
        alarms += 1;
        let properties = &resource["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            let Value::Tagged(condition) = &properties[actions] else {
                panic!("{resource_name:?}: {actions} is not conditional on the topic")
            };
            assert_eq!(condition.value[0].as_str(), Some("NotifyAlarms"));
        }
        if let Value::Tagged(alarm_namespace) = &properties["Namespace"] {
            assert_eq!(alarm_namespace.value.as_str(), Some(namespace));
            let metric = properties["MetricName"].as_str().unwrap();
            let dimensions: BTreeSet<&str> = properties["Dimensions"]
                .as_sequence()
                .map(|d| d.iter().map(|d| d["Name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let (_, labels) = recorded
                .iter()
                .find(|(recorded, _)| *recorded == metric)
                .unwrap_or_else(|| panic!("{metric} is not one the functions emit"));
            assert_eq!(dimensions, labels.iter().copied().collect(), "{metric}");
            own.insert(metric);
        }
    }
    assert_eq!(own.len(), recorded.len());
    assert_eq!(alarms, 9);
    // Every function's failures and throttles are alarmed, the events function's too.
    let functions: BTreeSet<String> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, _)| name.as_str().unwrap().to_owned())
        .collect();
    for alarm in ["LambdaErrorAlarm", "LambdaThrottleAlarm"] {
        let watched: BTreeSet<String> = resource(&template, alarm)["Properties"]["Metrics"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(
                |m| match &m["MetricStat"]["Metric"]["Dimensions"][0]["Value"] {
                    Value::Tagged(reference) => reference.value.as_str().map(str::to_owned),
                    _ => None,
                },
            )
            .collect();
        assert_eq!(watched, functions, "{alarm}");
    }
    assert!(resource(&template, "EventsDeadLetterAlarm").is_mapping());
    let invalid_signature = &resource(&template, "InvalidSignatureAlarm")["Properties"];
    assert_eq!(
        invalid_signature["Dimensions"][0]["Value"].as_str(),
        Some("invalid_signature")
    );
    assert_eq!(
        resource(&template, "Dashboard")["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
}

/// cargo-lambda, which `sam build` runs for every function (`BuildMethod: rust-cargolambda`),
/// adds `profile.release.panic="abort"` to a release build unless the workspace's release
/// profile names `panic` itself (cargo-lambda-metadata, `cargo_release_profile_config`). Named,
/// a panicking handler is answered (a 500 in the error shape) instead of aborting the execution
/// environment and every request in it.
#[test]
fn the_release_profile_names_panic_unwind_so_cargo_lambda_keeps_it() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
    let release: Vec<&str> = manifest
        .lines()
        .skip_while(|line| line.trim() != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .map(str::trim)
        .collect();
    assert!(
        release.contains(&r#"panic = "unwind""#),
        "[profile.release] is {release:?}"
    );
}
