"""The IoT topic rules of VTS: one JSON file per rule, the single source for ``infra/`` and
the local bridge.

``load_rule(name)`` reads ``iot_rules/{name}.json``. A ``TopicRule`` knows its SQL, topic
filter and SQL version, renders itself as an ``AWS::IoT::TopicRule`` resource (values may be
CloudFormation intrinsics) or a ``CreateTopicRule`` payload, and builds the event the rule
hands its Lambda action for one MQTT message, exactly as the SQL would. Only the SQL this
project uses is understood (``*``, ``topic()``, ``topic(n)``, ``clientid()``,
``timestamp()``, ``AS`` aliases, and a ``WHERE`` of ``isUndefined(field)`` terms joined by
``AND``): anything else fails loudly at load time, so the bridge can never silently drift
from the rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

HERE = Path(__file__).resolve().parent

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+'(?P<filter>[^']+)'(?:\s+WHERE\s+(?P<where>.+?))?\s*$",
    re.I | re.S,
)
_UNDEFINED = re.compile(r"^isUndefined\((?P<field>[A-Za-z_][A-Za-z0-9_]*)\)$", re.I)
_PROJECTION = re.compile(r"^(?P<expr>[a-z]+\((?:\d*)\))\s+AS\s+(?P<alias>[A-Za-z_][A-Za-z0-9_]*)$", re.I)
_FUNCTION = re.compile(r"^(?P<name>[a-z]+)\((?P<arg>\d*)\)$", re.I)


@dataclass(frozen=True)
class Projection:
    """One ``expr AS alias`` of the SELECT list."""

    function: str  # topic | clientid | timestamp
    argument: int | None
    alias: str

    def value(self, topic: str, client_id: str | None, received_at_ms: int) -> tuple[bool, Any]:
        """(defined, value): IoT leaves a field out when its expression is undefined."""
        if self.function == "topic":
            if self.argument is None:
                return True, topic
            levels = topic.split("/")
            if 1 <= self.argument <= len(levels):
                return True, levels[self.argument - 1]
            return False, None
        if self.function == "clientid":
            # The local broker does not tell subscribers who published: null, as documented.
            return True, client_id
        return True, received_at_ms  # timestamp(): epoch milliseconds


@dataclass(frozen=True)
class TopicRule:
    name: str
    description: str
    sql: str
    sql_version: str
    disabled: bool
    topic_filter: str
    select_all: bool
    projections: tuple[Projection, ...]
    actions: tuple[dict[str, Any], ...]
    # WHERE isUndefined(f) AND ...: payload fields whose presence stops the rule.
    undefined_fields: tuple[str, ...]
    error_action: dict[str, Any]

    @property
    def functions(self) -> list[str]:
        """Logical names of the Lambda functions the rule invokes."""
        return [a["lambda"]["function"] for a in self.actions if "lambda" in a]

    def apply(
        self, topic: str, payload: bytes, client_id: str | None, received_at_ms: int
    ) -> tuple[Literal["invoke", "filtered", "error"], dict[str, Any] | None]:
        """What IoT does with one message: invoke the action with an event, skip it (the
        WHERE is false), or fail the action (a payload that is not a JSON object: the error
        action gets it)."""
        event: dict[str, Any] = {}
        if self.select_all and payload.strip():
            try:
                document = json.loads(payload)
            except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deep nesting
                return "error", None
            if not isinstance(document, dict):
                return "error", None
            if any(field in document for field in self.undefined_fields):
                return "filtered", None
            event.update(document)
        for projection in self.projections:
            defined, value = projection.value(topic, client_id, received_at_ms)
            if defined:
                event[projection.alias] = value
        return "invoke", event

    def build_event(
        self, topic: str, payload: bytes, client_id: str | None, received_at_ms: int
    ) -> dict[str, Any] | None:
        """The event the Lambda action receives for one message, or None when IoT would not
        invoke it."""
        return self.apply(topic, payload, client_id, received_at_ms)[1]

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` falls under the rule's filter (``+`` and a trailing ``#``)."""
        wanted = self.topic_filter.split("/")
        levels = topic.split("/")
        for n, part in enumerate(wanted):
            if part == "#":
                return True
            if n >= len(levels) or (part != "+" and part != levels[n]):
                return False
        return len(levels) == len(wanted)

    def topic_rule_payload(
        self,
        function_arn: Callable[[str], Any],
        error_log_group: Callable[[str], Any],
        error_role_arn: Any,
    ) -> dict[str, Any]:
        """The ``topicRulePayload`` of ``iot.create_topic_rule`` (boto3 casing)."""
        actions = [{"lambda": {"functionArn": function_arn(name)}} for name in self.functions]
        logs = self.error_action["cloudwatchLogs"]
        return {
            "sql": self.sql,
            "description": self.description,
            "awsIotSqlVersion": self.sql_version,
            "ruleDisabled": self.disabled,
            "actions": actions,
            "errorAction": {
                "cloudwatchLogs": {
                    "logGroupName": error_log_group(logs["logGroup"]),
                    "roleArn": error_role_arn,
                    "batchMode": bool(logs.get("batchMode", False)),
                }
            },
        }

    def cloudformation(
        self,
        function_arn: Callable[[str], Any],
        error_log_group: Callable[[str], Any],
        error_role_arn: Any,
        rule_name: Any = None,
    ) -> dict[str, Any]:
        """An ``AWS::IoT::TopicRule`` resource; arguments may return CloudFormation intrinsics."""
        payload = self.topic_rule_payload(function_arn, error_log_group, error_role_arn)
        logs = payload["errorAction"]["cloudwatchLogs"]
        return {
            "Type": "AWS::IoT::TopicRule",
            "Properties": {
                "RuleName": rule_name if rule_name is not None else self.name,
                "TopicRulePayload": {
                    "Sql": payload["sql"],
                    "Description": payload["description"],
                    "AwsIotSqlVersion": payload["awsIotSqlVersion"],
                    "RuleDisabled": payload["ruleDisabled"],
                    "Actions": [
                        {"Lambda": {"FunctionArn": a["lambda"]["functionArn"]}}
                        for a in payload["actions"]
                    ],
                    "ErrorAction": {
                        "CloudwatchLogs": {
                            "LogGroupName": logs["logGroupName"],
                            "RoleArn": logs["roleArn"],
                            "BatchMode": logs["batchMode"],
                        }
                    },
                },
            },
        }


