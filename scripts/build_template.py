#!/usr/bin/env python3
"""Build the AWS stack of one stage from the code's single sources.

Writes the CloudFormation that ``chalice package --merge-template`` deep-merges into the SAM
template Chalice generates, built from:

* ``infra/resources.yaml`` (parameters, alarm topic) and ``infra/functions/<name>.yaml`` for
  each Lambda the app defines (queues, the stream mapping, function-specific settings);
* ``chalicelib/storage/tables.py``: the DynamoDB tables (on demand, TTL, stream, GSIs,
  point-in-time recovery, KMS encryption), named ``vts-{stage}-{name}`` as Settings expects;
* ``iot_rules/``: each topic rule, its invoke permission (scoped to the rule's ARN), its
  error log group and role, and the player IoT policy derived from the rule's topic;
* ``scripts/vtsops/iot_provision.py``: the policy of trusted bridges
  (``bridge_policy_document``, the one ``vts register-bridge`` creates);
* the app itself: per function its name ``vts-{stage}-{name}``, log group, the table
  environment (Refs), an error alarm; every queue gets a "not empty" alarm;
* the app's recording routes (``chalicelib.function_url.RECORDING_ROUTES``): a second front
  door, by the parameter ``RecordingDoor`` either an API Gateway HTTP API into the same API
  Lambda with payload format 1.0, the stage's throttling and the routes' CORS
  (docs/adr/0014-http-api-front-door.md), or a Lambda function URL with the same CORS
  (docs/adr/0017-function-url-door.md).

The IAM policy of each function is ``.chalice/policy-<function>.json``
(``autogen_policy: false``); those files name resources of this template through
intrinsics (``Fn::GetAtt``/``Fn::Sub``), and this script fails if one names a resource
or parameter that the stack does not have. See docs/adr/ for why.

    scripts/build_template.py --stage prod                  # build/prod-merge.json only
    scripts/build_template.py --stage prod --package build/prod
        # + chalice package, a check that every runtime pin is in the zip, cfn-lint

Offline and without credentials (chalice reuses its cached dependency zip after a first
run that can reach the package index).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):  # chalicelib, iot_rules; vtsops
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

INFRA = ROOT / "infra"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
SSM_PARAMETERS = {  # template parameter -> default SSM name (per stage)
    "JwtSecretParameter": "/vts/{stage}/jwt-secret",
    "VisitorKeyParameter": "/vts/{stage}/visitor-key",
}
ERRORS_ALARM = {"Period": 300, "Threshold": 1}
# Lambda's advanced logging controls, on every function. JSON format is what allows a system
# log level; at WARN, Lambda writes no START/END/REPORT lines (~300 bytes per invocation, a
# tenth of the bill per million views: bench/bench_price.py). Duration, errors and throttles
# stay in the AWS/Lambda metrics. `print`ed lines (the EMF metrics) stay plain text and come
# in at INFO, so the application level must stay INFO (docs/deploy.md "Logs").
LOG_LEVEL_PARAMETER = {
    "LambdaSystemLogLevel": {
        "Type": "String",
        "Default": "WARN",
        "AllowedValues": ["DEBUG", "INFO", "WARN"],
        "Description": "Lambda's own log lines: WARN writes none per invocation (the cheap "
                       "default), INFO adds START and REPORT (duration, memory) for each",
    }
}
# The IoT rule's error log: one bad delivery is noise (it stays in the log group); the alarm
# wants errors in every 5-minute period of a row. Template parameters, these defaults.
RULE_ERRORS_ALARM = {"Period": 300, "Threshold": 10, "EvaluationPeriods": 3}
RULE_ERRORS_PARAMETERS = {
    "RuleErrorsThreshold": {
        "Type": "Number",
        "Default": RULE_ERRORS_ALARM["Threshold"],
        "MinValue": 0,
        "Description": "IoT rule errors (undelivered reports) per 5 minutes above which a "
                       "period counts as failing",
    },
    "RuleErrorsPeriods": {
        "Type": "Number",
        "Default": RULE_ERRORS_ALARM["EvaluationPeriods"],
        "MinValue": 1,
        "MaxValue": 288,
        "Description": "Consecutive failing 5-minute periods before the rule-errors alarm fires",
    },
}
QUEUE_TYPE = "AWS::SQS::Queue"
DISPOSABLE = {QUEUE_TYPE, "AWS::Logs::LogGroup"}
PSEUDO = {
    "AWS::AccountId", "AWS::Region", "AWS::Partition", "AWS::StackName", "AWS::StackId",
    "AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs",
}


# The recording routes (method, Chalice path): what embeds call on every look, behind the
# recording door the parameter RecordingDoor picks: an HTTP API ($1.00 against the REST API's
# $3.50 per million requests) or a Lambda function URL (no per-request charge). Stats,
# registry, dashboard and health stay on Chalice's REST API only.
RECORDING_DOORS = {
    "RecordingDoor": {
        "Type": "String",
        "Default": "http-api",
        "AllowedValues": ["http-api", "function-url"],
        "Description": "The recording routes' own front door: http-api (throttled at the stage "
                       "by ApiThrottleRate) or function-url (no per-request charge; throttled "
                       "by the API's reserved concurrency only)",
    }
}
HTTP_API_DOOR, URL_DOOR = "RecordingDoorIsHttpApi", "RecordingDoorIsFunctionUrl"
HTTP_API_PAYLOAD_FORMAT = "1.0"


class BuildError(Exception):
    """The sources disagree (a policy names a missing resource, a function has no fragment)."""


# ---- names --------------------------------------------------------------------------------

def cfn_name(name: str) -> str:
    """The logical ID Chalice gives a resource named ``name`` (``close_days`` -> CloseDays)."""
    from chalice.utils import to_cfn_resource_name

    return str(to_cfn_resource_name(name))


def function_id(function: str) -> str:
    # Chalice calls the API Lambda "APIHandler", and its role "ApiHandlerRole".
    return "APIHandler" if function == "api_handler" else cfn_name(function)


def table_id(logical: str) -> str:
    return f"{cfn_name(logical)}Table"


def physical_table_name(stage: str, logical: str) -> str:
    return f"vts-{stage}-{logical}"


def function_name(stage: str, function: str) -> str:
    return f"vts-{stage}-{function}"


# ---- sources ------------------------------------------------------------------------------

def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise BuildError(f"{path}: expected a mapping")
    return data


def deep_merge(base: Any, extra: Any) -> Any:
    """Merge ``extra`` into ``base`` the way ``chalice package --merge-template`` does:
    mappings merge key by key, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(extra, dict):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = deep_merge(base.get(key), value)
        return merged
    return copy.deepcopy(extra)


