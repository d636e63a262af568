//! A notes app in a terminal, offline first: every command works without a
//! network; `sync` pushes what you did and pulls what other devices did.
//!
//!   NOTES_DB=phone.db NOTES_CLIENT=phone cargo run -p mobile-sync --example notes -- add "buy milk"
//!   cargo run -p mobile-sync --example notes -- ls
//!   NOTES_TOKEN=<accessToken> cargo run -p mobile-sync --example notes -- sync
//!
//! Commands: add TEXT | edit ID TEXT | done ID | rm ID | ls | sync.
//! Environment: NOTES_DB (notes.db), NOTES_CLIENT (notes-cli), NOTES_API
//! (http://127.0.0.1:3000, `scripts/dev`), NOTES_TOKEN (for `sync`).

use mobile_sync::{SyncClient, SyncError};

const COLLECTION: &str = "notes";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    if let Err(err) = run(std::env::args().skip(1).collect()) {
        eprintln!("notes: {err}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<(), SyncError> {
    let client = SyncClient::new(
        env("NOTES_DB", "notes.db"),
        env("NOTES_API", "http://127.0.0.1:3000"),
        env("NOTES_CLIENT", "notes-cli"),
    )?;
    let arg = |i: usize, what: &str| {
        args.get(i).cloned().ok_or_else(|| SyncError::InvalidInput {
            reason: format!("missing {what}"),
        })
    };
    let fields = |text: &str| serde_json::json!({"text": text}).to_string();
    match args.first().map(String::as_str) {
        Some("add") => {
            let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
            client.put(COLLECTION.into(), id.clone(), fields(&arg(1, "TEXT")?))?;
            client.put(COLLECTION.into(), id.clone(), r#"{"done":false}"#.into())?;
            println!("{id}");
        }
        Some("edit") => client.put(COLLECTION.into(), arg(1, "ID")?, fields(&arg(2, "TEXT")?))?,
        Some("done") => client.put(COLLECTION.into(), arg(1, "ID")?, r#"{"done":true}"#.into())?,
        Some("rm") => client.delete(COLLECTION.into(), arg(1, "ID")?)?,
        Some("ls") => {
            for note in client.list(COLLECTION.into())? {
                let fields: serde_json::Value =
                    serde_json::from_str(&note.fields_json).unwrap_or_default();
                let done = if fields["done"] == true { "x" } else { " " };
                println!(
                    "[{done}] {}  {}",
                    note.record_id,
                    fields["text"].as_str().unwrap_or("")
                );
            }
            println!("({} not yet synced)", client.pending_count()?);
        }
        Some("sync") => {
            client.set_access_token(std::env::var("NOTES_TOKEN").ok());
            let report = client.sync()?;
            println!("pushed {}, pulled {}", report.pushed, report.pulled);
        }
        _ => {
            return Err(SyncError::InvalidInput {
                reason: "commands: add TEXT | edit ID TEXT | done ID | rm ID | ls | sync".into(),
            });
        }
    }
    Ok(())
}
