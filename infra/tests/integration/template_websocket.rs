//! `template.yaml`'s QR-code WebSocket (spec 3.8, issue #14) against the code: an API Gateway
//! WebSocket API whose `$connect`, `$default` and `$disconnect` invoke the `qr-socket`
//! function, a stage named as the path the browser SDK derives, the management endpoint given to
//! the functions that push, and `execute-api:ManageConnections` on that API's connections only.

use serde_norway::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]
}

/// The text of a `!Sub` or `!Ref` (a tagged YAML value).
fn tagged<'a>(value: &'a Value, tag: &str) -> &'a str {
    let Value::Tagged(tagged) = value else {
        panic!("not a tagged value: {value:?}")
    };
    assert_eq!(tagged.tag.to_string(), tag, "{value:?}");
    tagged.value.as_str().unwrap()
}

const STAGE: &str = "ws-v1-challenge";

#[test]
fn the_stage_is_the_path_the_sdk_derives() {
    assert_eq!(shared::websocket::PATH, format!("/{STAGE}"));
    let template = template();
    let stage = resource(&template, "QrSocketStage");
    assert_eq!(stage["Type"].as_str(), Some("AWS::ApiGatewayV2::Stage"));
    assert_eq!(stage["Properties"]["StageName"].as_str(), Some(STAGE));
    assert_eq!(tagged(&stage["Properties"]["ApiId"], "!Ref"), "QrSocketApi");
    assert_eq!(stage["Properties"]["AutoDeploy"].as_bool(), Some(true));
    let url = tagged(&template["Outputs"]["WebSocketUrl"]["Value"], "!Sub");
    assert_eq!(
        url,
        format!("wss://${{QrSocketApi}}.execute-api.${{AWS::Region}}.amazonaws.com/{STAGE}")
    );
}

#[test]
fn connect_default_and_disconnect_invoke_the_qr_socket_function() {
    let template = template();
    let api = resource(&template, "QrSocketApi");
    assert_eq!(api["Type"].as_str(), Some("AWS::ApiGatewayV2::Api"));
    assert_eq!(
        api["Properties"]["ProtocolType"].as_str(),
        Some("WEBSOCKET")
    );
    let integration = &resource(&template, "QrSocketIntegration")["Properties"];
    assert_eq!(integration["IntegrationType"].as_str(), Some("AWS_PROXY"));
    assert!(
        tagged(&integration["IntegrationUri"], "!Sub").contains("${QrSocketFunction.Arn}"),
        "the integration invokes the qr-socket function"
    );
    let mut keys = Vec::new();
    for (name, body) in template["Resources"].as_mapping().unwrap() {
        if body["Type"].as_str() != Some("AWS::ApiGatewayV2::Route") {
            continue;
        }
        let properties = &body["Properties"];
        assert_eq!(
            tagged(&properties["ApiId"], "!Ref"),
            "QrSocketApi",
            "{name:?}"
        );
        assert_eq!(
            tagged(&properties["Target"], "!Sub"),
            "integrations/${QrSocketIntegration}"
        );
        keys.push(properties["RouteKey"].as_str().unwrap().to_owned());
    }
    keys.sort();
    assert_eq!(keys, ["$connect", "$default", "$disconnect"]);
    let permission = &resource(&template, "QrSocketInvokePermission")["Properties"];
    assert_eq!(
        permission["Principal"].as_str(),
        Some("apigateway.amazonaws.com")
    );
    assert!(tagged(&permission["SourceArn"], "!Sub").contains("${QrSocketApi}/*"));

    let function = resource(&template, "QrSocketFunction");
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("qr-socket")
    );
    assert_eq!(
        function["Metadata"]["BuildMethod"].as_str(),
        Some("rust-cargolambda")
    );
    let log_group = tagged(&function["Properties"]["LoggingConfig"]["LogGroup"], "!Ref");
    assert_eq!(
        resource(&template, log_group)["Type"].as_str(),
        Some("AWS::Logs::LogGroup")
    );
}

/// The functions that push (where a QR code is created or answered) get the endpoint, and
/// `execute-api:ManageConnections` on this API's stage's `@connections` only; no other
/// function gets either.
#[test]
fn only_the_pushing_functions_may_manage_connections_and_only_of_this_api() {
    let template = template();
    let endpoint =
        format!("https://${{QrSocketApi}}.execute-api.${{AWS::Region}}.amazonaws.com/{STAGE}");
    let connections = format!(
        "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{QrSocketApi}}/{STAGE}/"
    );
    for (name, pushes, methods) in [
        ("ChallengeFunction", true, &["POST"][..]),
        ("QrSocketFunction", true, &["POST", "DELETE"][..]),
        ("TrackFunction", false, &[][..]),
        ("AddAuthenticatorFunction", false, &[][..]),
        ("ValidateFunction", false, &[][..]),
    ] {
        let properties = &resource(&template, name)["Properties"];
        let variable = &properties["Environment"]["Variables"][shared::sockets_aws::ENDPOINT_ENV];
        if pushes {
            assert_eq!(tagged(variable, "!Sub"), endpoint, "{name}");
        } else {
            assert!(variable.is_null(), "{name}");
        }
        let statements = properties["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
        let managing: Vec<&Value> = statements
            .iter()
            .filter(|s| {
                s["Action"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str().unwrap().starts_with("execute-api:"))
            })
            .collect();
        if !pushes {
            assert!(managing.is_empty(), "{name}");
            continue;
        }
        assert_eq!(managing.len(), 1, "{name}");
        let statement = managing[0];
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        assert_eq!(
            statement["Action"].as_sequence().unwrap(),
            &[Value::from("execute-api:ManageConnections")]
        );
        let resources: Vec<&str> = match &statement["Resource"] {
            Value::Sequence(list) => list.iter().map(|r| tagged(r, "!Sub")).collect(),
            one => vec![tagged(one, "!Sub")],
        };
        let expected: Vec<String> = methods
            .iter()
            .map(|m| format!("{connections}{m}/@connections/*"))
            .collect();
        assert_eq!(resources, expected, "{name}");
    }
}

/// The qr-socket function's table statement: named DynamoDB actions on the table only (what it
/// uses is checked against it in tests/tests/qr_socket_lambda.rs).
#[test]
fn the_qr_socket_function_may_call_only_the_table_and_the_connections() {
    let template = template();
    let statements =
        resource(&template, "QrSocketFunction")["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
    assert_eq!(statements.len(), 2);
    for action in statements[0]["Action"].as_sequence().unwrap() {
        let action = action.as_str().unwrap();
        assert!(
            action.starts_with("dynamodb:") && !action.contains('*'),
            "{action}"
        );
    }
    assert_eq!(tagged(&statements[0]["Resource"], "!GetAtt"), "Table.Arn");
    assert_eq!(
        statements[1]["Action"].as_sequence().unwrap(),
        &[Value::from("execute-api:ManageConnections")]
    );
}