def app_functions() -> list[str]:
    """The Lambda functions the Chalice app defines, by Chalice name."""
    from app import app

    names: list[str] = []
    if app.routes:
        names.append("api_handler")
    names += [f.name for f in app.pure_lambda_functions]
    names += [source.name for source in app.event_sources]
    return sorted(set(names))


def policy_files() -> dict[str, Path]:
    """function -> its IAM policy file, as .chalice/config.json configures it."""
    config = json.loads(CHALICE_CONFIG.read_text())
    if config.get("autogen_policy", True):
        raise BuildError(".chalice/config.json must set autogen_policy: false")
    files = {}
    for function, settings in config.get("lambda_functions", {}).items():
        if "iam_policy_file" in settings:
            files[function] = ROOT / ".chalice" / settings["iam_policy_file"]
    return files


# ---- generated resources ------------------------------------------------------------------

def table_resources(stage: str) -> dict[str, Any]:
    from chalicelib.storage.tables import TABLES, create_table_request

    resources: dict[str, Any] = {}
    for logical, spec in TABLES.items():
        request = create_table_request(logical, physical_table_name(stage, logical))
        properties: dict[str, Any] = {
            "TableName": request["TableName"],
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": request["KeySchema"],
            "AttributeDefinitions": request["AttributeDefinitions"],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            # DynamoDB always encrypts; this picks the AWS managed KMS key, whose use is
            # visible in CloudTrail.
            "SSESpecification": {"SSEEnabled": True},
        }
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = request.get(index_kind) or spec.get(index_kind)
            if indexes:
                properties[index_kind] = [
                    {k: v for k, v in index.items() if k != "ProvisionedThroughput"}
                    for index in indexes
                ]
        stream = request.get("StreamSpecification")
        if stream and stream.get("StreamEnabled", True):
            properties["StreamSpecification"] = {"StreamViewType": stream["StreamViewType"]}
        if spec.get("TimeToLive"):
            properties["TimeToLiveSpecification"] = {
                "AttributeName": spec["TimeToLive"],
                "Enabled": True,
            }
        resources[table_id(logical)] = {
            "Type": "AWS::DynamoDB::Table",
            # Data outlives stacks: deleting the stack keeps the tables (docs/deploy.md).
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": properties,
        }
    return resources


