"""The AWS emulator the local stack and the tests run: moto's server, pinned
in infra/requirements.txt, with one addition that DynamoDB has and moto
lacks.

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
Run as `python infra/emulator/emulator.py -H 127.0.0.1 -p PORT`, with the
arguments of `moto_server`.
"""

import copy
import inspect
import json
import threading
from urllib.parse import parse_qs

from moto import server
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

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


def _lagging_query(self, *args, **kwargs):
    bound = _query_signature.bind(self, *args, **kwargs).arguments
    index_name = bound.get("index_name")
    consistent = bound.get("consistent_read", False)
    with _lock:
        view = _held.get(self.name)
        if view is None or not index_name or consistent:
            return _original_query(self, *args, **kwargs)
        shown = [item for item in view.values() if item is not None]
        self.all_items = lambda: sorted(shown, key=_key)  # type: ignore[method-assign]
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


def _control(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    try:
        if method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            body = {"table": query.get("table", [""])[0]}
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        with _lock:
            table = _find_table(body["table"])
            if path.endswith("/hold") and method == "POST":
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


def _call(self, environ, start_response):
    if environ.get("PATH_INFO", "").startswith("/_emulator/"):
        return _control(environ, start_response)
    return _original_call(self, environ, start_response)


Table.query = _lagging_query
DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    server.main()
