"""The AWS stack is built from the same code the tests run: `make package` works offline and
without credentials, cfn-lint is clean, the template's tables, topic rule, IoT policy and
IAM roles agree with their single sources, and the template's tables, deployed into moto's
CloudFormation, take a view through the real handlers with the environment the template
gives the API Lambda (secrets read from SSM)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.function_url import RECORDING_ROUTES
from tests.conftest import BROWSER_UA

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"
ACCOUNT = "123456789012"
THING = "${iot:Connection.Thing.ThingName}"

sys.path.insert(0, str(ROOT / "scripts"))
import build_template  # noqa: E402


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package STAGE=prod` into a temp dir, with no AWS credentials anywhere."""
    out = tmp_path_factory.mktemp("package") / STAGE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VTS_"))}
    nowhere = str(out.parent / "no-such-file")
    env.update({
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": nowhere,
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    answer = subprocess.run(
        [sys.executable, "scripts/build_template.py", "--stage", STAGE, "--package", str(out),
         "--no-lint"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    return out


@pytest.fixture(scope="module")
def template(package_dir: Path) -> dict[str, Any]:
    return dict(json.loads((package_dir / "sam.json").read_text()))


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


# ---- rendering intrinsics into comparable strings -------------------------------------------

def render(node: Any, template: dict[str, Any]) -> Any:
    """Intrinsics -> strings: ``GetAtt [X, Arn]`` -> ``arn:X``, ``Sub`` with pseudo
    parameters and parameter defaults filled in, ``Join`` joined (a list parameter's
    ``Ref`` is its default's items); anything else as it is."""
    if isinstance(node, list):
        return [render(item, template) for item in node]
    if not isinstance(node, dict):
        return node
    if "Fn::Join" in node:
        separator, items = node["Fn::Join"]
        items = render(items, template)
        return separator.join(str(item) for item in (items if isinstance(items, list) else [items]))
    if "Fn::GetAtt" in node:
        logical, attribute = node["Fn::GetAtt"]
        return f"arn:{logical}" + ("/stream/2026" if attribute == "StreamArn" else "")
    if "Ref" in node:
        return _ref(node["Ref"], template)
    if "Fn::Sub" in node:
        text = node["Fn::Sub"]

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name.endswith(".Arn"):
                return f"arn:{name[:-4]}"
            return str(_ref(name, template))

        return re.sub(r"\$\{([^}]+)\}", fill, text)
    return {k: render(v, template) for k, v in node.items()}


def _ref(name: str, template: dict[str, Any]) -> str | list[str]:
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT}
    if name in pseudo:
        return pseudo[name]
    parameter = template.get("Parameters", {}).get(name)
    if parameter is not None:
        default = str(parameter.get("Default", ""))
        if parameter["Type"] == "CommaDelimitedList":
            return [item.strip() for item in default.split(",")]
        return default
    return f"ref:{name}"


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = template["Resources"][role]["Properties"]["Policies"]
    found = []
    for policy in policies:
        for statement in render(policy["PolicyDocument"], template)["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            found.append({
                "Effect": statement["Effect"],
                "Action": [actions] if isinstance(actions, str) else actions,
                "Resource": [resources] if isinstance(resources, str) else resources,
            })
    return found


def allowed(template: dict[str, Any], role: str, action: str, resource: str) -> bool:
    return any(
        s["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in s["Action"])
        and any(fnmatch.fnmatchcase(resource, r) for r in s["Resource"])
        for s in statements(template, role)
    )


def function_roles(template: dict[str, Any]) -> dict[str, str]:
    """Lambda logical id -> its role's logical id."""
    return {
        fid: resource["Properties"]["Role"]["Fn::GetAtt"][0]
        for fid, resource in resources_of(template, "AWS::Serverless::Function").items()
    }


# ---- the package ----------------------------------------------------------------------------

def test_package_builds_without_credentials_and_zips_every_runtime_pin(package_dir: Path) -> None:
    assert (package_dir / "sam.json").is_file()
    assert build_template.missing_from_zip(package_dir / "deployment.zip") == []
    import zipfile

    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        names = set(archive.namelist())
    assert "app.py" in names and "chalicelib/wiring.py" in names


def test_cfn_lint_finds_no_errors(package_dir: Path) -> None:
    answer = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--", str(package_dir / "sam.json")],
        capture_output=True, text=True, check=False,
    )
    assert answer.returncode & 3 == 0, answer.stdout + answer.stderr


def test_every_function_of_the_app_is_in_the_stack_with_its_own_role(template: dict[str, Any]) -> None:
    functions = build_template.app_functions()
    roles = function_roles(template)
    assert set(roles) == {build_template.function_id(f) for f in functions}
    assert len(set(roles.values())) == len(roles), "functions must not share a role"
    for function in functions:
        fid = build_template.function_id(function)
        properties = template["Resources"][fid]["Properties"]
        assert properties["FunctionName"] == f"vts-{STAGE}-{function}"
        variables = properties["Environment"]["Variables"]
        assert variables["VTS_STAGE"] == STAGE
        for logical in ("events", "aggregates", "registry"):
            table = build_template.table_id(logical)
            assert variables[f"VTS_{logical.upper()}_TABLE"] == {"Ref": table}
        assert f"{fid}ErrorsAlarm" in template["Resources"]


# ---- tables ---------------------------------------------------------------------------------

def _by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {item[key]: item for item in items}


def test_tables_equal_the_code_definitions(template: dict[str, Any]) -> None:
    from chalicelib.storage.tables import TABLES

    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert set(tables) == {build_template.table_id(name) for name in TABLES}
    for logical, spec in TABLES.items():
        resource = tables[build_template.table_id(logical)]
        properties = resource["Properties"]
        assert properties["TableName"] == f"vts-{STAGE}-{logical}"
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["KeySchema"] == spec["KeySchema"]
        assert _by_name(properties["AttributeDefinitions"], "AttributeName") == _by_name(
            spec["AttributeDefinitions"], "AttributeName"
        )
        indexes = _by_name(properties.get("GlobalSecondaryIndexes", []), "IndexName")
        wanted = _by_name(spec.get("GlobalSecondaryIndexes", []), "IndexName")
        assert set(indexes) == set(wanted)
        for name, index in wanted.items():
            assert indexes[name]["KeySchema"] == index["KeySchema"]
            assert indexes[name]["Projection"] == index["Projection"]
        ttl = properties.get("TimeToLiveSpecification")
        if spec["TimeToLive"]:
            assert ttl == {"AttributeName": spec["TimeToLive"], "Enabled": True}
        else:
            assert ttl is None
        stream = spec.get("StreamSpecification")
        if stream:
            assert properties["StreamSpecification"] == {"StreamViewType": stream["StreamViewType"]}
        else:
            assert "StreamSpecification" not in properties
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"] == {"SSEEnabled": True}
        assert resource["DeletionPolicy"] == "Retain"


# ---- IoT ------------------------------------------------------------------------------------

def test_topic_rules_equal_iot_rules_and_only_they_may_invoke(template: dict[str, Any]) -> None:
    from iot_rules import load_rule, rule_names

    rules = resources_of(template, "AWS::IoT::TopicRule")
    assert len(rules) == len(rule_names())
    permissions = resources_of(template, "AWS::Lambda::Permission")
    for name in rule_names():
        rule = load_rule(name)
        rid = f"{build_template.cfn_name(name)}TopicRule"
        payload = rules[rid]["Properties"]["TopicRulePayload"]
        assert payload["Sql"] == rule.sql
        assert payload["AwsIotSqlVersion"] == rule.sql_version
        assert payload["RuleDisabled"] is False
        targets = [a["Lambda"]["FunctionArn"]["Fn::GetAtt"][0] for a in payload["Actions"]]
        assert targets == [build_template.function_id(f) for f in rule.functions]
        error_action = payload["ErrorAction"]["CloudwatchLogs"]
        assert error_action["LogGroupName"]["Ref"] in template["Resources"]
        assert error_action["RoleArn"]["Fn::GetAtt"][0] in template["Resources"]
        invokers = [
            p["Properties"] for p in permissions.values()
            if p["Properties"]["Principal"] == "iot.amazonaws.com"
        ]
        assert invokers, "the rule needs an invoke permission"
        for permission in invokers:
            assert permission["SourceArn"] == {"Fn::GetAtt": [rid, "Arn"]}
            assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def iot_policy_actions(template: dict[str, Any], logical: str) -> dict[str, list[str]]:
    """action -> the resources a stack IoT policy allows it on (every statement an Allow)."""
    policy = resources_of(template, "AWS::IoT::Policy")[logical]
    actions: dict[str, list[str]] = {}
    for statement in render(policy["Properties"]["PolicyDocument"], template)["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Effect", "Action", "Resource", "Condition"}
        assert isinstance(statement["Action"], str)
        resources = statement["Resource"]
        actions.setdefault(statement["Action"], []).extend(
            [resources] if isinstance(resources, str) else resources
        )
    return actions


def test_the_stack_has_the_player_and_the_bridge_iot_policies_only(template: dict[str, Any]) -> None:
    policies = resources_of(template, "AWS::IoT::Policy")
    assert sorted(policies) == ["PlayerBridgeIotPolicy", "PlayerIotPolicy"]
    assert policies["PlayerBridgeIotPolicy"]["Properties"]["PolicyName"] == f"vts-{STAGE}-bridge"
    assert template["Outputs"]["PlayerBridgeIotPolicyName"] == {
        "Value": {"Ref": "PlayerBridgeIotPolicy"}}


def test_player_policy_names_only_the_connections_own_thing(template: dict[str, Any]) -> None:
    actions = iot_policy_actions(template, "PlayerIotPolicy")
    assert set(actions) == {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}
    prefix = f"arn:aws:iot:us-east-1:{ACCOUNT}:"
    for resources in actions.values():
        for resource in resources:
            assert resource.startswith(prefix) and THING in resource, resource
            # No wildcard anywhere: nothing but the connection's own Thing name varies.
            assert not re.search(r"[*+#]", resource.replace(THING, "")), resource
    assert actions["iot:Publish"] == [f"{prefix}topic/makapix/player/{THING}/view"]
    assert actions["iot:Subscribe"] == [f"{prefix}topicfilter/makapix/player/{THING}/view/ack"]
    assert actions["iot:Receive"] == [f"{prefix}topic/makapix/player/{THING}/view/ack"]
    assert sorted(actions["iot:Connect"]) == sorted(
        [f"{prefix}client/{THING}", f"{prefix}client/p3a-{THING}"]
    )


def test_bridge_policy_connects_as_itself_and_only_publishes_view_reports(
    template: dict[str, Any],
) -> None:
    from iot_rules import load_rule, rule_names

    prefix = f"arn:aws:iot:us-east-1:{ACCOUNT}:"
    actions = iot_policy_actions(template, "PlayerBridgeIotPolicy")
    # Nothing else: no Subscribe, no Receive, no RetainPublish, no wildcard action.
    assert actions == {
        "iot:Connect": [f"{prefix}client/{THING}"],
        "iot:Publish": [f"{prefix}topic/makapix/player/*/view"],
    }
    document = render(template["Resources"]["PlayerBridgeIotPolicy"]["Properties"]["PolicyDocument"],
                      template)
    conditions = {s["Action"]: s.get("Condition") for s in document["Statement"]}
    assert conditions == {
        "iot:Connect": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        "iot:Publish": None,
    }
    # The topics the bridge may publish are the ones the rule reads (`+` is `*` in a policy).
    filters = {load_rule(name).topic_filter.replace("+", "*") for name in rule_names()}
    assert "makapix/player/*/view" in filters


def test_player_views_gets_the_trusted_bridges_and_the_ack_transport(
    template: dict[str, Any],
) -> None:
    parameters = template["Parameters"]
    assert parameters["PlayerBridges"]["Type"] == "CommaDelimitedList"
    assert parameters["PlayerBridges"]["Default"] == "vts-bridge-makapix"
    assert parameters["PlayerAcks"]["Type"] == "String"
    assert sorted(parameters["PlayerAcks"]["AllowedValues"]) == ["iot", "none"]
    assert parameters["PlayerAcks"]["Default"] == "iot"
    variables = template["Resources"]["PlayerViews"]["Properties"]["Environment"]["Variables"]
    assert variables["VTS_PLAYER_BRIDGES"] == {"Fn::Join": [",", {"Ref": "PlayerBridges"}]}
    assert variables["VTS_ACK_TRANSPORT"] == {"Ref": "PlayerAcks"}
    assert render(variables["VTS_PLAYER_BRIDGES"], template) == "vts-bridge-makapix"
    overridden = {**template, "Parameters": {
        **parameters, "PlayerBridges": {**parameters["PlayerBridges"], "Default": "a, b:c"}}}
    assert render(variables["VTS_PLAYER_BRIDGES"], overridden) == "a,b:c"


# ---- IAM ------------------------------------------------------------------------------------

def test_function_roles_grant_no_wildcard_action_and_no_wildcard_table(template: dict[str, Any]) -> None:
    tables = set(resources_of(template, "AWS::DynamoDB::Table"))
    for role in function_roles(template).values():
        for statement in statements(template, role):
            for action in statement["Action"]:
                assert "*" not in action, f"{role}: {action}"
            for resource in statement["Resource"]:
                assert resource != "*", f"{role}: {statement}"
                if any(a.startswith("dynamodb:") for a in statement["Action"]):
                    # One named table, at most narrowed to its indexes or streams.
                    match = re.fullmatch(r"arn:(\w+)(/index/[\w*]+|/stream/[\w*]+)?", resource)
                    assert match and match.group(1) in tables, f"{role}: {resource}"


def test_the_stream_mapping_reports_partial_failures_to_a_queue(template: dict[str, Any]) -> None:
    if "Aggregate" not in template["Resources"]:
        pytest.skip("the app defines no aggregate Lambda yet")
    mapping = template["Resources"]["AggregateStreamMapping"]["Properties"]
    assert mapping["FunctionName"] == {"Ref": "Aggregate"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] > 0
    queue = mapping["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert template["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    assert allowed(template, "AggregateRole", "sqs:SendMessage", f"arn:{queue}")
    for action in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"):
        assert allowed(template, "AggregateRole", f"dynamodb:{action}", "arn:EventsTable/stream/2026")
    # A post the stream shows hot is marked in the registry (chalicelib/rollup/hot.py).
    assert allowed(template, "AggregateRole", "dynamodb:PutItem", "arn:RegistryTable")
    assert "AggregateIteratorAgeAlarm" in template["Resources"]


def test_every_queue_alarms_when_not_empty(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    assert queues
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    for queue in queues:
        alarm = alarms[f"{queue}NotEmptyAlarm"]["Properties"]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]


def test_no_secret_value_is_in_the_template(package_dir: Path, template: dict[str, Any]) -> None:
    text = (package_dir / "sam.json").read_text()
    assert "VTS_JWT_SECRET\"" not in text and "VTS_VISITOR_KEY\"" not in text
    assert not resources_of(template, "AWS::SSM::Parameter")


def ssm_arn(template: dict[str, Any], parameter: str) -> str:
    name = template["Parameters"][parameter]["Default"]
    return f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{name}"


def test_player_views_reads_the_visitor_key_but_never_the_jwt_secret(template: dict[str, Any]) -> None:
    """The player function verifies no token: neither the secret's name nor a grant on it."""
    jwt, key = ssm_arn(template, "JwtSecretParameter"), ssm_arn(template, "VisitorKeyParameter")
    variables = template["Resources"]["PlayerViews"]["Properties"]["Environment"]["Variables"]
    assert "VTS_JWT_SECRET_PARAM" not in variables and "VTS_JWT_SECRET" not in variables
    assert variables["VTS_VISITOR_KEY_PARAM"] == {"Ref": "VisitorKeyParameter"}
    assert "JwtSecretParameter" not in build_template.references(
        template["Resources"]["PlayerViewsRole"])
    for statement in statements(template, "PlayerViewsRole"):
        assert not any(fnmatch.fnmatchcase(jwt, r) for r in statement["Resource"]), statement
    assert allowed(template, "PlayerViewsRole", "ssm:GetParameters", key)
    # The API verifies tokens and keys Visitors: it keeps both.
    assert allowed(template, "ApiHandlerRole", "ssm:GetParameters", jwt)
    assert allowed(template, "ApiHandlerRole", "ssm:GetParameters", key)


# ---- flood limits (DESIGN §8) ---------------------------------------------------------------

def condition_holds(template: dict[str, Any], name: str, values: dict[str, str]) -> bool:
    """Evaluate condition ``name`` with parameter ``values`` (others at their defaults)."""
    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return str(values.get(node["Ref"], template["Parameters"][node["Ref"]].get("Default", "")))
        if isinstance(node, dict) and "Condition" in node:
            return condition_holds(template, node["Condition"], values)
        if isinstance(node, dict):
            (function, arguments), = node.items()
            if function == "Fn::Equals":
                return value(arguments[0]) == value(arguments[1])
            if function == "Fn::Not":
                return not value(arguments[0])
            if function == "Fn::And":
                return all(value(a) for a in arguments)
            if function == "Fn::Or":
                return any(value(a) for a in arguments)
            raise AssertionError(f"condition function {function} not handled")
        return str(node)

    return bool(value(template["Conditions"][name]))


def test_the_api_stage_is_throttled_by_template_parameters(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["ApiThrottleRate"]["Type"] == "Number"
    assert parameters["ApiThrottleBurst"]["Type"] == "Number"
    assert int(parameters["ApiThrottleRate"]["Default"]) == 500
    assert int(parameters["ApiThrottleBurst"]["Default"]) == 1000
    api = template["Resources"]["RestAPI"]
    assert api["Type"] == "AWS::Serverless::Api"
    # Every resource and method of the stage (SAM applies MethodSettings to its stage).
    assert api["Properties"]["MethodSettings"] == [{
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }]


def test_the_recording_routes_have_an_http_api_front_door(template: dict[str, Any]) -> None:
    """docs/adr/0014-http-api-front-door.md: views, pixel, vts.js and counter behind an HTTP
    API into the same API Lambda with payload format 1.0; nothing else."""
    resources = template["Resources"]
    (api_id,) = resources_of(template, "AWS::ApiGatewayV2::Api")
    api = resources[api_id]["Properties"]
    assert api["ProtocolType"] == "HTTP"
    assert "Target" not in api and "Body" not in api and "BodyS3Location" not in api
    routes = resources_of(template, "AWS::ApiGatewayV2::Route")
    keys = sorted(route["Properties"]["RouteKey"] for route in routes.values())
    assert keys == sorted([
        "POST /v1/posts/{post_id}/views",
        "GET /v1/posts/{post_id}/pixel.gif",
        "GET /v1/vts.js",
        "GET /v1/posts/{post_id}/counter",
    ])
    assert keys == sorted(f"{m} {p}" for m, p in RECORDING_ROUTES)
    (integration_id,) = resources_of(template, "AWS::ApiGatewayV2::Integration")
    for route in routes.values():
        properties = route["Properties"]
        assert properties["ApiId"] == {"Ref": api_id}
        assert properties["AuthorizationType"] == "NONE"
        assert properties["Target"] == {"Fn::Sub": f"integrations/${{{integration_id}}}"}
    integration = resources[integration_id]["Properties"]
    assert integration["ApiId"] == {"Ref": api_id}
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}  # the same Lambda
    assert integration["PayloadFormatVersion"] == "1.0"
    # Chalice routes by requestContext.resourcePath, which an HTTP API sets to the route's
    # path: each route must be a Chalice route with that method, path parameters and all.
    from app import app

    for key in keys:
        method, path = key.split(" ", 1)
        assert method in app.routes[path], key


def test_the_http_api_stage_is_throttled_by_the_same_parameters(template: dict[str, Any]) -> None:
    (api_id,) = resources_of(template, "AWS::ApiGatewayV2::Api")
    (stage,) = resources_of(template, "AWS::ApiGatewayV2::Stage").values()
    properties = stage["Properties"]
    assert properties["ApiId"] == {"Ref": api_id}
    assert properties["StageName"] == "$default" and properties["AutoDeploy"] is True
    assert properties["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }
    assert "RouteSettings" not in properties  # no route escapes the stage's limits


def test_only_the_http_api_and_the_rest_api_may_invoke_the_api_lambda(template: dict[str, Any]) -> None:
    (api_id,) = resources_of(template, "AWS::ApiGatewayV2::Api")
    invokers = {
        logical: resource["Properties"]
        for logical, resource in resources_of(template, "AWS::Lambda::Permission").items()
        if resource["Properties"]["FunctionName"] in ({"Ref": "APIHandler"},
                                                       {"Fn::GetAtt": ["APIHandler", "Arn"]})
    }
    url_permissions = {"RecordingFunctionUrlPermission", "RecordingFunctionUrlInvokePermission"}
    assert set(invokers) == {"APIHandlerInvokePermission", f"{api_id}InvokePermission"} | url_permissions
    # The function URL's are public, but only through the URL, and only with that door.
    resources = template["Resources"]
    assert resources[f"{api_id}InvokePermission"]["Condition"] == build_template.HTTP_API_DOOR
    for logical in url_permissions:
        assert resources[logical]["Condition"] == build_template.URL_DOOR
        assert invokers[logical]["Principal"] == "*"
    assert invokers["RecordingFunctionUrlPermission"]["Action"] == "lambda:InvokeFunctionUrl"
    assert invokers["RecordingFunctionUrlPermission"]["FunctionUrlAuthType"] == "NONE"
    assert invokers["RecordingFunctionUrlInvokePermission"]["Action"] == "lambda:InvokeFunction"
    assert invokers["RecordingFunctionUrlInvokePermission"]["InvokedViaFunctionUrl"] is True
    permission = invokers[f"{api_id}InvokePermission"]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert render(permission["SourceArn"], template) == (
        f"arn:aws:execute-api:us-east-1:{ACCOUNT}:ref:{api_id}/*")


def test_the_http_api_answers_cors_as_the_rest_routes_do(template: dict[str, Any]) -> None:
    from app import RECORD_CORS

    (api,) = resources_of(template, "AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    sent = RECORD_CORS.get_access_control_headers()
    assert cors["AllowOrigins"] == [sent["Access-Control-Allow-Origin"]] == ["*"]
    assert cors["AllowMethods"] == ["GET", "POST"]
    assert cors["AllowHeaders"] == sorted(sent["Access-Control-Allow-Headers"].split(","))
    assert cors["MaxAge"] == int(sent["Access-Control-Max-Age"])
    assert "AllowCredentials" not in cors


def test_the_stack_outputs_the_recording_url_to_publish(template: dict[str, Any]) -> None:
    (api_id,) = resources_of(template, "AWS::ApiGatewayV2::Api")
    output = template["Outputs"]["RecordingEndpointURL"]
    condition, http_api, url = output["Value"]["Fn::If"]
    assert condition == build_template.HTTP_API_DOOR
    assert http_api == {"Fn::GetAtt": [api_id, "ApiEndpoint"]}
    # The function URL without its trailing "/": embeds append "/v1/vts.js" to the base.
    function_url = "https://abcdefghij0123456789abcdef.lambda-url.us-east-1.on.aws/"
    joined = url["Fn::Join"][1]
    split = joined[1]["Fn::Select"][1]["Fn::Split"]
    assert split[1] == {"Fn::GetAtt": ["RecordingFunctionUrl", "FunctionUrl"]}
    host = function_url.split(split[0])[joined[1]["Fn::Select"][0]]
    assert joined[0] + host == function_url.rstrip("/")
    assert "EndpointURL" in template["Outputs"]  # the REST API's, for stats and the dashboard
    assert "RecordingEndpointURL" in (ROOT / "docs" / "deploy.md").read_text()


def test_the_recording_door_is_a_parameter_http_api_or_function_url(template: dict[str, Any]) -> None:
    """docs/adr/0017-function-url-door.md: RecordingDoor picks the HTTP API (default) or the
    API Lambda's function URL, each with the recording routes' CORS; never both."""
    parameter = template["Parameters"]["RecordingDoor"]
    assert parameter["Default"] == "http-api"
    assert parameter["AllowedValues"] == ["http-api", "function-url"]
    conditions = template["Conditions"]
    assert conditions[build_template.HTTP_API_DOOR] == {
        "Fn::Equals": [{"Ref": "RecordingDoor"}, "http-api"]}
    assert conditions[build_template.URL_DOOR] == {
        "Fn::Equals": [{"Ref": "RecordingDoor"}, "function-url"]}
    resources = template["Resources"]
    for kind in ("AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route",
                 "AWS::ApiGatewayV2::Integration", "AWS::ApiGatewayV2::Stage"):
        for logical in resources_of(template, kind):
            assert resources[logical]["Condition"] == build_template.HTTP_API_DOOR, logical
    (url_id,) = resources_of(template, "AWS::Lambda::Url")
    url = resources[url_id]
    assert url["Condition"] == build_template.URL_DOOR
    assert url["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}
    assert url["Properties"]["AuthType"] == "NONE"
    (api,) = resources_of(template, "AWS::ApiGatewayV2::Api").values()
    assert url["Properties"]["Cors"] == api["Properties"]["CorsConfiguration"]


def test_lambda_writes_no_log_line_of_its_own_per_invocation(template: dict[str, Any]) -> None:
    """JSON logs with system level WARN: no START/END/REPORT lines (bench_price counts on
    it); application level INFO, or the EMF lines (plain prints, filed at INFO) would go."""
    parameter = template["Parameters"]["LambdaSystemLogLevel"]
    assert parameter["Default"] == "WARN"
    for function in build_template.app_functions():
        fid = build_template.function_id(function)
        config = template["Resources"][fid]["Properties"]["LoggingConfig"]
        assert config["LogFormat"] == "JSON"
        assert config["ApplicationLogLevel"] == "INFO"
        assert config["SystemLogLevel"] == {"Ref": "LambdaSystemLogLevel"}
        log_group = config["LogGroup"]["Ref"]
        assert template["Resources"][log_group]["Properties"]["LogGroupName"] == (
            f"/aws/lambda/vts-{STAGE}-{function}")


def test_the_api_function_cannot_take_the_concurrency_of_the_others(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ApiReservedConcurrency"]
    assert parameter["Type"] == "Number" and int(parameter["Default"]) == 50
    assert int(parameter["MinValue"]) == 0
    properties = template["Resources"]["APIHandler"]["Properties"]
    assert properties["ReservedConcurrentExecutions"] == {"Fn::If": [
        "HasApiReservedConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert condition_holds(template, "HasApiReservedConcurrency", {})
    assert condition_holds(template, "HasApiReservedConcurrency", {"ApiReservedConcurrency": "200"})
    # 0 would throttle every request: it means "no reservation" instead.
    assert not condition_holds(template, "HasApiReservedConcurrency", {"ApiReservedConcurrency": "0"})
    # The reservation caps the API only: the stream, close and player functions share the rest.
    for fid in ("Aggregate", "CloseDays", "PlayerViews"):
        if fid in template["Resources"]:
            assert "ReservedConcurrentExecutions" not in template["Resources"][fid]["Properties"]


def test_the_waf_rate_rule_exists_only_when_switched_on(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["EnableWaf"]["Type"] == "String"
    assert sorted(parameters["EnableWaf"]["AllowedValues"]) == ["false", "true"]
    assert parameters["EnableWaf"]["Default"] == "false"
    assert parameters["WafRateLimit"]["Type"] == "Number"
    assert int(parameters["WafRateLimit"]["Default"]) == 2000
    assert int(parameters["WafRateLimit"]["MinValue"]) >= 10  # WAF's own minimum
    assert not condition_holds(template, "WafEnabled", {})
    assert condition_holds(template, "WafEnabled", {"EnableWaf": "true"})

    waf = {k: v for k, v in template["Resources"].items() if v.get("Type", "").startswith("AWS::WAFv2::")}
    assert sorted(waf) == ["ApiWebAcl", "ApiWebAclAssociation"]
    assert all(resource.get("Condition") == "WafEnabled" for resource in waf.values())
    # Nothing that exists without the condition may refer to them.
    for logical, resource in template["Resources"].items():
        if resource.get("Condition") != "WafEnabled":
            assert not build_template.references(resource) & set(waf), logical
    for name, output in template.get("Outputs", {}).items():
        if build_template.references(output) & set(waf):
            assert output.get("Condition") == "WafEnabled", name

    acl = waf["ApiWebAcl"]["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Rules"]
    assert rule["Statement"] == {"RateBasedStatement": {
        "Limit": {"Ref": "WafRateLimit"}, "EvaluationWindowSec": 300, "AggregateKeyType": "IP"}}
    assert set(rule["Action"]) == {"Block"}
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    association = waf["ApiWebAclAssociation"]["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}
    assert association["ResourceArn"] == {"Fn::Sub": (
        "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}/stages/${RestAPI.Stage}")}
    # Chalice's REST API stage is the one SAM's RestAPI.Stage names.
    assert template["Resources"]["RestAPI"]["Properties"]["StageName"] == "api"


def test_the_rule_errors_alarm_wants_a_sustained_rate(template: dict[str, Any]) -> None:
    from iot_rules import rule_names

    parameters = template["Parameters"]
    assert parameters["RuleErrorsThreshold"]["Type"] == "Number"
    assert int(parameters["RuleErrorsThreshold"]["Default"]) == 10
    assert parameters["RuleErrorsPeriods"]["Type"] == "Number"
    assert int(parameters["RuleErrorsPeriods"]["Default"]) == 3
    assert int(parameters["RuleErrorsPeriods"]["MinValue"]) == 1
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    for name in rule_names():
        rid = build_template.cfn_name(name)
        alarm = alarms[f"{rid}RuleErrorsAlarm"]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Logs", "IncomingLogEvents")
        assert alarm["Dimensions"] == [
            {"Name": "LogGroupName", "Value": {"Ref": f"{rid}RuleErrorsLogGroup"}}]
        assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
        # N of N: every period of the window, not one bad message.
        assert alarm["EvaluationPeriods"] == {"Ref": "RuleErrorsPeriods"}
        assert alarm["DatapointsToAlarm"] == {"Ref": "RuleErrorsPeriods"}
        assert alarm["Threshold"] == {"Ref": "RuleErrorsThreshold"}
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_public_counter_is_cached_a_minute_and_its_errors_never() -> None:
    from chalice.test import Client

    from app import app
    from chalicelib.config import Settings
    from chalicelib.errors import StorageUnavailable
    from chalicelib.wiring import memory_services, use

    services = memory_services(Settings(jwt_secret="counter-test-secret-0123456789abcdef",
                                        visitor_key="counter-test-visitor-key"))
    services.posts.register(7, "artist-1")
    with use(services), Client(app, stage_name=STAGE) as client:
        answer = client.http.get("/v1/posts/7/counter")
        assert answer.status_code == 200, answer.body
        assert json.loads(answer.body) == {"post_id": 7, "views": 0}
        assert answer.headers["Cache-Control"] == "public, max-age=60"
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        for path, status in (("/v1/posts/404/counter", 404), ("/v1/posts/x/counter", 400)):
            answer = client.http.get(path)
            assert answer.status_code == status, (path, answer.body)
            assert answer.headers["Cache-Control"] == "no-store", path
            assert answer.headers["Access-Control-Allow-Origin"] == "*"

        def unavailable(post_id: str) -> None:
            raise StorageUnavailable("throttled")

        def broken(post_id: str) -> None:
            raise RuntimeError("bug")

        for failure, status in ((unavailable, 503), (broken, 500)):
            services.stats.counter = failure  # type: ignore[method-assign]
            answer = client.http.get("/v1/posts/7/counter")
            assert answer.status_code == status, answer.body
            assert answer.headers["Cache-Control"] == "no-store"


def test_every_template_parameter_is_documented(template: dict[str, Any]) -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", (ROOT / "docs" / "deploy.md").read_text(), re.M))
    assert set(template["Parameters"]) <= documented, set(template["Parameters"]) - documented


# ---- the template's tables in moto's CloudFormation, views through the handlers -------------

@dataclass
class Stack:
    """The template's tables in moto, and how to run a function with its template environment."""

    template: dict[str, Any]
    endpoint: str
    physical: dict[str, str]  # logical id -> physical name
    secrets: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    def environment_of(self, fid: str) -> None:
        """The environment the template gives function ``fid``, pointed at moto."""
        for name in [k for k in os.environ if k.startswith("VTS_")]:
            self.monkeypatch.delenv(name)
        variables = self.template["Resources"][fid]["Properties"]["Environment"]["Variables"]
        for name, value in variables.items():
            if isinstance(value, dict) and value.get("Ref") in self.physical:
                value = self.physical[value["Ref"]]
            self.monkeypatch.setenv(name, str(render(value, self.template)))
        self.monkeypatch.setenv("VTS_DYNAMODB_ENDPOINT", self.endpoint)
        self.monkeypatch.setenv("VTS_DROP_FLUSH_S", "0")

    def check_calls(self, fid: str, calls: list[tuple[str, str, str]]) -> None:
        """Every AWS call the function made is one its role allows."""
        role = function_roles(self.template)[fid]
        tables = {physical: logical for logical, physical in self.physical.items()}
        for service_name, operation, resource in calls:
            if service_name == "ssm":
                arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{resource}"
            elif service_name == "dynamodbstreams":
                arn = f"arn:{tables[resource]}/stream/2026"
                service_name = "dynamodb"
            else:
                table, _, index = resource.partition("/index/")
                arn = f"arn:{tables[table]}" + (f"/index/{index}" if index else "")
            assert allowed(self.template, role, f"{service_name}:{operation}", arn), (
                f"{role} does not allow {service_name}:{operation} on {resource}"
            )


@pytest.fixture
def stack(template: dict[str, Any], moto_endpoint: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # The functions' own boto3 clients (SSM for secrets, iot-data for acks) go to moto.
        "AWS_ENDPOINT_URL_SSM": moto_endpoint, "AWS_ENDPOINT_URL_IOT_DATA": moto_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    suffix = uuid.uuid4().hex[:8]
    tables = {}
    for logical, resource in resources_of(template, "AWS::DynamoDB::Table").items():
        resource = json.loads(json.dumps(resource))
        resource["Properties"]["TableName"] += f"-{suffix}"
        tables[logical] = resource
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"vts-test-{suffix}"
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": tables}),
    )
    cloudformation.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1})
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    }
    # Fixed values: a function container keeps what it read from SSM for its life.
    secrets = {"jwt": "infra-test-jwt-secret-0123456789abcdef",
               "visitor": "infra-test-visitor-key-0123456789abcdef"}
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="us-east-1")
    for parameter, value in (("JwtSecretParameter", secrets["jwt"]),
                             ("VisitorKeyParameter", secrets["visitor"])):
        ssm.put_parameter(Name=template["Parameters"][parameter]["Default"], Value=value,
                          Type="SecureString", Overwrite=True)
    yield Stack(template, moto_endpoint, physical, secrets, monkeypatch)
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    cloudformation.delete_stack(StackName=name)
    for logical in tables:  # DeletionPolicy Retain keeps them, as in AWS
        dynamodb.delete_table(TableName=physical[logical])


class AwsCalls:
    """(service, operation, resource) of the AWS calls boto3 makes within ``recording()``.

    botocore copies the session's handlers into each client it creates, so the handler stays
    in clients made meanwhile; it records only while a recording is open.
    """

    def __init__(self) -> None:
        self.current: list[tuple[str, str, str]] | None = None

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        calls = self.current
        if calls is None:
            return
        service = model.service_model.service_name
        if service == "dynamodb":
            names = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
            index = f"/index/{params['IndexName']}" if "IndexName" in params else ""
            calls.extend((service, model.name, name + index) for name in names)
        elif service == "ssm":
            calls.extend((service, model.name, name) for name in params.get("Names", []))
        else:
            calls.append((service, model.name, json.dumps(params, default=str)))

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, str, str]]]:
        self.current = []
        try:
            yield self.current
        finally:
            self.current = None


@pytest.fixture
def aws_calls() -> Iterator[AwsCalls]:
    import boto3

    recorder = AwsCalls()
    session = boto3._get_default_session()
    session.events.register("before-parameter-build", recorder.record, unique_id="vts-infra-test")
    yield recorder
    session.events.unregister("before-parameter-build", unique_id="vts-infra-test")


def stream_event(stack: Stack) -> dict[str, Any]:
    """The events table's stream records as the Lambda event source mapping delivers them."""
    import boto3

    streams = boto3.client("dynamodbstreams", endpoint_url=stack.endpoint, region_name="us-east-1")
    table = stack.physical["EventsTable"]
    arn = boto3.client("dynamodb", endpoint_url=stack.endpoint,
                       region_name="us-east-1").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator)["Records"]:
            record["eventSourceARN"] = arn
            record["dynamodb"].pop("ApproximateCreationDateTime", None)
            records.append(record)
    return {"Records": json.loads(json.dumps(records, default=str))}


def test_the_template_tables_take_views_through_every_function_within_its_role(
    template: dict[str, Any], stack: Stack, aws_calls: AwsCalls
) -> None:
    from chalice.test import Client

    from app import app
    from chalicelib.auth import issue_token
    from chalicelib.config import get_settings
    from chalicelib.wiring import dynamodb_client
    from tests.conftest import load_event

    now = datetime.now(UTC)
    service = issue_token(stack.secrets["jwt"], sub="platform", role="service", now=now)
    artist = issue_token(stack.secrets["jwt"], sub="artist-1", role="artist", now=now)
    report = load_event("iot_player_view")
    player_key, post_id = report["topic_player_key"], report["post_id"]
    report["received_at"] = int(now.timestamp() * 1000)

    with Client(app, stage_name=STAGE) as client:
        # The API: secrets only as SSM names, resolved at runtime.
        stack.environment_of("APIHandler")
        settings = get_settings()
        assert settings.jwt_secret == "" and settings.jwt_secret_param
        json_type = {"Content-Type": "application/json"}
        as_service = {"Authorization": f"Bearer {service}", **json_type}
        beacon = {"User-Agent": BROWSER_UA, "Content-Type": "text/plain;charset=UTF-8"}
        with aws_calls.recording() as calls:
            for post in (41, post_id):
                answer = client.http.put(f"/v1/posts/{post}", headers=as_service,
                                         body=json.dumps({"owner_id": "artist-1"}))
                assert answer.status_code == 201, answer.body
            answer = client.http.put(f"/v1/players/{player_key}", headers=as_service,
                                     body=json.dumps({"owner_id": "owner-9", "country": "BR"}))
            assert answer.status_code == 201, answer.body
            assert client.http.post("/v1/posts/41/views", headers=beacon, body="").status_code == 201
            assert client.http.post("/v1/posts/41/views", headers=beacon, body="").status_code == 204
            for path in ("/v1/posts/41/stats", "/v1/artists/artist-1/posts", "/v1/posts/41/counter",
                         "/v1/health"):
                answer = client.http.get(path, headers={"Authorization": f"Bearer {artist}"})
                assert answer.status_code == 200, (path, answer.body)
        assert ("ssm", "GetParameters") in {(s, o) for s, o, _ in calls}
        stack.check_calls("APIHandler", calls)

        stack.environment_of("PlayerViews")
        with aws_calls.recording() as calls:
            answer = client.lambda_.invoke("player_views", report)
        assert answer.payload["outcome"] == "impression", answer.payload
        stack.check_calls("PlayerViews", calls)

        events = dynamodb_client(get_settings()).scan(TableName=stack.physical["EventsTable"])["Items"]
        assert sorted(int(item["post"]["N"]) for item in events) == sorted([41, post_id])
        assert all("expires_at" in item for item in events)

        stack.environment_of("Aggregate")
        batch = stream_event(stack)
        assert len(batch["Records"]) == 2
        with aws_calls.recording() as calls:
            answer = client.lambda_.invoke("aggregate", batch)
        assert answer.payload == {"batchItemFailures": []}
        stack.check_calls("Aggregate", calls)

        stack.environment_of("CloseDays")
        with aws_calls.recording() as calls:
            client.lambda_.invoke("close_days", client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
        assert ("dynamodb", "GetItem") in {(s, o) for s, o, _ in calls}  # the watermark
        stack.check_calls("CloseDays", calls)

        stack.environment_of("APIHandler")
        answer = client.http.get("/v1/posts/41/counter")
        assert json.loads(answer.body)["views"] == 1


# ---- operator tools agree with the stack -----------------------------------------------------

def test_register_player_creates_the_same_policy_as_the_stack(template: dict[str, Any]) -> None:
    from vtsops.iot_provision import player_policy_document

    def normalised(document: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str]]:
        rows = []
        for statement in document["Statement"]:
            resources = statement["Resource"]
            resources = [resources] if isinstance(resources, str) else resources
            rows.append((statement["Action"], tuple(sorted(resources)),
                         json.dumps(statement.get("Condition"), sort_keys=True)))
        return sorted(rows)

    stack_policy = template["Resources"]["PlayerIotPolicy"]["Properties"]
    assert stack_policy["PolicyName"] == f"vts-{STAGE}-player"
    assert normalised(render(stack_policy["PolicyDocument"], template)) == normalised(
        player_policy_document("us-east-1", ACCOUNT)
    )


def test_register_bridge_creates_the_same_policy_as_the_stack(template: dict[str, Any]) -> None:
    from vtsops.iot_provision import bridge_policy_document, iot_arns, policy_grants

    stack_policy = template["Resources"]["PlayerBridgeIotPolicy"]["Properties"]
    assert policy_grants(render(stack_policy["PolicyDocument"], template)) == policy_grants(
        bridge_policy_document(iot_arns("us-east-1", ACCOUNT))
    )


def test_vts_secrets_creates_keeps_and_rotates_the_stack_parameters(
    template: dict[str, Any], moto_endpoint: str
) -> None:
    import boto3
    from vtsops.cmd_secrets import ensure_secrets, parameter_name

    stage = f"t{uuid.uuid4().hex[:8]}"
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert template["Parameters"]["JwtSecretParameter"]["Default"] == parameter_name(STAGE, "jwt-secret")
    assert template["Parameters"]["VisitorKeyParameter"]["Default"] == parameter_name(STAGE, "visitor-key")

    def values() -> dict[str, str]:
        names = [parameter_name(stage, n) for n in ("jwt-secret", "visitor-key")]
        answer = ssm.get_parameters(Names=names, WithDecryption=True)
        assert {p["Type"] for p in answer["Parameters"]} == {"SecureString"}
        return {p["Name"]: p["Value"] for p in answer["Parameters"]}

    assert ensure_secrets(ssm, stage, []) == {"jwt-secret": "created", "visitor-key": "created"}
    first = values()
    assert len(set(first.values())) == 2 and all(len(v) >= 48 for v in first.values())
    assert ensure_secrets(ssm, stage, []) == {"jwt-secret": "kept", "visitor-key": "kept"}
    assert values() == first
    assert ensure_secrets(ssm, stage, ["visitor-key"]) == {"jwt-secret": "kept", "visitor-key": "rotated"}
    second = values()
    jwt, key = parameter_name(stage, "jwt-secret"), parameter_name(stage, "visitor-key")
    assert second[jwt] == first[jwt] and second[key] != first[key]
