"""The AWS emulator the local stack and the tests run: moto's server, pinned
in infra/requirements.txt, with what DynamoDB does and moto does not.

Isolated transactions. moto applies a TransactWriteItems item by item,
checking each condition just before its write, and on a failed condition
restores a deep copy of the whole table taken before the transaction (one
copy per item of the transaction, stream records included), undoing any
other request's writes made meanwhile; the copies make a transaction slower
the older the table. Here every DynamoDB request runs alone (one lock), a
transaction checks all its conditions against the state before it and
writes nothing unless all hold, and a retry with the same
ClientRequestToken within 10 minutes is the same transaction (answered
again, applied once; another payload under that token is refused with
IdempotentParameterMismatchException), as on DynamoDB.

Lagging indexes. On AWS a global secondary index, and a local one read
without ConsistentRead, is eventually consistent: each change reaches the
index on its own, late and in any order. moto updates indexes at once, so
nothing here could show a reader that trusts an index too much. A table can
be put on hold: from then on, index queries that are not strongly
consistent see each item as it was when it was last released, and the
caller releases items one by one, in the order it chooses, to replay an
out-of-order propagation exactly:

  POST /_emulator/index-lag/hold     {"table": NAME}
  GET  /_emulator/index-lag/pending?table=NAME
       -> [item, ...] (DynamoDB JSON of every item the indexes do not show
          as it is now; a deleted item appears as its key alone)
  POST /_emulator/index-lag/release  {"table": NAME, "keys": [KEY, ...]}
  POST /_emulator/index-lag/release  {"table": NAME}   (everything; hold ends)

Base-table reads and strongly consistent LSI queries are never affected.

Published pushes with their attributes. moto keeps the message a platform
endpoint was sent but not the message attributes, which carry APNs' and
FCM's delivery headers (push type, priority, collapse id, expiry):

  GET /_emulator/sns/published?endpoint=ARN
       -> [{"message": ..., "attributes": {NAME: VALUE}}, ...]
IAM, enforced. Every signed request is checked against its caller's (its
access key's) identity policies, as moto does once INITIAL_NO_AUTH_ACTION_COUNT
is reached (here from the start), with what moto leaves out filled in:
DynamoDB, SNS, Cognito and SSM requests are checked against the resource they
name (moto checks them against "*", so any policy naming an ARN would deny
them), a TransactWriteItems is authorised per item (dynamodb:PutItem,
UpdateItem, DeleteItem, ConditionCheckItem on each table), and
Cognito's token-based operations are public as on AWS. The access key
"testing" (secret "testing") is the emulator's administrator, so scripts and
tests keep working; functions get identities of their own:

  POST /_emulator/iam/identity  {"name": NAME, "policy": {...}}
       -> {"accessKeyId": ..., "secretAccessKey": ...}
       (an IAM user whose only policy is POLICY; called again, the policy
        is replaced and the same key returned)

Transactions of at most 4 MB of items, as on DynamoDB (moto has no limit).

Nesting, bounded. DynamoDB refuses an item (PutItem, BatchWriteItem, a
transaction's Put, an UpdateItem's values) with a ValidationException when an
attribute nests more than 31 maps or lists around a scalar (32 levels);
moto stores any depth, and an item deeper than the SDKs' decoders allow
then fails every read and stream poll of it. Here the limit is DynamoDB's.

Presigned POST forms, checked as S3 checks them. moto stores whatever a
form POST to a bucket carries. Here a form upload needs a policy signed
(SigV4) with the secret of the access key its x-amz-credential names, not
expired, whose every condition holds (bucket, exact key or starts-with,
Content-Type, content-length-range against the file's size, the x-amz-*
fields) and which names every field the form sends; otherwise S3's answer:
403 AccessDenied / SignatureDoesNotMatch, or 400 EntityTooLarge /
EntityTooSmall, as XML.

Not enforced: request signatures (moto recomputes them from re-encoded
form data, which differs from the Rust SDK's encoding: the access key
names the caller), presigned GET/PUT URLs, resource policies and most
condition keys (moto's limits).

Queued messages, read without receiving them (the local console shows the
failed-events and dead-letter queues; a ReceiveMessage would count a
receive and hide the message):

  GET /_emulator/sqs/messages?queue=URL
       -> [{"messageId", "body", "sentAt", "receiveCount"}, ...]

Billing facts of every request, while metering is on (meter.py):

  POST /_emulator/meter/start, GET /_emulator/meter, POST /_emulator/meter/stop

State that survives a restart: with EMULATOR_STATE=FILE the services' state
is restored from FILE at start and saved to it (persistence.py);
scripts/dev sets it, tests do not.

Run as `python infra/emulator/emulator.py -H 127.0.0.1 -p PORT`, with the
arguments of `moto_server`.
"""

