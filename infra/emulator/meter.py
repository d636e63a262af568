"""What each request would put on an AWS bill, recorded while metering is
on (the cost benchmark turns it on; tests leave it off):

  POST /_emulator/meter/start   forget what was recorded, record from now
  GET  /_emulator/meter         {"dynamodb": [...], "requests": {...},
                                 "tableBytes": {table: bytes stored}}
  POST /_emulator/meter/stop

DynamoDB: moto reports no real consumed capacity, so for every request the
billing facts are recorded as DynamoDB defines them, and the bill's code
(tests/src/bill.rs) turns them into request units:
  - "reads": items read, each {"bytes", "mode", "per"}: mode strong,
    eventual or transactional; per "item" (GetItem, BatchGetItem: each
    item rounded up on its own) or "request" (Query, Scan: the items'
    total, rounded up once);
  - "writes": items written, each {"bytes", "tx"}: the larger of the item
    before and after (a delete: the item deleted; a failed condition: the
    item as it is), tx for a TransactWriteItems (condition checks
    included);
  - "indexWrites": index entries written, each {"index", "bytes"}: one per
    index whose key the item has before or after, two when the change
    moves its index key (a delete and a put).
Item sizes follow DynamoDB's rules (item_size below). Query and Scan are
measured on the items they return: this stack's queries filter nothing
server-side, so that is what DynamoDB reads.

Every other request is counted by service and operation (from the
signature's credential scope and X-Amz-Target, Action, or S3's method),
and by access key: the stack's administrator key ("testing") is what the
local CDN fetches photos with (CloudFront's origin requests).
"""

import base64
import io
import json
import threading
import traceback
from decimal import Decimal
from urllib.parse import parse_qs

_lock = threading.Lock()
_on = False
_dynamodb: list = []
_requests: dict = {}


def number_size(text):
    """DynamoDB: about one byte per two significant digits, plus one."""
    digits = text.lstrip("-").replace(".", "")
    digits = digits.split("e")[0].split("E")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def _binary_size(value):
    """Binary travels base64-encoded in DynamoDB JSON; it is billed decoded."""
    return len(base64.b64decode(value)) if isinstance(value, str) else len(value)


def value_size(value):
    """The size of one attribute value (DynamoDB JSON), by DynamoDB's rules."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return number_size(str(inner))
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "NS":
        return sum(number_size(str(v)) for v in inner)
    if kind == "BS":
        return sum(_binary_size(v) for v in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(attributes):
    """An item's size: each attribute's name (UTF-8) and value."""
    if not attributes:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in attributes.items())


def _plain(attributes):
    """moto's Item attributes as DynamoDB JSON."""
    return json.loads(json.dumps(attributes, default=lambda d: str(d) if isinstance(d, Decimal) else d))


def _current(table, key):
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = key.get(table.hash_key_attr)
    range_value = key.get(table.range_key_attr) if table.range_key_attr else None
    if hash_value is None:
        return None
    try:
        item = table.get_item(DynamoType(hash_value), DynamoType(range_value) if range_value else None)
    except Exception:  # noqa: BLE001 - an invalid key: the request fails on its own
        return None
    return _plain(item.to_json()["Attributes"]) if item else None


def _key_of(table, attributes):
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: attributes[name] for name in names if name in attributes}


def _index_writes(table, before, after):
    writes = []
    for index in list(table.indexes) + list(table.global_indexes):
        names = index.schema_key_attrs
        had = before is not None and all(n in before for n in names)
        has = after is not None and all(n in after for n in names)
        projected = lambda item: item_size(_project(index, table, item))  # noqa: E731
        if had and has:
            moved = any(before[n] != after[n] for n in names)
            if moved:
                writes.append({"index": index.name, "bytes": projected(before)})
            writes.append({"index": index.name, "bytes": projected(after)})
        elif has:
            writes.append({"index": index.name, "bytes": projected(after)})
        elif had:
            writes.append({"index": index.name, "bytes": projected(before)})
    return writes


def _project(index, table, item):
    kind = (index.projection or {}).get("ProjectionType", "ALL")
    if kind == "ALL":
        return item
    keep = set(index.schema_key_attrs) | {table.hash_key_attr, table.range_key_attr}
    if kind == "INCLUDE":
        keep |= set(index.projection.get("NonKeyAttributes", []))
    return {name: value for name, value in item.items() if name in keep}