def table_environment() -> dict[str, Any]:
    from chalicelib.storage.tables import TABLES

    return {f"VTS_{logical.upper()}_TABLE": {"Ref": table_id(logical)} for logical in TABLES}


def function_resources(stage: str, function: str) -> dict[str, Any]:
    """Name, log group, table environment and error alarm of one function."""
    fid = function_id(function)
    log_group = f"{cfn_name(function)}LogGroup"
    return {
        fid: {
            "Properties": {
                "FunctionName": function_name(stage, function),
                "Environment": {"Variables": table_environment()},
                "LoggingConfig": {
                    "LogFormat": "JSON",
                    "ApplicationLogLevel": "INFO",
                    "SystemLogLevel": {"Ref": "LambdaSystemLogLevel"},
                    "LogGroup": {"Ref": log_group},
                },
            }
        },
        # Created by the stack (not on first log line) so the role can name it exactly.
        log_group: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": f"/aws/lambda/{function_name(stage, function)}",
                "RetentionInDays": 30,
            },
        },
        f"{fid}ErrorsAlarm": alarm(
            f"{function} raised errors (unhandled exceptions, timeouts)",
            namespace="AWS/Lambda",
            metric="Errors",
            dimensions={"FunctionName": {"Ref": fid}},
            statistic="Sum",
            period=ERRORS_ALARM["Period"],
            threshold=ERRORS_ALARM["Threshold"],
            comparison="GreaterThanOrEqualToThreshold",
        ),
    }


def alarm(
    description: str,
    *,
    namespace: str,
    metric: str,
    dimensions: dict[str, Any],
    statistic: str,
    period: int,
    threshold: Any,
    comparison: str = "GreaterThanThreshold",
    evaluation_periods: Any = 1,
    datapoints_to_alarm: Any = None,
) -> dict[str, Any]:
    """A CloudWatch alarm to the alarm topic; numbers may be intrinsics (``Ref`` a parameter).
    ``datapoints_to_alarm`` defaults to all of ``evaluation_periods``."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Statistic": statistic,
            "Period": period,
            "EvaluationPeriods": evaluation_periods,
            "DatapointsToAlarm": (evaluation_periods if datapoints_to_alarm is None
                                  else datapoints_to_alarm),
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
        },
    }


def thing_topic(topic_filter: str) -> str:
    """The topic of the one player a connection may act for: the filter's single ``+`` level
    (the player key) becomes the connection's own Thing name."""
    levels = topic_filter.split("/")
    if levels.count("+") != 1 or "#" in levels:
        raise BuildError(f"topic filter {topic_filter!r}: expected exactly one '+' level")
    return "/".join("${!iot:Connection.Thing.ThingName}" if p == "+" else p for p in levels)