import base64
import copy
import datetime
import hashlib
import hmac
import inspect
import io
import json
import os
import threading
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import time

import xmltodict
from werkzeug.formparser import parse_form_data

from moto import server, settings
from moto.cognitoidp.responses import CognitoIdpResponse
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.access_control import IAMRequest
from moto.iam.models import iam_backends
from moto.s3.responses import S3Response
from moto.sns.responses import SNSResponse
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.dynamodb.exceptions import (
    DynamodbException,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.core.responses import ActionResult
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sns.models import SNSBackend
from moto.sqs.models import sqs_backends

import meter
from persistence import Persistence

# Every DynamoDB request, and every control request, runs alone.
_lock = threading.RLock()
# table name -> {key: the Item the indexes show (None: not shown)}
_held: dict = {}


def _key(item):
    return (item.hash_key, item.range_key)


def _key_json(table, item):
    attrs = item.to_json()["Attributes"]
    return {name: attrs[name] for name in (table.hash_key_attr, table.range_key_attr) if name}


def _find_table(name):
    for regions in dynamodb_backends.values():
        for backend in regions.values():
            if name in backend.tables:
                return backend.tables[name]
    raise KeyError(f"no table {name}")


_original_query = Table.query


_query_signature = inspect.signature(_original_query)


def _query(self, *args, **kwargs):
    bound = _query_signature.bind(self, *args, **kwargs).arguments
    index_name = bound.get("index_name")
    consistent = bound.get("consistent_read", False)
    with _lock:
        view = _held.get(self.name)
        if view is not None and index_name and not consistent:
            items = [item for item in view.values() if item is not None]
        elif bound.get("hash_key") is not None and (
            index_name is None or index_name in {i.name for i in self.indexes}
        ):
            # The base table and its local indexes are read one partition
            # at a time; moto would sort the whole table for every query,
            # which makes each pull slower the older the stack.
            partition = self.items.get(bound.get("hash_key"))
            items = list(partition.values()) if partition else []
        else:
            return _original_query(self, *args, **kwargs)
        self.all_items = lambda: sorted(items, key=_key)  # type: ignore[method-assign]
        try:
            return _original_query(self, *args, **kwargs)
        finally:
            del self.all_items


def _pending(table):
    view = _held.get(table.name, {})
    current = {_key(item): item for item in table.all_items()}
    pending = []
    for key, item in current.items():
        shown = view.get(key)
        if shown is None or shown.to_json() != item.to_json():
            pending.append(item)
    gone = [shown for key, shown in view.items() if key not in current and shown is not None]
    return pending, gone


def _hold(table):
    _held[table.name] = {_key(item): copy.deepcopy(item) for item in table.all_items()}


def _release(table, keys):
    if keys is None:
        _held.pop(table.name, None)
        return
    view = _held.setdefault(table.name, {})
    pending, gone = _pending(table)
    wanted = [json.dumps(k, sort_keys=True) for k in keys]
    for item in pending:
        if json.dumps(_key_json(table, item), sort_keys=True) in wanted:
            view[_key(item)] = copy.deepcopy(item)
    for item in gone:
        if json.dumps(_key_json(table, item), sort_keys=True) in wanted:
            view.pop(_key(item), None)


# ---------------------------------------------------------------- IAM

ACCOUNT = "123456789012"
ADMIN_KEY = "testing"


def _iam():
    return iam_backends[ACCOUNT]["aws"]


def _identity(name, policy):
    """An IAM user holding exactly `policy`, and its access key."""
    iam = _iam()
    if name not in iam.users:
        iam.create_user("us-east-1", name)
    for old in list(iam.list_user_policies(name)):
        iam.delete_user_policy(name, old)
    iam.put_user_policy(name, "policy", json.dumps(policy))
    keys = iam.list_access_keys(name)
    key = keys[0] if keys else iam.create_access_key(name)
    return key


def _ensure_admin():
    key = _identity("emulator-admin", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    })
    key.access_key_id = ADMIN_KEY
    key.secret_access_key = ADMIN_KEY