def _targets(handler, action, body):
    """(table, key) of every item a write request touches, with whether it
    is transactional."""
    backend = handler.dynamodb_backend
    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        table = backend.get_table(body["TableName"])
        key = _key_of(table, body["Item"]) if action == "PutItem" else body.get("Key", {})
        return [(table, key, False)]
    if action == "BatchWriteItem":
        targets = []
        for name, requests in body.get("RequestItems", {}).items():
            table = backend.get_table(name)
            for request in requests:
                if "PutRequest" in request:
                    targets.append((table, _key_of(table, request["PutRequest"]["Item"]), False))
                elif "DeleteRequest" in request:
                    targets.append((table, request["DeleteRequest"]["Key"], False))
        return targets
    if action == "TransactWriteItems":
        targets = []
        for entry in body.get("TransactItems", []):
            ((kind, op),) = entry.items()
            table = backend.get_table(op["TableName"])
            key = _key_of(table, op["Item"]) if kind == "Put" else op.get("Key", {})
            targets.append((table, key, True))
        return targets
    return []


def _reads(action, body, answer):
    consistent = "strong" if body.get("ConsistentRead") else "eventual"
    if action == "GetItem":
        return [{"bytes": item_size(answer.get("Item")), "mode": consistent, "per": "item"}]
    if action == "BatchGetItem":
        reads = []
        for name, items in answer.get("Responses", {}).items():
            requested = body.get("RequestItems", {}).get(name, {})
            mode = "strong" if requested.get("ConsistentRead") else "eventual"
            reads.extend({"bytes": item_size(item), "mode": mode, "per": "item"} for item in items)
        return reads
    if action in ("Query", "Scan"):
        total = sum(item_size(item) for item in answer.get("Items", []))
        return [{"bytes": total, "mode": consistent, "per": "request"}]
    if action == "TransactGetItems":
        return [{"bytes": item_size(r.get("Item")), "mode": "transactional", "per": "item"} for r in answer.get("Responses", [])]
    return []


def measured(handler, call):
    """Calls the DynamoDB request `call` (under the emulator's lock) and
    records its billing facts while metering is on."""
    if not _on:
        return call()
    action = handler._get_action()
    try:
        body = json.loads(handler.raw_body or b"{}")
        targets = _targets(handler, action, body)
        before = [_current(table, key) for table, key, _ in targets]
    except Exception:  # noqa: BLE001 - a malformed request fails on its own
        body, targets, before = {}, [], []
    result = call()
    try:
        _record(action, body, targets, before, result)
    except Exception:  # noqa: BLE001 - metering never fails a request
        traceback.print_exc()
    return result


def _record(action, body, targets, before, result):
    record = {"op": action, "reads": [], "writes": [], "indexWrites": []}
    for (table, key, tx), old in zip(targets, before):
        new = _current(table, key)
        record["writes"].append({"bytes": max(item_size(old), item_size(new)), "tx": tx})
        if old != new:
            record["indexWrites"].extend(_index_writes(table, old, new))
    try:
        answer = json.loads(result[2]) if isinstance(result, tuple) and result[2] else {}
    except (ValueError, TypeError, IndexError):
        answer = {}
    if "__type" not in answer:
        record["reads"] = _reads(action, body, answer)
    with _lock:
        _dynamodb.append(record)


def count(environ):
    """Counts one request of any service by its operation and caller."""
    if not _on:
        return
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    service, caller = "s3", "unsigned"
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            caller, service = scope[0], scope[3]
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        operation = target.rsplit(".", 1)[-1]
    elif service == "s3":
        path = environ.get("PATH_INFO", "").strip("/")
        operation = environ["REQUEST_METHOD"] + (" object" if "/" in path else " bucket")
    else:
        operation = parse_qs(environ.get("QUERY_STRING", "")).get("Action", ["?"])[0]
        if operation == "?" and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            # Query protocol (SNS): the action is in the form body, which
            # the handler reads after us; peek without consuming it.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(raw)
            operation = parse_qs(raw.decode(errors="replace")).get("Action", ["?"])[0]
    who = "admin" if caller == "testing" else "function" if caller != "unsigned" else "unsigned"
    name = f"{service} {operation} ({who})"
    with _lock:
        _requests[name] = _requests.get(name, 0) + 1


def control(path, method):
    """The meter's control routes; None when `path` is not one of them."""
    global _on
    if path == "/_emulator/meter/start" and method == "POST":
        with _lock:
            _dynamodb.clear()
            _requests.clear()
            _on = True
        return {"metering": True}
    if path == "/_emulator/meter/stop" and method == "POST":
        _on = False
        return {"metering": False}
    if path == "/_emulator/meter" and method == "GET":
        with _lock:
            return {"dynamodb": list(_dynamodb), "requests": dict(_requests), "tableBytes": _table_bytes()}
    return None


# DynamoDB bills storage on each item's size plus 100 bytes of overhead.
ITEM_OVERHEAD = 100


def _table_bytes():
    """What each table stores, as DynamoDB bills it (moto says 0)."""
    from moto.dynamodb.models import dynamodb_backends

    sizes = {}
    for regions in dynamodb_backends.values():
        for backend in regions.values():
            for name, table in backend.tables.items():
                sizes[name] = sum(
                    item_size(_plain(item.to_json()["Attributes"])) + ITEM_OVERHEAD for item in table.all_items()
                )
    return sizes