def parse_where(where: str | None) -> tuple[str, ...]:
    """The fields of ``isUndefined(a) AND isUndefined(b) ...`` (the only WHERE understood)."""
    if where is None:
        return ()
    fields = []
    for term in re.split(r"\s+AND\s+", where.strip(), flags=re.I):
        match = _UNDEFINED.match(term.strip())
        if match is None:
            raise ValueError(f"unsupported WHERE term in rule SQL: {term!r}")
        fields.append(match["field"])
    return tuple(fields)


def parse_sql(sql: str) -> tuple[str, bool, tuple[Projection, ...]]:
    """(topic filter, SELECT *, projections) of the SQL subset this project uses."""
    match = _SELECT.match(sql)
    if not match:
        message = "unsupported rule SQL (expected SELECT ... FROM '...')"
        raise ValueError(f"{message}: {sql!r}")
    select_all = False
    projections: list[Projection] = []
    for raw in (part.strip() for part in match["fields"].split(",")):
        if raw == "*":
            select_all = True
            continue
        projection = _PROJECTION.match(raw)
        function = _FUNCTION.match(projection["expr"]) if projection else None
        if projection is None or function is None:
            raise ValueError(f"unsupported SELECT expression in rule SQL: {raw!r}")
        name = function["name"].lower()
        argument = int(function["arg"]) if function["arg"] else None
        if name not in ("topic", "clientid", "timestamp") or (argument is not None and name != "topic"):
            raise ValueError(f"unsupported SQL function in rule: {raw!r}")
        projections.append(Projection(name, argument, projection["alias"]))
    parse_where(match["where"])  # refuses any WHERE the bridge could not mirror
    return match["filter"], select_all, tuple(projections)


def load_rule(name: str, directory: Path = HERE) -> TopicRule:
    data = json.loads((directory / f"{name}.json").read_text())
    topic_filter, select_all, projections = parse_sql(data["sql"])
    match = _SELECT.match(data["sql"])
    undefined_fields = parse_where(match["where"] if match else None)
    actions = tuple(data["actions"])
    if not actions or any("lambda" not in action for action in actions):
        raise ValueError(f"rule {name}: only lambda actions are supported")
    if "cloudwatchLogs" not in data.get("errorAction", {}):
        raise ValueError(f"rule {name}: a cloudwatchLogs errorAction is required")
    return TopicRule(
        name=data["name"],
        description=data.get("description", ""),
        sql=data["sql"],
        sql_version=data["awsIotSqlVersion"],
        disabled=bool(data.get("ruleDisabled", False)),
        topic_filter=topic_filter,
        select_all=select_all,
        projections=projections,
        actions=actions,
        error_action=data["errorAction"],
        undefined_fields=undefined_fields,
    )


def player_views_rule() -> TopicRule:
    return load_rule("player_views")


def rule_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.json"))


def describe(rules: Mapping[str, TopicRule] | None = None) -> str:
    """One line per rule (operator output)."""
    rules = rules or {n: load_rule(n) for n in rule_names()}
    return "\n".join(f"{r.name}: {r.topic_filter} -> {', '.join(r.functions)}" for r in rules.values())