def _authorize(self, iam_request_cls, resource="*"):
    if "Authorization" not in self.headers:
        return  # unsigned: a presigned S3 request, or a public Cognito operation
    if "emulator-admin" not in _iam().users:
        _ensure_admin()  # again after a /moto-api/reset
    if isinstance(self, DynamoHandler) and self._get_action() == "TransactWriteItems":
        return _authorize_transaction(self)
    if isinstance(self, S3Response) and self.method == "POST" and "delete" in self.querystring:
        return _authorize_delete_objects(self, iam_request_cls, resource)
    _iam_request(self, iam_request_cls, self._get_action()).check_action_permitted(resource)


def _authorize_delete_objects(self, iam_request_cls, bucket_arn):
    """AWS authorises DeleteObjects per key (s3:DeleteObject on each object);
    moto checks the bucket. A request with any key denied is denied."""
    body = xmltodict.parse(self.body or b"<Delete/>")
    objects = (body.get("Delete") or {}).get("Object") or []
    if not isinstance(objects, list):
        objects = [objects]
    request = _iam_request(self, iam_request_cls, "DeleteObject")
    for obj in objects:
        request.check_action_permitted(f"{bucket_arn}/{obj['Key']}")


def _iam_request(self, cls, action):
    """The caller, by access key. The signature is not checked again: moto
    recomputes it from re-encoded form data, which differs from the Rust
    SDK's canonical encoding of the same request."""
    path = self.raw_path
    if "?" in self.uri:
        path += "?" + self.uri.split("?", 1)[1]
    return cls(
        account_id=self.current_account, method=self.method, path=path, data=self.data,
        body=self.raw_body, headers=self.headers, action=action,
    )


_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem"}


def _authorize_transaction(self):
    """AWS authorises each item of a transaction as its own action."""
    items = json.loads(self.raw_body or b"{}").get("TransactItems", [])
    for entry in items:
        op_type, op = next(iter(entry.items()))
        request = _iam_request(self, IAMRequest, _ITEM_ACTIONS.get(op_type, op_type))
        request.check_action_permitted(_table_arn(self, op.get("TableName", "")))


def _table_arn(self, table, index=None):
    arn = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _dynamodb_resource(self):
    body = json.loads(self.raw_body or b"{}") if self.raw_body else {}
    table = body.get("TableName") or next(iter(body.get("RequestItems") or {}), None)
    if not table:
        return "*"
    return _table_arn(self, table, body.get("IndexName"))


def _sns_resource(self):
    for name in ("TargetArn", "TopicArn", "EndpointArn", "PlatformApplicationArn"):
        value = self._get_param(name)
        if value:
            return value
    return "*"


def _cognito_resource(self):
    pool = self._get_param("UserPoolId")
    if not pool:
        return "*"
    return f"arn:aws:cognito-idp:{self.region}:{self.current_account}:userpool/{pool}"


def _ssm_resource(self):
    name = self._get_param("Name")
    if not name:
        return "*"
    path = name if name.startswith("/") else f"/{name}"
    return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter{path}"


# endpoint ARN -> [{"message", "attributes"}]
_published: dict = {}
_original_publish = SNSBackend.publish


