//! A notes app in a terminal, offline first: every command works without a
//! network; `sync` pushes what you did and pulls what other devices did.
//!
//!   NOTES_DB=phone.db NOTES_CLIENT=phone cargo run -p mobile-sync --example notes -- add "buy milk"
//!   cargo run -p mobile-sync --example notes -- ls
//!   NOTES_TOKEN=<accessToken> cargo run -p mobile-sync --example notes -- sync
//!
//! Shared notes (online; `client/README.md` walks through it with two users):
//!
//!   NOTES_TOKEN=<alice's token> ... --example notes -- share "Family"   # prints the space and a code
//!   NOTES_TOKEN=<bob's token> ... --example notes -- join CODE
//!   NOTES_SPACE=<space id> ... --example notes -- add "bread"          # in the shared notes
//!
//! Commands: add TEXT | edit ID TEXT | done ID | rm ID | ls | sync |
//! share NAME | join CODE | spaces | rejected.
//! Environment: NOTES_DB (notes.db), NOTES_CLIENT (notes-cli), NOTES_API
//! (http://127.0.0.1:3000, `scripts/dev`), NOTES_TOKEN (for `sync`, `share`,
//! `join`), NOTES_SPACE (a space id: the notes commands work in that shared
//! space instead of your own notes).

use mobile_sync::{Record, SpaceRole, SyncClient, SyncError};

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
    client.set_access_token(std::env::var("NOTES_TOKEN").ok());
    let space = std::env::var("NOTES_SPACE").ok().filter(|s| !s.is_empty());
    // The notes commands, in your own notes or in the shared space.
    let put = |id: String, fields: String| match &space {
        Some(space) => client.put_in_space(space.clone(), COLLECTION.into(), id, fields),
        None => client.put(COLLECTION.into(), id, fields),
    };
    let list = || -> Result<Vec<Record>, SyncError> {
        match &space {
            Some(space) => client.list_in_space(space.clone(), COLLECTION.into()),
            None => client.list(COLLECTION.into()),
        }
    };
    let fields = |text: &str| serde_json::json!({"text": text}).to_string();
    match args.first().map(String::as_str) {
        Some("add") => {
            let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
            put(id.clone(), fields(&arg(1, "TEXT")?))?;
            put(id.clone(), r#"{"done":false}"#.into())?;
            println!("{id}");
        }
        Some("edit") => put(arg(1, "ID")?, fields(&arg(2, "TEXT")?))?,
        Some("done") => put(arg(1, "ID")?, r#"{"done":true}"#.into())?,
        Some("rm") => match &space {
            Some(space) => {
                client.delete_in_space(space.clone(), COLLECTION.into(), arg(1, "ID")?)?
            }
            None => client.delete(COLLECTION.into(), arg(1, "ID")?)?,
        },
        Some("ls") => {
            for note in list()? {
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
            let report = client.sync()?;
            println!("pushed {}, pulled {}", report.pushed, report.pulled);
            if report.rejected > 0 {
                println!("{} refused: see `rejected`", report.rejected);
            }
        }
        Some("share") => {
            let created = client.create_space(arg(1, "NAME")?, None)?;
            let invitation = client.invite(created.space_id.clone(), SpaceRole::Editor, None)?;
            println!("space {}", created.space_id);
            println!(
                "code {}  (for one editor, until {})",
                invitation.code, invitation.expires_at
            );
        }
        Some("join") => {
            let joined = client.accept_invitation(arg(1, "CODE")?)?;
            client.sync()?;
            println!(
                "joined {:?} as {:?}: NOTES_SPACE={}",
                joined.name, joined.role, joined.space_id
            );
        }
        Some("spaces") => {
            for space in client.spaces()? {
                println!("{}  {:?}  {}", space.space_id, space.role, space.name);
            }
        }
        Some("rejected") => {
            for refused in client.rejected()? {
                println!(
                    "{}  {:?}  {}/{} {}",
                    refused.mutation_id,
                    refused.code,
                    refused.space_id.as_deref().unwrap_or("own"),
                    refused.record_id,
                    refused.fields_json.as_deref().unwrap_or("(delete)")
                );
            }
        }
        _ => {
            return Err(SyncError::InvalidInput {
                reason: "commands: add TEXT | edit ID TEXT | done ID | rm ID | ls | sync | \
                         share NAME | join CODE | spaces | rejected"
                    .into(),
            });
        }
    }
    Ok(())
}