def iot_arn(kind: str, rest: str) -> dict[str, str]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iot:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/{rest}"}


def player_policy(stage: str, topics: list[str]) -> dict[str, Any]:
    """The IoT policy every player certificate gets: its own client id, its own topics.

    Players are Things named by their player key, attached to their certificate with
    exclusive association, so ``iot:Connection.Thing.ThingName`` is the key whatever the
    client id; p3a firmware connects as ``p3a-{player_key}``.
    """
    thing = "${!iot:Connection.Thing.ThingName}"
    return {
        "Type": "AWS::IoT::Policy",
        "Properties": {
            "PolicyName": f"vts-{stage}-player",
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "iot:Connect",
                        "Resource": [iot_arn("client", thing), iot_arn("client", f"p3a-{thing}")],
                        "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Publish",
                        "Resource": [iot_arn("topic", t) for t in topics],
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Subscribe",
                        "Resource": [iot_arn("topicfilter", f"{t}/ack") for t in topics],
                    },
                    {
                        "Effect": "Allow",
                        "Action": "iot:Receive",
                        "Resource": [iot_arn("topic", f"{t}/ack") for t in topics],
                    },
                ],
            },
        },
    }


def bridge_policy(stage: str) -> dict[str, Any]:
    """The IoT policy of trusted bridges (DESIGN §7): ``bridge_policy_document``, the one
    ``vts register-bridge`` creates, with ARNs of the stack's account and region."""
    from vtsops.iot_provision import bridge_policy_document

    def arn(kind: str, rest: str) -> dict[str, str]:
        # IoT policy variables stay literal inside Fn::Sub as ${!...}.
        return iot_arn(kind, rest.replace("${", "${!"))

    return {
        "Type": "AWS::IoT::Policy",
        "Properties": {
            "PolicyName": f"vts-{stage}-bridge",
            "PolicyDocument": bridge_policy_document(arn),
        },
    }


