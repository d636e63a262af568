//! IAM is enforced locally: each function calls AWS with an identity of its
//! own that holds exactly its policy from the template, so a permission the
//! template forgot fails here with AccessDenied, as it would once deployed.

use e2e::TestStack;
use serde_json::json;

/// The project's template with one line removed from one function's policy.
fn template_without(function: &str, action: &str) -> std::path::PathBuf {
    let original = std::fs::read_to_string(local_stack::Options::default_template()).unwrap();
    let mut in_function = false;
    let mut removed = 0;
    let mut changed = String::new();
    for line in original.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") {
            in_function = line.trim_end() == format!("  {function}:");
        }
        if in_function && line.trim() == format!("- {action}") {
            removed += 1;
            continue;
        }
        changed.push_str(line);
        changed.push('\n');
    }
    assert_eq!(removed, 1, "{action} appears once in {function}'s policy");
    let path = std::env::temp_dir().join(format!("template-{}.yaml", uuid::Uuid::new_v4()));
    std::fs::write(&path, changed).unwrap();
    path
}

fn push(client: &str) -> serde_json::Value {
    json!({"clientId": client, "mutations": [{
        "id": 1, "collection": "notes", "recordId": "n1", "op": "put",
        "fields": {"title": "hello"}, "hlc": e2e::hlc_now(client)}]})
}

#[tokio::test]
async fn a_permission_missing_from_the_template_fails_locally() {
    // The whole policy: a push works.
    let api = TestStack::start().await;
    let user = api.user().await;
    let pushed = api
        .post("/sync/push", push("phone"), Some(&user.access_token))
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    api.stop().await;

    // Without dynamodb:BatchGetItem, the sync function cannot read before
    // it writes: the push fails, and nothing is written.
    let template = template_without("SyncFunction", "dynamodb:BatchGetItem");
    let api = TestStack::start_with_template(template.clone()).await;
    let user = api.user().await;
    let refused = api
        .post("/sync/push", push("phone"), Some(&user.access_token))
        .await;
    refused.assert_problem(500, "internal");
    // Reads through another permission still work: the identity is real,
    // only the one action is missing.
    let pulled = api
        .get("/sync/pull?clientId=tablet", Some(&user.access_token))
        .await;
    assert_eq!(
        pulled.status, 500,
        "pull reads the counter with BatchGetItem too"
    );
    let me = api.get("/me", Some(&user.access_token)).await;
    assert_eq!(me.status, 200, "auth keeps its own policy: {me:?}");
    let _ = std::fs::remove_file(template);
    api.stop().await;
}