def _publish(self, message, arn, *args, **kwargs):
    message_id = _original_publish(self, message, arn, *args, **kwargs)
    if arn and ":endpoint/" in arn:
        attributes = kwargs.get("message_attributes") or {}
        _published.setdefault(arn, []).append(
            {
                "message": message,
                "attributes": {
                    name: value.get("Value", value.get("StringValue"))
                    for name, value in attributes.items()
                },
            }
        )
    return message_id


def _queued(url):
    name = url.rstrip("/").rsplit("/", 1)[-1]
    for regions in sqs_backends.values():
        for backend in regions.values():
            queue = backend.queues.get(name)
            if queue is not None:
                return [
                    {
                        "messageId": message.id,
                        "body": message.body,
                        "sentAt": message.sent_timestamp,
                        "receiveCount": message.approximate_receive_count,
                    }
                    for message in list(queue._messages)
                ]
    raise KeyError(f"no queue {url}")


def _control(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    metered = meter.control(path, method)
    if metered is not None:
        data = json.dumps(metered).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/_emulator/sqs/messages":
        url = parse_qs(environ.get("QUERY_STRING", "")).get("queue", [""])[0]
        try:
            status, data = "200 OK", json.dumps(_queued(url)).encode()
        except KeyError as err:
            status, data = "404 Not Found", json.dumps({"error": str(err)}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/_emulator/sns/published":
        endpoint = parse_qs(environ.get("QUERY_STRING", "")).get("endpoint", [""])[0]
        with _lock:
            data = json.dumps(_published.get(endpoint, [])).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    try:
        if method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            body = {"table": query.get("table", [""])[0]}
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        with _lock:
            table = _find_table(body["table"]) if "table" in body else None
            if path == "/_emulator/iam/identity" and method == "POST":
                key = _identity(body["name"], body["policy"])
                answer = {"accessKeyId": key.access_key_id, "secretAccessKey": key.secret_access_key}
            elif path.endswith("/hold") and method == "POST":
                _hold(table)
                answer = {"held": table.name}
            elif path.endswith("/pending") and method == "GET":
                pending, gone = _pending(table)
                answer = [item.to_json()["Attributes"] for item in pending]
                answer += [_key_json(table, item) for item in gone]
            elif path.endswith("/release") and method == "POST":
                _release(table, body.get("keys"))
                answer = {"released": table.name}
            else:
                raise KeyError(f"no control {method} {path}")
        status, payload = "200 OK", answer
    except (KeyError, ValueError) as err:
        status, payload = "400 Bad Request", {"error": str(err)}
    data = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


_original_call = DomainDispatcherApplication.__call__


# Set when EMULATOR_STATE names a file to keep the state in.
_persistence = None


def _call(self, environ, start_response):
    if _persistence is not None:
        _persistence.changed()
    path = environ.get("PATH_INFO", "")
    if not path.startswith(("/_emulator/", "/moto-api/")):
        meter.count(environ)
    if path.startswith("/_emulator/"):
        return _control(environ, start_response)
    if _is_form_upload(environ):
        refused = _check_form_upload(environ)
        if refused is not None:
            status, code, message = refused
            data = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
            ).encode()
            start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
            return [data]
    return _original_call(self, environ, start_response)


# ---------------------------------------------------------------- S3 forms


def _is_form_upload(environ):
    """A browser-style POST upload to a bucket (path-style: POST /bucket)."""
    path = environ.get("PATH_INFO", "").strip("/")
    content_type = environ.get("CONTENT_TYPE", "")
    return (
        environ.get("REQUEST_METHOD") == "POST"
        and content_type.startswith("multipart/form-data")
        and path
        and "/" not in path
        and not environ.get("QUERY_STRING")
    )


def _secret_of(access_key_id):
    if access_key_id == ADMIN_KEY:
        return ADMIN_KEY
    for user in _iam().users.values():
        for key in user.access_keys:
            if key.access_key_id == access_key_id:
                return key.secret_access_key
    return None


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _signature(secret, date, region, service, string_to_sign):
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _check_form_upload(environ):
    """None if S3 would take this form upload, else (status, code, message).
    Leaves the request body in place for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    parse_env = dict(environ, **{"wsgi.input": io.BytesIO(body)})
    _, form, files = parse_form_data(parse_env)
    fields = {name.lower(): value for name, value in form.items()}
    bucket = environ["PATH_INFO"].strip("/")
    denied = lambda message: ("403 Forbidden", "AccessDenied", message)  # noqa: E731
    if "policy" not in fields or "x-amz-signature" not in fields:
        return denied("Access Denied: a form upload needs a signed policy")
    if fields.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        return denied("Only AWS4-HMAC-SHA256 form uploads are accepted")
    credential = fields.get("x-amz-credential", "").split("/")
    if len(credential) != 5 or credential[4] != "aws4_request":
        return denied("Invalid x-amz-credential")
    access_key, date, region, service, _ = credential
    with _lock:
        secret = _secret_of(access_key)
    if secret is None:
        return ("403 Forbidden", "InvalidAccessKeyId", "The AWS access key Id you provided does not exist in our records.")
    expected = _signature(secret, date, region, service, fields["policy"])
    if not hmac.compare_digest(expected, fields["x-amz-signature"]):
        return ("403 Forbidden", "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
    try:
        policy = json.loads(base64.b64decode(fields["policy"]))
        expiration = policy["expiration"].replace("Z", "+00:00")
        expires = datetime.datetime.fromisoformat(expiration)
        conditions = policy["conditions"]
    except (ValueError, KeyError, TypeError):
        return ("400 Bad Request", "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    if expires <= datetime.datetime.now(datetime.timezone.utc):
        return denied("Invalid according to Policy: Policy expired.")
    upload = files.get("file")
    if upload is None:
        return ("400 Bad Request", "InvalidArgument", "POST requires exactly one file upload per request.")
    size = len(upload.read())
    values = dict(fields, bucket=bucket)
    named = {"bucket"}
    for condition in conditions:
        if isinstance(condition, dict):
            ((name, value),) = condition.items()
            rule = ["eq", "$" + name, value]
        else:
            rule = condition
        if rule[0] == "content-length-range":
            low, high = int(rule[1]), int(rule[2])
            if size > high:
                return ("400 Bad Request", "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if size < low:
                return ("400 Bad Request", "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
            continue
        operator, name, value = rule[0], rule[1].lstrip("$").lower(), rule[2]
        named.add(name)
        actual = values.get(name)
        holds = actual == value if operator == "eq" else actual is not None and actual.startswith(value)
        if not holds:
            return denied(f'Invalid according to Policy: Policy Condition failed: ["{operator}", "${name}", "{value}"]')
    extra = [
        name
        for name in fields
        if name not in named and name not in ("policy", "x-amz-signature", "file") and not name.startswith("x-ignore-")
    ]
    if extra:
        return denied("Invalid according to Policy: Extra input fields: " + ", ".join(sorted(extra)))
    return None


# ---------------------------------------------------------------- nesting

# DynamoDB: 32 levels, that is at most 31 maps or lists around a scalar.
MAX_WRAPS = 31


def _wraps(value):
    """The most maps and lists nested in one attribute value (DynamoDB JSON)."""
    deepest = 0
    pending = [(value, 0)]
    while pending:
        value, above = pending.pop()
        if not isinstance(value, dict):
            continue
        if "M" in value and isinstance(value["M"], dict):
            children = value["M"].values()
        elif "L" in value and isinstance(value["L"], list):
            children = value["L"]
        else:
            continue
        deepest = max(deepest, above + 1)
        pending.extend((child, above + 1) for child in children)
    return deepest


def _check_nesting(values):
    if any(_wraps(v) > MAX_WRAPS for v in (values or {}).values()):
        raise MockValidationException(
            "Nesting Levels have exceeded supported limits: "
            "Attributes in the item have nested levels beyond supported limit"
        )


_original_put_item = DynamoDBBackend.put_item
_original_update_item = DynamoDBBackend.update_item


def _put_item(self, table_name, item_attrs, *args, **kwargs):
    _check_nesting(item_attrs)
    return _original_put_item(self, table_name, item_attrs, *args, **kwargs)


def _update_item(self, *args, **kwargs):
    bound = inspect.signature(_original_update_item).bind(self, *args, **kwargs).arguments
    _check_nesting(bound.get("expression_attribute_values"))
    return _original_update_item(self, *args, **kwargs)


# ---------------------------------------------------------------- transactions


def _transact_write_items(self, transact_items):
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen = set()
    planned = []
    reasons = []
    for entry in transact_items:
        if len(entry) != 1:
            raise TransactWriteSingleOpException()
        op_type, op = next(iter(entry.items()))
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        identity = (table.name, json.dumps(key, sort_keys=True))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        current = self.get_item(table.name, key)
        condition = op.get("ConditionExpression")
        holds = condition is None or get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current)
        if holds:
            reasons.append((None, None, None))
        else:
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        planned.append((op_type, op, table, key, copy.deepcopy(current)))
    if any(code for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    # DynamoDB: a transaction carries at most 4 MB of items.
    written = sum(
        sum(len(name.encode()) + DynamoType(value).size() for name, value in op["Item"].items())
        for op_type, op, _, _, _ in planned
        if op_type == "Put"
    )
    if written > 4 * 1024 * 1024:
        raise MockValidationException("Transaction request cannot be larger than 4 MB")
    # Every condition held: write. A write can still be refused (an invalid
    # update expression); then the items this transaction touched, and only
    # they, go back to what they were, and its stream records are dropped.
    streams = {t.name: len(t.stream_shard.items) for _, _, t, _, _ in planned if t.stream_shard}
    try:
        for op_type, op, table, key, _ in planned:
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table.name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table.name, key)
            elif op_type == "Update":
                self.update_item(
                    table.name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except DynamodbException:
        for _, _, table, key, before in planned:
            if before is None:
                self.delete_item(table.name, key)
            else:
                self.put_item(table.name, before.to_json()["Attributes"])
        for table_name, length in streams.items():
            shard = self.get_table(table_name).stream_shard
            del shard.items[length:]
        raise


class IdempotentParameterMismatchException(DynamodbException):
    def __init__(self):
        super().__init__(
            "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
            "The ClientRequestToken was used with other transaction items",
        )


# token -> (expires at, the request's items)
_tokens: dict = {}
TOKEN_LIFETIME_SECONDS = 600

_original_transact_response = DynamoHandler.transact_write_items


def _transact_response(self):
    token = self.body.get("ClientRequestToken")
    if not token:
        return _original_transact_response(self)
    now = time.monotonic()
    for expired in [t for t, (until, _) in _tokens.items() if until <= now]:
        del _tokens[expired]
    payload = json.dumps(self.body.get("TransactItems"), sort_keys=True)
    prior = _tokens.get(token)
    if prior is not None:
        if prior[1] != payload:
            raise IdempotentParameterMismatchException()
        return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
    result = _original_transact_response(self)
    _tokens[token] = (now + TOKEN_LIFETIME_SECONDS, payload)
    return result


_original_call_action = DynamoHandler.call_action


def _alone(self):
    with _lock:
        return meter.measured(self, lambda: _original_call_action(self))


Table.query = _query
DomainDispatcherApplication.__call__ = _call
DynamoDBBackend.transact_write_items = _transact_write_items
DynamoDBBackend.put_item = _put_item
DynamoDBBackend.update_item = _update_item
DynamoHandler.transact_write_items = _transact_response
DynamoHandler.call_action = _alone
SNSBackend.publish = _publish
ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize
DynamoHandler._determine_resource = _dynamodb_resource
SNSResponse._determine_resource = _sns_resource
CognitoIdpResponse._determine_resource = _cognito_resource
SimpleSystemManagerResponse._determine_resource = _ssm_resource
settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

if __name__ == "__main__":
    if os.environ.get("EMULATOR_STATE"):
        _persistence = Persistence(os.environ["EMULATOR_STATE"], _lock, {"published": _published})
        _persistence.load()
        _persistence.start()
        server.signal_handler = _persistence.stop  # moto's main() installs it
    _ensure_admin()
    server.main()
