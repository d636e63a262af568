// mobile_sync through its generated Kotlin bindings, as an Android app would
// use it (on the JVM here, loading the library through JNA): two devices of
// one user sync through the local stack, a refused edit is typed, errors
// are typed exceptions, and two users share a space. Run by scripts/test with MOBILE_SYNC_API (a
// running local stack); prints "N passed, 0 failed" or exits non-zero.

import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.UUID
import uniffi.mobile_sync.RejectionCode
import uniffi.mobile_sync.SpaceRole
import uniffi.mobile_sync.SyncClient
import uniffi.mobile_sync.SyncException

val api: String = System.getenv("MOBILE_SYNC_API") ?: error("MOBILE_SYNC_API is not set")
val http: HttpClient = HttpClient.newHttpClient()

fun post(path: String, body: String): String {
    val request = HttpRequest.newBuilder(URI.create(api + path))
        .header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body))
        .build()
    val response = http.send(request, HttpResponse.BodyHandlers.ofString())
    check(response.statusCode() in 200..299) { "$path answered ${response.statusCode()}: ${response.body()}" }
    return response.body()
}

fun signInNewUser(): String {
    val credentials = """{"email":"kt-${UUID.randomUUID()}@example.com","password":"Corr3ct-Horse"}"""
    post("/auth/sign-up", credentials)
    val email = Regex("\"email\":\"([^\"]+)\"").find(credentials)!!.groupValues[1]
    post("/auth/confirm", """{"email":"$email","code":"123456"}""")
    val tokens = post("/auth/sign-in", credentials)
    return Regex("\"accessToken\":\"([^\"]+)\"").find(tokens)!!.groupValues[1]
}

val dir = Files.createTempDirectory("mobile-sync-kt")

fun device(id: String, token: String?): SyncClient =
    SyncClient(dir.resolve("$id.db").toString(), api, id).also { it.setAccessToken(token) }

fun twoDevicesConverge(token: String) {
    val phone = device("phone", token)
    val tablet = device("tablet", token)
    phone.put("notes", "n1", """{"title":"milk","done":false}""")
    check(phone.pendingCount() == 1UL)
    val report = phone.sync()
    check(report.pushed == 1UL && report.rejected == 0UL) { "$report" }
    tablet.sync()
    check(tablet.get("notes", "n1") == """{"done":false,"title":"milk"}""") { "${tablet.get("notes", "n1")}" }
    check(tablet.list("notes").map { it.recordId } == listOf("n1"))
}

fun aRefusedEditIsTyped(token: String) {
    val phone = device("wide", token)
    val wide = { prefix: String -> (0 until 64).joinToString(",", "{", "}") { "\"$prefix$it\":\"${"x".repeat(4000)}\"" } }
    phone.put("notes", "big", wide("a"))
    phone.put("notes", "big", wide("b"))
    val report = phone.sync()
    check(report.rejected == 1UL) { "$report" }
    val refused = phone.rejected().single()
    check(refused.code == RejectionCode.RecordTooLarge) { "${refused.code}" }
    check(refused.mutationId == 2UL && refused.recordId == "big")
    check(phone.discardRejected(2UL) && phone.rejected().isEmpty())
}

fun errorsAreTyped(token: String) {
    val phone = device("errors", token)
    try {
        phone.put("notes", "n1", "[1, 2]")
        error("a JSON array was accepted as fields")
    } catch (e: SyncException.InvalidInput) {
        check(e.reason.isNotEmpty())
    }
    phone.put("notes", "n1", """{"title":"kept"}""")
    phone.setAccessToken("not-a-token")
    try {
        phone.sync()
        error("a bad token synced")
    } catch (e: SyncException.Unauthorized) {
    }
    check(phone.pendingCount() == 1UL) { "the outbox is kept" }
    val offline = SyncClient(dir.resolve("offline.db").toString(), "http://127.0.0.1:9", "offline")
    offline.setAccessToken(token)
    offline.put("notes", "n1", """{"title":"x"}""")
    try {
        offline.sync()
        error("an unreachable server synced")
    } catch (e: SyncException.Transport) {
        check(e.reason.isNotEmpty())
    }
}

fun twoUsersShareASpace(token: String) {
    val alice = device("alice", token)
    val bob = device("bob", signInNewUser())
    val space = alice.createSpace("Family", null)
    check(space.role == SpaceRole.OWNER) { "${space.role}" }
    alice.putInSpace(space.spaceId, "notes", "n1", """{"text":"milk"}""")
    alice.sync()
    val invitation = alice.invite(space.spaceId, SpaceRole.VIEWER, null)
    val joined = bob.acceptInvitation(invitation.code)
    check(joined.role == SpaceRole.VIEWER && joined.name == "Family") { "$joined" }
    bob.sync()
    check(bob.getInSpace(space.spaceId, "notes", "n1") == """{"text":"milk"}""")
    check(bob.get("notes", "n1") == null) { "the space is apart from bob's own notes" }
    try {
        bob.putInSpace(space.spaceId, "notes", "n2", "{}")
        error("a viewer's edit was queued")
    } catch (e: SyncException.ReadOnly) {
        check(e.spaceId == space.spaceId)
    }
    bob.leaveSpace(space.spaceId)
    check(bob.spaces().isEmpty() && bob.listInSpace(space.spaceId, "notes").isEmpty())
    check(alice.spaceMembers(space.spaceId).size == 1)
}

fun main() {
    val token = signInNewUser()
    val tests = listOf(
        "two devices converge" to { twoDevicesConverge(token) },
        "a refused edit is typed" to { aRefusedEditIsTyped(token) },
        "errors are typed" to { errorsAreTyped(token) },
        "two users share a space" to { twoUsersShareASpace(token) },
    )
    var failed = 0
    for ((name, test) in tests) {
        try {
            test()
            println("ok: $name")
        } catch (e: Throwable) {
            failed += 1
            println("FAILED: $name: $e")
        }
    }
    println("${tests.size - failed} passed, $failed failed")
    if (failed > 0) kotlin.system.exitProcess(1)
}