def rule_resources(stage: str, functions: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The topic rules whose functions the app defines, and the player topics they read."""
    from iot_rules import load_rule, rule_names

    resources: dict[str, Any] = {}
    topics: list[str] = []
    for name in rule_names():
        rule = load_rule(name)
        missing = [f for f in rule.functions if f not in functions]
        if missing:
            print(f"build_template: rule {name} skipped: the app has no {', '.join(missing)}",
                  file=sys.stderr)
            continue
        rid = cfn_name(name)
        error_logs = f"{rid}RuleErrorsLogGroup"
        error_role = f"{rid}RuleErrorRole"
        resources[f"{rid}TopicRule"] = rule.cloudformation(
            function_arn=lambda f: {"Fn::GetAtt": [function_id(f), "Arn"]},
            error_log_group=lambda _name, ref=error_logs: {"Ref": ref},
            error_role_arn={"Fn::GetAtt": [error_role, "Arn"]},
            # Topic rule names allow only [A-Za-z0-9_]; one per stage and account.
            rule_name=f"{rule.name}_{stage}",
        )
        for function in rule.functions:
            resources[f"{rid}{function_id(function)}InvokePermission"] = {
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "FunctionName": {"Fn::GetAtt": [function_id(function), "Arn"]},
                    "Action": "lambda:InvokeFunction",
                    "Principal": "iot.amazonaws.com",
                    "SourceAccount": {"Ref": "AWS::AccountId"},
                    "SourceArn": {"Fn::GetAtt": [f"{rid}TopicRule", "Arn"]},
                },
            }
        log_name = rule.error_action["cloudwatchLogs"]["logGroup"]
        resources[error_logs] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": f"/vts/{stage}/iot/{log_name}", "RetentionInDays": 30},
        }
        resources[error_role] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": {"Service": "iot.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }],
                },
                "Policies": [{
                    "PolicyName": "WriteRuleErrors",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": {"Fn::GetAtt": [error_logs, "Arn"]},
                        }],
                    },
                }],
            },
        }
        # Each event in the error log is a report IoT could not hand to the Lambda; CloudWatch
        # counts them per log group (IncomingLogEvents). A sustained rate alarms, not a single
        # bad message: more than RuleErrorsThreshold in each of RuleErrorsPeriods 5-minute
        # periods in a row (a period without errors has no data: not breaching).
        resources[f"{rid}RuleErrorsAlarm"] = alarm(
            f"IoT rule {rule.name} keeps failing to deliver reports: more than "
            f"RuleErrorsThreshold (default {RULE_ERRORS_ALARM['Threshold']}) errors in each of "
            f"RuleErrorsPeriods (default {RULE_ERRORS_ALARM['EvaluationPeriods']}) 5-minute "
            "periods in a row (see the error log group)",
            namespace="AWS/Logs",
            metric="IncomingLogEvents",
            dimensions={"LogGroupName": {"Ref": error_logs}},
            statistic="Sum",
            period=RULE_ERRORS_ALARM["Period"],
            threshold={"Ref": "RuleErrorsThreshold"},
            evaluation_periods={"Ref": "RuleErrorsPeriods"},
        )
        topics.append(thing_topic(rule.topic_filter))
    return resources, topics


def http_api_cors(routes: list[Any]) -> dict[str, Any]:
    """One CORS configuration for the HTTP API (API Gateway answers preflights and sets the
    headers itself, ignoring the Lambda's) from the Chalice CORS of ``routes``, which must
    agree on the origin."""
    origins = set()
    headers: set[str] = set()
    expose: set[str] = set()
    ages = []
    for entry in routes:
        if not entry.cors:
            raise BuildError(f"{entry.method} {entry.uri_pattern}: an HTTP API route needs CORS "
                             "in app.py")
        sent = entry.cors.get_access_control_headers()  # what Chalice sends on the REST API
        origins.add(sent["Access-Control-Allow-Origin"])
        headers |= set(sent["Access-Control-Allow-Headers"].split(","))
        expose |= set(sent.get("Access-Control-Expose-Headers", "").split(",")) - {""}
        if "Access-Control-Max-Age" in sent:
            ages.append(int(sent["Access-Control-Max-Age"]))
        if "Access-Control-Allow-Credentials" in sent:
            raise BuildError(f"{entry.method} {entry.uri_pattern}: no credentials on the HTTP API")
    if len(origins) != 1:
        raise BuildError(f"the HTTP API routes disagree on their CORS origin: {sorted(origins)}")
    config: dict[str, Any] = {
        "AllowOrigins": sorted(origins),
        "AllowMethods": sorted({entry.method for entry in routes}),
        "AllowHeaders": sorted(headers),
    }
    if expose:
        config["ExposeHeaders"] = sorted(expose)
    if ages:
        config["MaxAge"] = max(ages)
    return config


def recording_routes() -> list[Any]:
    """The app's route entries of ``RECORDING_ROUTES`` (the build fails on a missing one)."""
    from app import app
    from chalicelib.function_url import RECORDING_ROUTES

    entries = []
    for method, path in RECORDING_ROUTES:
        entry = app.routes.get(path, {}).get(method)
        if entry is None:
            raise BuildError(f"RECORDING_ROUTES names {method} {path}, which app.py does not route")
        entries.append(entry)
    return entries


def http_api_resources(stage: str, entries: list[Any]) -> dict[str, Any]:
    """The recording routes behind an API Gateway HTTP API (with ``RecordingDoor=http-api``):
    routes into one Lambda proxy integration of the API Lambda (payload format 1.0), the
    ``$default`` stage throttled like the REST API's, the invoke permission."""
    api, integration = "RecordingHttpApi", "RecordingHttpApiIntegration"
    resources: dict[str, Any] = {
        api: {
            "Type": "AWS::ApiGatewayV2::Api",
            "Properties": {
                "Name": f"vts-{stage}-record",
                "Description": "VTS recording routes (views, pixel, vts.js, counter)",
                "ProtocolType": "HTTP",
                "CorsConfiguration": http_api_cors(entries),
            },
        },
        integration: {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": {"Ref": api},
                "IntegrationType": "AWS_PROXY",
                "IntegrationUri": {"Fn::GetAtt": [function_id("api_handler"), "Arn"]},
                "PayloadFormatVersion": HTTP_API_PAYLOAD_FORMAT,
            },
        },
        f"{api}Stage": {
            "Type": "AWS::ApiGatewayV2::Stage",
            "Properties": {
                "ApiId": {"Ref": api},
                "StageName": "$default",
                "AutoDeploy": True,
                "Description": "Throttled by ApiThrottleRate and ApiThrottleBurst, as the REST API",
                "DefaultRouteSettings": {
                    "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
                    "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
                },
            },
        },
        f"{api}InvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Ref": function_id("api_handler")},
                "Action": "lambda:InvokeFunction",
                "Principal": "apigateway.amazonaws.com",
                "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                         f"${{AWS::AccountId}}:${{{api}}}/*"},
            },
        },
    }
    for entry in entries:
        resources[f"{cfn_name(entry.view_name)}HttpRoute"] = {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": {"Ref": api},
                "RouteKey": f"{entry.method} {entry.uri_pattern}",
                "AuthorizationType": "NONE",
                "Target": {"Fn::Sub": f"integrations/${{{integration}}}"},
            },
        }
    for resource in resources.values():
        resource["Condition"] = HTTP_API_DOOR
    return resources


def function_url_resources(entries: list[Any]) -> dict[str, Any]:
    """The recording routes behind the API Lambda's function URL (with
    ``RecordingDoor=function-url``): public (AuthType NONE, which since October 2025 takes
    both permissions below), the routes' CORS, answered by Lambda itself. The app serves the
    recording routes only on it (chalicelib/function_url.py)."""
    url = "RecordingFunctionUrl"
    function = {"Ref": function_id("api_handler")}
    resources: dict[str, Any] = {
        url: {
            "Type": "AWS::Lambda::Url",
            "Properties": {
                "TargetFunctionArn": {"Fn::GetAtt": [function_id("api_handler"), "Arn"]},
                "AuthType": "NONE",
                "InvokeMode": "BUFFERED",
                "Cors": http_api_cors(entries),
            },
        },
        f"{url}Permission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": function,
                "Action": "lambda:InvokeFunctionUrl",
                "Principal": "*",
                "FunctionUrlAuthType": "NONE",
            },
        },
        f"{url}InvokePermission": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": function,
                "Action": "lambda:InvokeFunction",
                "Principal": "*",
                "InvokedViaFunctionUrl": True,
            },
        },
    }
    for resource in resources.values():
        resource["Condition"] = URL_DOOR
    return resources


def recording_door(stage: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Resources, conditions and the output ``RecordingEndpointURL`` of the recording door:
    the HTTP API or the function URL, as the parameter ``RecordingDoor`` says."""
    entries = recording_routes()
    resources = http_api_resources(stage, entries) | function_url_resources(entries)
    conditions = {
        HTTP_API_DOOR: {"Fn::Equals": [{"Ref": "RecordingDoor"}, "http-api"]},
        URL_DOOR: {"Fn::Equals": [{"Ref": "RecordingDoor"}, "function-url"]},
    }
    # The URL ends in "/"; embeds append "/v1/vts.js" to the base, so publish it without one.
    url_base = {"Fn::Join": ["", ["https://", {"Fn::Select": [2, {"Fn::Split": [
        "/", {"Fn::GetAtt": ["RecordingFunctionUrl", "FunctionUrl"]}]}]}]]}
    outputs = {
        "RecordingEndpointURL": {
            "Description": "The recording front door to publish (the HTTP API's or the function "
                           "URL's, by RecordingDoor): embeds load <this>/v1/vts.js and record "
                           "there; stats stay on EndpointURL",
            "Value": {"Fn::If": [HTTP_API_DOOR,
                                 {"Fn::GetAtt": ["RecordingHttpApi", "ApiEndpoint"]}, url_base]},
        },
    }
    return resources, conditions, outputs


def queue_alarms(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{qid}NotEmptyAlarm": alarm(
            f"{qid} holds messages: work that failed and waits for an operator",
            namespace="AWS/SQS",
            metric="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": {"Fn::GetAtt": [qid, "QueueName"]}},
            statistic="Maximum",
            period=300,
            threshold=0,
        )
        for qid, resource in sorted(resources.items())
        if resource.get("Type") == QUEUE_TYPE
    }


# ---- the template -------------------------------------------------------------------------

def build(stage: str, functions: list[str] | None = None) -> dict[str, Any]:
    """The merge template for ``stage`` (``functions`` defaults to the app's)."""
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", stage):
        raise BuildError(f"stage {stage!r}: use lower-case letters and digits")
    functions = app_functions() if functions is None else functions
    template = load_yaml(INFRA / "resources.yaml")
    parameters = template.setdefault("Parameters", {})
    parameters["Stage"] = {
        "Type": "String",
        "Default": stage,
        "AllowedValues": [stage],
        "Description": "The Chalice stage this template was packaged for",
    }
    for parameter, default in SSM_PARAMETERS.items():
        parameters[parameter]["Default"] = default.format(stage=stage)
    parameters.update(copy.deepcopy(LOG_LEVEL_PARAMETER))

    resources = template.setdefault("Resources", {})
    resources.update(table_resources(stage))
    for function in functions:
        fragment = INFRA / "functions" / f"{function}.yaml"
        if not fragment.exists():
            raise BuildError(f"the app defines {function} but {fragment.relative_to(ROOT)} is missing")
        template = deep_merge(template, load_yaml(fragment))
        template = deep_merge(template, {"Resources": function_resources(stage, function)})
    for fragment in sorted((INFRA / "functions").glob("*.yaml")):
        if fragment.stem not in functions:
            print(f"build_template: {fragment.relative_to(ROOT)} skipped: the app has no "
                  f"{fragment.stem}", file=sys.stderr)
    if "api_handler" in functions:
        door_resources, door_conditions, door_outputs = recording_door(stage)
        template["Parameters"].update(copy.deepcopy(RECORDING_DOORS))
        template.setdefault("Conditions", {}).update(door_conditions)
        template["Resources"].update(door_resources)
        template.setdefault("Outputs", {}).update(door_outputs)
    rules, topics = rule_resources(stage, functions)
    template["Resources"].update(rules)
    if rules:
        template["Parameters"].update(copy.deepcopy(RULE_ERRORS_PARAMETERS))
    if topics:
        template["Resources"]["PlayerIotPolicy"] = player_policy(stage, topics)
        template["Resources"]["PlayerBridgeIotPolicy"] = bridge_policy(stage)
        outputs = template.setdefault("Outputs", {})
        outputs["PlayerIotPolicyName"] = {"Value": {"Ref": "PlayerIotPolicy"}}
        outputs["PlayerBridgeIotPolicyName"] = {"Value": {"Ref": "PlayerBridgeIotPolicy"}}
    template["Resources"].update(queue_alarms(template["Resources"]))
    for resource in template["Resources"].values():
        # Stated, not defaulted: queues and logs go with the stack (the tables do not).
        if resource.get("Type") in DISPOSABLE:
            resource.setdefault("DeletionPolicy", "Delete")
            resource.setdefault("UpdateReplacePolicy", "Delete")
    outputs = template.setdefault("Outputs", {})
    for logical in ("events", "aggregates", "registry"):
        outputs[f"{table_id(logical)}Name"] = {"Value": {"Ref": table_id(logical)}}
    check_policies(template, functions)
    return template


def references(node: Any) -> set[str]:
    """Logical names an intrinsic-laden document refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if name not in variables:
                        found.add(name.split(".")[0])
                found |= references(variables)
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def check_policies(template: dict[str, Any], functions: list[str]) -> None:
    """Each function's policy file exists and names only what the stack will have."""
    files = policy_files()
    known = set(template.get("Resources", {})) | set(template.get("Parameters", {})) | PSEUDO
    known |= {function_id(f) for f in functions}  # Chalice creates the functions themselves
    for function in functions:
        path = files.get(function)
        if path is None or not path.exists():
            raise BuildError(f"{function} has no iam_policy_file in .chalice/config.json")
        unknown = references(json.loads(path.read_text())) - known
        if unknown:
            raise BuildError(f"{path.relative_to(ROOT)} names {sorted(unknown)}, "
                             "which the stack does not define")


# ---- packaging ----------------------------------------------------------------------------

def write_template(template: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(template, indent=2, sort_keys=False) + "\n")


def runtime_pins() -> list[str]:
    """Distribution names pinned in requirements.txt (what the Lambda zip must contain)."""
    pins = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            pins.append(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0])
    return pins


def missing_from_zip(zip_path: Path) -> list[str]:
    """Pinned runtime distributions whose ``*.dist-info`` is not in the deployment zip."""
    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "_", name).lower()

    with zipfile.ZipFile(zip_path) as archive:
        present = {
            canonical(top.split("-", 1)[0])
            for top in {n.split("/", 1)[0] for n in archive.namelist()}
            if top.endswith(".dist-info")
        }
    return [pin for pin in runtime_pins() if canonical(pin) not in present]


def package(stage: str, out: Path, lint: bool = True) -> Path:
    """``chalice package`` with the merge template into ``out``; returns ``out/sam.json``."""
    merge = out.with_name(f"{out.name}-merge.json")
    write_template(build(stage), merge)
    env = dict(os.environ)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    chalice = Path(sys.executable).with_name("chalice")
    answer = subprocess.run(
        [str(chalice), "package", "--stage", stage, "--merge-template", str(merge), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    sys.stdout.write(answer.stdout)
    sys.stderr.write(answer.stderr)
    if answer.returncode != 0:
        raise BuildError(f"chalice package failed ({answer.returncode})")
    missing = missing_from_zip(out / "deployment.zip")
    if missing:
        raise BuildError(
            f"the Lambda zip lacks {', '.join(missing)} (no Linux wheel for the Lambda runtime, "
            "or the package index was unreachable): what would deploy is not what the tests ran"
        )
    sam = out / "sam.json"
    if lint:
        lint_template(sam)
    return sam


def lint_template(path: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    answer = subprocess.run([str(cfn_lint), "--", str(path)], capture_output=True, text=True, check=False)
    sys.stdout.write(answer.stdout)
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    if answer.returncode & 2 or answer.returncode & 1:
        raise BuildError(f"cfn-lint found errors in {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--out", type=Path, help="where to write the merge template "
                        "(default build/<stage>-merge.json)")
    parser.add_argument("--package", type=Path, metavar="DIR",
                        help="also run chalice package into DIR, check the zip and cfn-lint it")
    parser.add_argument("--no-lint", action="store_true", help="with --package: skip cfn-lint")
    args = parser.parse_args(argv)
    try:
        if args.package:
            sam = package(args.stage, args.package.resolve(), lint=not args.no_lint)
            print(f"build_template: {sam.relative_to(ROOT) if sam.is_relative_to(ROOT) else sam} "
                  f"ready for stage {args.stage}")
        else:
            out = args.out or ROOT / "build" / f"{args.stage}-merge.json"
            write_template(build(args.stage), out)
            print(f"build_template: wrote {out}")
    except BuildError as error:
        print(f"build_template: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
