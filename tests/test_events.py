"""Built-in events and event files for --event: pure logic, and the `lpkg events` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_lpkg

from lpkg.errors import UnreadableInput, UsageError
from lpkg.events import BUILTIN_EVENTS, builtin_event, load_event


def body(spec: str) -> dict:  # type: ignore[type-arg]
    event = builtin_event(spec)
    assert event is not None
    return json.loads(event.body)  # type: ignore[no-any-return]


def test_rest_api_event_carries_method_path_and_query() -> None:
    event = body("apigw:post:/items?limit=5&tag=a&tag=b")
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/items"
    assert event["queryStringParameters"] == {"limit": "5", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"limit": ["5"], "tag": ["a", "b"]}
    assert event["requestContext"]["httpMethod"] == "POST"
    assert event["isBase64Encoded"] is False


def test_http_api_event_is_payload_version_2() -> None:
    event = body("http:GET:/health")
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/health"
    assert event["requestContext"]["http"] == {"method": "GET", "path": "/health", "protocol": "HTTP/1.1",
                                               "sourceIp": "192.0.2.1", "userAgent": "lpkg-smoke-test"}
    assert "queryStringParameters" not in event


def test_defaults_and_arguments_of_record_events() -> None:
    assert body("apigw")["httpMethod"] == "GET" and body("apigw")["path"] == "/"
    assert body("sqs:ping")["Records"][0]["body"] == "ping"
    assert body("sns")["Records"][0]["EventSource"] == "aws:sns"
    s3 = body("s3:logs/2026/a.json")["Records"][0]["s3"]
    assert (s3["bucket"]["name"], s3["object"]["key"]) == ("logs", "2026/a.json")
    assert body("schedule:nightly")["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/nightly"]
    assert body("empty") == {}


def test_builtins_are_the_same_every_time() -> None:
    for name in BUILTIN_EVENTS:
        first, second = builtin_event(name), builtin_event(name)
        assert first == second


@pytest.mark.parametrize("spec", ["apigw:GET:health", "schedule:a:b", "s3:nokey", "empty:x", "sqs:a:b"])
def test_bad_builtin_arguments_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        builtin_event(spec)


def test_event_file_relative_to_base(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text('{"detail": {"id": 7}}')
    event = load_event("e.json", base=tmp_path)
    assert json.loads(event.body) == {"detail": {"id": 7}}
    assert event.label == str(tmp_path / "e.json")


def test_missing_file_that_is_no_builtin_lists_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        load_event(str(tmp_path / "nope.json"))
    assert "no such file" in caught.value.message
    assert caught.value.hint is not None and "apigw[:METHOD[:PATH]]" in caught.value.hint


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(UnreadableInput) as caught:
        load_event(str(tmp_path / "bad.json"))
    assert f"{tmp_path / 'bad.json'}:3:" in caught.value.message


def test_lpkg_events_lists_and_prints() -> None:
    listing = run_lpkg("events")
    assert listing.returncode == 0
    for event in BUILTIN_EVENTS.values():
        assert event.usage in listing.stdout
    printed = run_lpkg("events", "http:GET:/health")
    assert printed.returncode == 0
    assert json.loads(printed.stdout)["rawPath"] == "/health"
    unknown = run_lpkg("events", "kinesis")
    assert unknown.returncode == 2
    assert "Traceback" not in unknown.stderr and "lpkg events" in unknown.stderr


def test_bad_event_file_is_exit_2_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "f.zip").write_bytes(b"not checked")
    (tmp_path / "bad.json").write_text("{nope")
    run = run_lpkg("verify", tmp_path / "f.zip", "--event", tmp_path / "bad.json")
    assert run.returncode == 2
    assert "the event is not JSON" in run.stderr and "Traceback" not in run.stderr


def test_event_with_probe_none_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f.zip").write_bytes(b"x")
    run = run_lpkg("verify", tmp_path / "f.zip", "--event", "empty", "--probe", "none")
    assert run.returncode == 2
    assert "--probe none" in run.stderr
