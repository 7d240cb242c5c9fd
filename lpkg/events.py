"""Events for the smoke invoke: a JSON file, or a built-in one named like `apigw:GET:/health`.

The built-ins are shaped like the events the AWS services send (the samples in the Lambda
documentation), with fixed ids and times so a report is the same from run to run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lpkg.errors import UnreadableInput, UsageError

ACCOUNT = "123456789012"
REGION = "us-east-1"
REQUEST_TIME = "30/Nov/2026:12:00:00 +0000"
ISO_TIME = "2026-11-30T12:00:00Z"
EPOCH_MS = 1_796_040_000_000


@dataclass(frozen=True)
class Event:
    """What the handler is called with: `label` says where it came from, `body` is the JSON text."""

    label: str
    body: str


@dataclass(frozen=True)
class BuiltinEvent:
    name: str
    usage: str  # how to name it, e.g. apigw[:METHOD[:PATH]]
    summary: str
    make: Callable[[list[str]], dict[str, Any]]


def _method_and_path(args: list[str], name: str) -> tuple[str, str]:
    if len(args) > 2:
        raise UsageError(f"built-in event {name} takes at most METHOD and PATH, e.g. {name}:GET:/health")
    method = (args[0] if args and args[0] else "GET").upper()
    path = args[1] if len(args) > 1 and args[1] else "/"
    if not path.startswith("/"):
        raise UsageError(f"the path of built-in event {name} must start with '/', not {path!r}")
    return method, path


def _query(raw: str) -> dict[str, list[str]]:
    return {key: values for key, values in parse_qs(raw, keep_blank_values=True).items()}


def api_gateway_rest(args: list[str]) -> dict[str, Any]:
    method, target = _method_and_path(args, "apigw")
    parts = urlsplit(target)
    query = _query(parts.query)
    headers = {"Accept": "application/json", "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
               "User-Agent": "lpkg-smoke-test", "X-Forwarded-Proto": "https"}
    return {
        "resource": parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {key: [value] for key, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abcdef1234",
            "resourceId": "a1b2c3",
            "resourcePath": parts.path,
            "httpMethod": method,
            "path": f"/prod{parts.path}",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": REQUEST_TIME,
            "requestTimeEpoch": EPOCH_MS,
            "identity": {"sourceIp": "192.0.2.1", "userAgent": "lpkg-smoke-test", "accountId": None,
                         "caller": None, "user": None, "userArn": None},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def api_gateway_http(args: list[str]) -> dict[str, Any]:
    method, target = _method_and_path(args, "http")
    parts = urlsplit(target)
    query = _query(parts.query)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {"accept": "application/json", "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
                    "user-agent": "lpkg-smoke-test", "x-forwarded-proto": "https"},
        **({"queryStringParameters": {k: ",".join(v) for k, v in query.items()}} if query else {}),
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {"method": method, "path": parts.path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
                     "userAgent": "lpkg-smoke-test"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": REQUEST_TIME,
            "timeEpoch": EPOCH_MS,
        },
        "isBase64Encoded": False,
    }


def _one_optional(args: list[str], name: str, what: str) -> str | None:
    if len(args) > 1:
        raise UsageError(f"built-in event {name} takes at most one argument ({what})")
    return args[0] if args and args[0] else None


def sqs(args: list[str]) -> dict[str, Any]:
    body = _one_optional(args, "sqs", "the message body") or '{"hello": "world"}'
    return {"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(EPOCH_MS),
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": str(EPOCH_MS)},
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:my-queue",
        "awsRegion": REGION,
    }]}


def sns(args: list[str]) -> dict[str, Any]:
    message = _one_optional(args, "sns", "the message") or "Hello from SNS!"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:my-topic"
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "Sns": {"Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e", "TopicArn": topic,
                "Subject": None, "Message": message, "Timestamp": ISO_TIME, "SignatureVersion": "1",
                "MessageAttributes": {}},
    }]}


def s3(args: list[str]) -> dict[str, Any]:
    target = _one_optional(args, "s3", "BUCKET/KEY") or "my-bucket/uploads/example.json"
    bucket, _, key = target.partition("/")
    if not bucket or not key:
        raise UsageError(f"built-in event s3 takes BUCKET/KEY, not {target!r}")
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION, "eventTime": ISO_TIME,
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "lpkg-smoke-test",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}", "ownerIdentity": {"principalId": "EXAMPLE"}},
               "object": {"key": key, "size": 1024, "eTag": "0123456789abcdef0123456789abcdef",
                          "sequencer": "0A1B2C3D4E5F678901"}},
    }]}


def schedule(args: list[str]) -> dict[str, Any]:
    rule = _one_optional(args, "schedule", "the rule name") or "my-schedule"
    return {
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": ACCOUNT, "time": ISO_TIME, "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"], "detail": {},
    }


def empty(args: list[str]) -> dict[str, Any]:
    if args:
        raise UsageError("built-in event empty takes no arguments")
    return {}


BUILTIN_EVENTS: Mapping[str, BuiltinEvent] = {
    event.name: event
    for event in (
        BuiltinEvent("apigw", "apigw[:METHOD[:PATH]]", "API Gateway REST API, Lambda proxy (payload 1.0)",
                     api_gateway_rest),
        BuiltinEvent("http", "http[:METHOD[:PATH]]", "API Gateway HTTP API or function URL (payload 2.0)",
                     api_gateway_http),
        BuiltinEvent("sqs", "sqs[:BODY]", "one SQS message", sqs),
        BuiltinEvent("sns", "sns[:MESSAGE]", "one SNS notification", sns),
        BuiltinEvent("s3", "s3[:BUCKET/KEY]", "S3 ObjectCreated:Put", s3),
        BuiltinEvent("schedule", "schedule[:RULE]", "EventBridge scheduled event", schedule),
        BuiltinEvent("empty", "empty", "{}", empty),
    )
}


def builtin_event(spec: str) -> Event | None:
    """The built-in event `spec` names (`name[:arg[:arg]]`), or None when it names none."""
    name, _, rest = spec.partition(":")
    event = BUILTIN_EVENTS.get(name)
    if event is None:
        return None
    args = rest.split(":", 1) if rest else []
    return Event(spec, json.dumps(event.make(args), indent=2))


def is_builtin(spec: str) -> bool:
    return spec.partition(":")[0] in BUILTIN_EVENTS


def load_event(spec: str, base: Path | None = None) -> Event:
    """A built-in event, `-` for standard input, or a JSON file (relative to `base` when given)."""
    found = builtin_event(spec)
    if found is not None:
        return found
    if spec == "-":
        return _parse(sys.stdin.read(), "standard input")
    path = Path(spec) if base is None else base / spec
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"--event {spec}: no such file, and no built-in event by that name",
            hint="built-in events: " + ", ".join(e.usage for e in BUILTIN_EVENTS.values()) + " (see `lpkg events`)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"{path}: cannot read the event ({exc})") from None
    return _parse(text, str(path))


def _parse(text: str, where: str) -> Event:
    try:
        json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise UnreadableInput(f"{where}{f':{line}' if line else ''}: the event is not JSON: {exc}",
                              hint="an event is one JSON value; `lpkg events NAME` prints one to start from") from None
    return Event(where, text)
