"""State that survives a restart of the emulator (scripts/dev; tests start
empty). moto keeps everything in memory; here the region backends of the
services the stack uses are pickled to one file, as Firebase's emulators
export on exit:

- after every change, at most once a second (less often when a save takes
  over a tenth of that), by a background thread, so a hard kill (SIGKILL)
  loses at most the last moments;
- once more on SIGINT/SIGTERM, before the server exits.

A snapshot is written to a temporary file, flushed to disk and renamed over
the previous one, so the file on disk is always a whole snapshot. One that
cannot be read (another moto version, a damaged file) is moved aside with a
warning and the emulator starts empty: a restart never fails on its state.
"""

import copy
import functools
import os
import pickle
import sys
import threading
import time
import traceback
import _thread
from collections import defaultdict

from cryptography.hazmat.primitives import serialization
from moto import __version__ as moto_version
from moto.backends import get_backend

# What the local stack provisions and the functions call.
SERVICES = ["dynamodb", "s3", "sqs", "sns", "cognito-idp", "ssm", "iam", "sts"]
FORMAT = 2
INTERVAL_SECONDS = 1.0


def _private_key(pem):
    return serialization.load_pem_private_key(pem, None)


def _defaultdict(cls, factory, state):
    """A defaultdict, or a subclass whose __init__ takes other arguments
    (SSM's ParameterDict), without calling that __init__."""
    made = cls.__new__(cls)
    defaultdict.__init__(made, factory)
    if state:
        made.__dict__.update(state)
    return made


class _Pickler(pickle.Pickler):
    """Locks are made anew on load (no thread holds them then); private keys
    (SNS signs messages with one) are kept as PEM; a defaultdict whose
    factory is a lambda (SSM's) gets a factory that copies what the lambda
    makes; a subclass of defaultdict is rebuilt without its __init__."""

    def reducer_override(self, obj):
        if isinstance(obj, defaultdict):
            factory = obj.default_factory
            if "<" in getattr(factory, "__qualname__", ""):
                factory = functools.partial(copy.deepcopy, factory())
            state = getattr(obj, "__dict__", {})
            return (_defaultdict, (type(obj), factory, state), None, None, iter(obj.items()))
        if hasattr(obj, "private_bytes") and hasattr(obj, "public_key"):
            pem = obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return (_private_key, (pem,))
        if isinstance(obj, type(_thread.allocate_lock())):
            return (_thread.allocate_lock, ())
        if isinstance(obj, type(threading.RLock())):
            return (threading.RLock, ())
        return NotImplemented


# What every BackendDict has; anything else on one is state of its service
# (S3's bucket_accounts: which account holds each bucket name).
_PLAIN = {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}


def _backends():
    state = {}
    for service in SERVICES:
        backend_dict = get_backend(service)
        per_account = {}
        for account, regions in backend_dict.items():
            per_account[account] = dict(dict.items(regions))
        shared = {k: v for k, v in vars(backend_dict).items() if k not in _PLAIN}
        state[service] = {"accounts": per_account, "shared": shared}
    return state


class Persistence:
    def __init__(self, path, lock, extra):
        """`lock` is held while a snapshot is taken (the emulator's request
        lock); `extra` maps a name to a dict of the emulator's own state
        (published pushes, transaction tokens) saved beside moto's."""
        self.path = path
        self.lock = lock
        self.extra = extra
        self.dirty = threading.Event()
        self.saving = threading.Lock()

    def load(self):
        if not os.path.exists(self.path):
            print(f"emulator state: {self.path} (new)", file=sys.stderr)
            return
        try:
            with open(self.path, "rb") as f:
                saved = pickle.load(f)
            if saved.get("format") != FORMAT or saved.get("moto") != moto_version:
                raise ValueError(
                    f"saved by moto {saved.get('moto')} (format {saved.get('format')}), "
                    f"this is moto {moto_version} (format {FORMAT})"
                )
            for service, saved_service in saved["backends"].items():
                backend_dict = get_backend(service)
                for name, value in saved_service["shared"].items():
                    setattr(backend_dict, name, value)
                for account, regions in saved_service["accounts"].items():
                    account_backends = backend_dict[account]
                    for region, backend in regions.items():
                        dict.__setitem__(account_backends, region, backend)
            for name, values in saved["extra"].items():
                self.extra[name].clear()
                self.extra[name].update(values)
            print(f"emulator state: restored from {self.path}", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - any unreadable state starts empty
            aside = f"{self.path}.unreadable-{int(time.time())}"
            os.replace(self.path, aside)
            print(
                f"emulator state: {self.path} could not be restored ({err}); "
                f"moved to {aside}, starting empty",
                file=sys.stderr,
            )

    def save(self):
        with self.saving:
            self.dirty.clear()
            with self.lock:
                # Other services' requests run outside the lock: a dict that
                # changes while it is pickled is pickled again.
                for attempt in range(5):
                    try:
                        tmp = f"{self.path}.tmp"
                        with open(tmp, "wb") as f:
                            _Pickler(f, protocol=pickle.HIGHEST_PROTOCOL).dump(
                                {
                                    "format": FORMAT,
                                    "moto": moto_version,
                                    "backends": _backends(),
                                    "extra": {name: dict(values) for name, values in self.extra.items()},
                                }
                            )
                            f.flush()
                            os.fsync(f.fileno())
                        break
                    except RuntimeError:
                        if attempt == 4:
                            raise
            os.replace(tmp, self.path)

    def changed(self):
        self.dirty.set()

    def start(self):
        def loop():
            pause = INTERVAL_SECONDS
            while True:
                self.dirty.wait()
                time.sleep(pause)
                started = time.monotonic()
                try:
                    self.save()
                except Exception:  # noqa: BLE001 - keep serving; say why
                    traceback.print_exc()
                # A large state (photos' bytes) takes longer to write: it
                # is written less often, so saving never takes more than
                # a tenth of the emulator's time.
                pause = max(INTERVAL_SECONDS, 9 * (time.monotonic() - started))

        threading.Thread(target=loop, name="emulator-state", daemon=True).start()

    def stop(self, signum, _frame):
        """The server's SIGINT/SIGTERM handler: saves, then exits."""
        try:
            self.save()
            print(f"emulator state: saved to {self.path}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - the last periodic save stands
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(128 + signum)
