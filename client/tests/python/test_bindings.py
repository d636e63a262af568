"""mobile_sync through its generated Python bindings, as an app would use it:
two devices of one user, offline edits, sync through the local stack, a
listener, typed errors, a file that is not ours, and a space two users
share.

Run by scripts/test with MOBILE_SYNC_API (a running local stack) and
PYTHONPATH holding the output of `scripts/bindings python`.
"""

import json
import os
import tempfile
import time
import unittest
import urllib.request
import uuid

import mobile_sync
from mobile_sync import SyncClient, SyncError

API = os.environ["MOBILE_SYNC_API"]


def call(method, path, body=None, token=None):
    request = urllib.request.Request(
        API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def sign_in_new_user():
    credentials = {"email": f"py-{uuid.uuid4().hex}@example.com", "password": "Corr3ct-Horse"}
    call("POST", "/auth/sign-up", credentials)
    call("POST", "/auth/confirm", {"email": credentials["email"], "code": "123456"})
    return call("POST", "/auth/sign-in", credentials)["accessToken"]


class Listener(mobile_sync.ChangeListener):
    def __init__(self):
        self.seen = []

    def on_change(self, collections):
        self.seen.append(list(collections))


class Bindings(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.token = sign_in_new_user()

    def tearDown(self):
        self.dir.cleanup()

    def device(self, client_id):
        client = SyncClient(os.path.join(self.dir.name, f"{client_id}.db"), API, client_id)
        client.set_access_token(self.token)
        return client

    def test_two_devices_converge_through_the_server(self):
        phone, tablet = self.device("phone"), self.device("tablet")
        listener = Listener()
        tablet.add_listener(listener)

        phone.put("notes", "n1", json.dumps({"title": "milk", "done": False}))
        phone.put("notes", "n1", json.dumps({"done": True}))
        self.assertEqual(json.loads(phone.get("notes", "n1")), {"title": "milk", "done": True})
        self.assertEqual(phone.pending_count(), 2)
        self.assertIsNone(phone.get("notes", "absent"))

        report = phone.sync()
        self.assertEqual(report.pushed, 2)
        self.assertEqual(phone.pending_count(), 0)

        tablet.sync()
        self.assertEqual(json.loads(tablet.get("notes", "n1")), {"title": "milk", "done": True})
        self.assertIn(["notes"], listener.seen)

        # Both edit offline: the later stamp wins each field, everywhere.
        # (Within one millisecond the hlc counter and client id order them
        # instead: deterministic, but not the wall clock's order.)
        tablet.put("notes", "n1", json.dumps({"title": "oat milk"}))
        time.sleep(0.01)
        phone.delete("notes", "n1")
        self.assertIsNone(phone.get("notes", "n1"))
        tablet.sync()
        phone.sync()
        tablet.sync()
        self.assertEqual(phone.get("notes", "n1"), tablet.get("notes", "n1"))
        self.assertIsNone(tablet.get("notes", "n1"))
        self.assertEqual([r.record_id for r in tablet.list("notes")], [])

    def test_a_refused_edit_is_listed_typed_and_later_edits_go_through(self):
        phone = self.device("phone")
        wide = lambda prefix: json.dumps({f"{prefix}{i}": "x" * 4000 for i in range(64)})
        phone.put("notes", "big", wide("a"))
        # Together with the first, more than the server stores for a record.
        phone.put("notes", "big", wide("b"))
        phone.put("notes", "n1", json.dumps({"title": "after"}))
        report = phone.sync()
        self.assertEqual((report.pushed, report.rejected), (3, 1))
        self.assertEqual(phone.pending_count(), 0)
        [refused] = phone.rejected()
        self.assertEqual(refused.mutation_id, 2)
        self.assertEqual(refused.record_id, "big")
        self.assertIsInstance(refused.code, mobile_sync.RejectionCode.RECORD_TOO_LARGE)
        self.assertIn("b0", json.loads(refused.fields_json))
        big = json.loads(phone.get("notes", "big"))
        self.assertIn("a0", big)
        self.assertNotIn("b0", big)
        self.assertEqual(json.loads(phone.get("notes", "n1")), {"title": "after"})
        self.assertTrue(phone.discard_rejected(2))
        self.assertEqual(phone.rejected(), [])
        # What the server would refuse for its content alone is refused here.
        deep = "leaf"
        for _ in range(30):
            deep = {"k": deep}
        with self.assertRaises(SyncError.InvalidInput):
            phone.put("notes", "deep", json.dumps({"v": deep}))

    def test_failures_are_typed_and_keep_the_outbox(self):
        phone = self.device("phone")
        phone.put("notes", "n1", json.dumps({"title": "kept"}))
        phone.set_access_token("not-a-token")
        with self.assertRaises(SyncError.Unauthorized):
            phone.sync()
        phone.set_access_token(None)
        with self.assertRaises(SyncError.Unauthorized):
            phone.sync()
        self.assertEqual(phone.pending_count(), 1)
        with self.assertRaises(SyncError.InvalidInput):
            phone.put("notes", "n2", "[1, 2]")
        with self.assertRaises(SyncError.InvalidInput):
            phone.put("bad collection", "n2", "{}")
        offline = SyncClient(os.path.join(self.dir.name, "off.db"), "http://127.0.0.1:9", "offline")
        offline.set_access_token(self.token)
        offline.put("notes", "n1", json.dumps({"title": "x"}))
        with self.assertRaises(SyncError.Transport):
            offline.sync()
        self.assertEqual(offline.pending_count(), 1)
        phone.set_access_token(self.token)
        phone.sync()
        self.assertEqual(phone.pending_count(), 0)

    def test_two_users_share_a_space_and_a_removal_hands_back_queued_edits(self):
        alice = self.device("alice-phone")
        bob = SyncClient(os.path.join(self.dir.name, "bob-phone.db"), API, "bob-phone")
        bob.set_access_token(sign_in_new_user())

        space = alice.create_space("Family", None)
        self.assertEqual(space.role, mobile_sync.SpaceRole.OWNER)
        alice.put_in_space(space.space_id, "notes", "n1", json.dumps({"text": "milk"}))
        alice.sync()
        invitation = alice.invite(space.space_id, mobile_sync.SpaceRole.EDITOR, None)
        self.assertGreaterEqual(len(invitation.code), 22)
        joined = bob.accept_invitation(invitation.code)
        self.assertEqual((joined.name, joined.role), ("Family", mobile_sync.SpaceRole.EDITOR))
        report = bob.sync()
        self.assertEqual(report.collections, ["notes"])
        self.assertEqual(json.loads(bob.get_in_space(space.space_id, "notes", "n1")), {"text": "milk"})
        self.assertIsNone(bob.get("notes", "n1"), "the space is apart from bob's own notes")
        self.assertEqual([s.name for s in bob.spaces()], ["Family"])

        bob.put_in_space(space.space_id, "notes", "n2", json.dumps({"text": "bread"}))
        bob.sync()
        alice.sync()
        self.assertEqual(
            [r.record_id for r in alice.list_in_space(space.space_id, "notes")], ["n1", "n2"]
        )

        # Removed while an edit waits: it comes back typed, the space goes.
        bob.put_in_space(space.space_id, "notes", "n3", json.dumps({"text": "tea"}))
        [bob_member] = [m for m in alice.space_members(space.space_id) if m.role == mobile_sync.SpaceRole.EDITOR]
        alice.remove_member(space.space_id, bob_member.user_id)
        report = bob.sync()
        self.assertEqual(report.rejected, 1)
        [refused] = bob.rejected()
        self.assertIsInstance(refused.code, mobile_sync.RejectionCode.NOT_A_MEMBER)
        self.assertEqual(refused.space_id, space.space_id)
        self.assertEqual(json.loads(refused.fields_json), {"text": "tea"})
        self.assertEqual(bob.spaces(), [])
        self.assertEqual(bob.list_in_space(space.space_id, "notes"), [])
        with self.assertRaises(SyncError.NotAMember):
            bob.put_in_space(space.space_id, "notes", "n4", "{}")

    def test_a_foreign_file_is_refused_and_left_alone(self):
        path = os.path.join(self.dir.name, "photos.db")
        with open(path, "wb") as f:
            f.write(b"not a database" * 100)
        with self.assertRaises(SyncError.ForeignDatabase):
            SyncClient(path, API, "phone")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"not a database" * 100)


if __name__ == "__main__":
    unittest.main(verbosity=2)
